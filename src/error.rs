//! Errors. An Azure failure is classified exactly once, where its response (or the lack of one)
//! is read: transient (retry with backoff, honouring Retry-After), terminal (needs a human),
//! authentication/authorization, or not found. The operator's own error type (thiserror) carries
//! a short, bounded metric label. Messages name what is wrong and what to do; they never contain
//! secrets or tokens.

use std::time::Duration;

/// What kind of failure an Azure error is: decides retry versus report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry later: throttling, another operation in progress, 5xx, timeouts, no response.
    Transient,
    /// Needs a human: the request is wrong for Azure (quota, unsupported model or SKU, ...).
    Terminal,
    /// The identity cannot get a token or lacks a role.
    Auth,
    /// The target does not exist.
    NotFound,
}

impl ErrorClass {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Terminal => "terminal",
            ErrorClass::Auth => "auth",
            ErrorClass::NotFound => "not_found",
        }
    }
}

/// Error codes that mean "try again later" whatever the HTTP status (also the codes of failed
/// long-running operations, which have no status of their own).
const TRANSIENT_CODES: &[&str] = &[
    "requestconflict",
    "conflict",
    "anotheroperationinprogress",
    "operationnotallowedwhileupdating",
    "toomanyrequests",
    "subscriptionrequeststhrottled",
    "tenantrequeststhrottled",
    "resourcerequeststhrottled",
    "internalservererror",
    "internalerror",
    "servererror",
    "serviceunavailable",
    "servicebusy",
    "gatewaytimeout",
    "operationtimedout",
    "timeout",
    "requesttimeout",
    "canceled",
    "cancelled",
];

/// Error codes of a missing token or role, whatever the HTTP status.
const AUTH_CODES: &[&str] = &[
    "authorizationfailed",
    "linkedauthorizationfailed",
    "authenticationfailed",
    "invalidauthenticationtoken",
    "invalidauthenticationtokenaudience",
    "invalidauthenticationtokentenant",
    "expiredauthenticationtoken",
    "forbidden",
    "forbiddenbypolicy",
    "unauthorized",
];

/// The one classifier: the error code when it is known to mean something, else the HTTP status.
/// `status` is None for a failed long-running operation (its code is all there is).
pub fn classify(status: Option<u16>, code: &str) -> ErrorClass {
    let c = code.to_ascii_lowercase();
    if TRANSIENT_CODES.contains(&c.as_str()) {
        return ErrorClass::Transient;
    }
    if AUTH_CODES.contains(&c.as_str()) {
        return ErrorClass::Auth;
    }
    match status {
        Some(401 | 403) => ErrorClass::Auth,
        Some(404) => ErrorClass::NotFound,
        Some(408 | 429) => ErrorClass::Transient,
        Some(s) if s >= 500 => ErrorClass::Transient,
        _ => ErrorClass::Terminal,
    }
}

/// An Azure REST failure.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureError {
    /// Logical operation, e.g. `deployments.put`.
    pub operation: String,
    /// HTTP status; None when there was no response (connection error, timeout, no token) or
    /// for a long-running operation that failed.
    pub status: Option<u16>,
    /// Azure's error code (e.g. `InsufficientQuota`), or ours for failures without a body
    /// (`ConnectionError`, `Timeout`, `CredentialUnavailable`).
    pub code: String,
    /// Azure's message (or ours).
    pub message: String,
    pub class: ErrorClass,
    /// Retry-After the service asked for.
    pub retry_after: Option<Duration>,
}

impl AzureError {
    /// An error answered by Azure.
    pub fn response(
        operation: &str,
        status: u16,
        code: String,
        message: String,
        retry_after: Option<Duration>,
    ) -> Self {
        AzureError {
            class: classify(Some(status), &code),
            operation: operation.into(),
            status: Some(status),
            code,
            message,
            retry_after,
        }
    }

    /// A long-running operation that ended Failed/Canceled with this code.
    pub fn operation_failed(operation: &str, code: String, message: String) -> Self {
        AzureError {
            class: classify(None, &code),
            operation: operation.into(),
            status: None,
            code,
            message,
            retry_after: None,
        }
    }

    /// No response at all (connection refused, timeout, TLS failure): transient.
    pub fn transport(operation: &str, code: &str, message: String) -> Self {
        AzureError {
            operation: operation.into(),
            status: None,
            code: code.into(),
            message,
            class: ErrorClass::Transient,
            retry_after: None,
        }
    }

    /// No token could be obtained for the request: transient when the identity endpoint was
    /// unreachable or failing, else the identity's configuration needs a human.
    pub fn credential(operation: &str, e: crate::azure::auth::TokenError) -> Self {
        AzureError {
            operation: operation.into(),
            status: None,
            code: if e.transient {
                "TokenUnavailable".into()
            } else {
                crate::reason::AUTHENTICATION_FAILED.into()
            },
            message: e.message,
            class: if e.transient {
                ErrorClass::Transient
            } else {
                ErrorClass::Auth
            },
            retry_after: None,
        }
    }

    /// A response that is not what the contract says (unparseable body, missing field).
    pub fn invalid_response(operation: &str, status: u16, message: String) -> Self {
        AzureError {
            operation: operation.into(),
            status: Some(status),
            code: "InvalidResponse".into(),
            message,
            class: ErrorClass::Transient,
            retry_after: None,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    pub fn is_throttled(&self) -> bool {
        self.status == Some(429)
    }
}

impl std::fmt::Display for AzureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            None => write!(
                f,
                "Azure {} failed: {}: {}",
                self.operation, self.code, self.message
            ),
            Some(s) => write!(
                f,
                "Azure {} failed with HTTP {s} {}: {}",
                self.operation, self.code, self.message
            ),
        }
    }
}

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    /// A transient Azure failure: the reconcile is retried with backoff.
    #[error("{0}")]
    Azure(AzureError),

    #[error("invalid configuration: {0}")]
    Config(String),

    /// Deletion waits for Azure (or for the account's write slot); retried after the delay.
    #[error("deletion in progress: {message}")]
    DeletionInProgress { message: String, retry_in: Duration },

    #[error("AIAccount is still used by {0} ModelDeployment(s); delete them first")]
    AccountInUse(usize),

    /// The policy did not settle on a final step (a bug; reported instead of looping).
    #[error("reconcile did not settle: {0}")]
    Unsettled(String),

    #[error("finalizer failed: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Short, bounded-cardinality label for metrics.
    pub fn metric_label(&self) -> String {
        match self {
            Error::Kube(_) => "kube".into(),
            Error::Azure(e) => match e.class {
                ErrorClass::Transient => format!(
                    "azure_transient_{}",
                    e.status.map_or("none".to_string(), |s| s.to_string())
                ),
                _ => format!("azure_{}", e.code),
            },
            Error::Config(_) => "config".into(),
            Error::DeletionInProgress { .. } => "deletion_in_progress".into(),
            Error::AccountInUse(_) => "account_in_use".into(),
            Error::Unsettled(_) => "unsettled".into(),
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer".into(),
            },
        }
    }

    /// The innermost operator error (unwrapping finalizer wrappers).
    pub fn inner(&self) -> &Error {
        match self {
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.inner(),
                _ => self,
            },
            other => other,
        }
    }

    /// Retry-After hint, if the failure carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.inner() {
            Error::Azure(e) => e.retry_after,
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_classifier_for_responses_and_operations() {
        use ErrorClass::*;
        let table: &[(Option<u16>, &str, ErrorClass)] = &[
            (Some(409), "RequestConflict", Transient),
            (Some(409), "Conflict", Transient),
            (Some(409), "CustomDomainInUse", Terminal),
            (Some(429), "TooManyRequests", Transient),
            (Some(429), "SubscriptionRequestsThrottled", Transient),
            (Some(503), "ServiceUnavailable", Transient),
            (Some(500), "Whatever", Transient),
            (Some(408), "", Transient),
            (Some(400), "InsufficientQuota", Terminal),
            (Some(400), "DeploymentModelNotSupported", Terminal),
            (Some(400), "InvalidResourceProperties", Terminal),
            (Some(401), "InvalidAuthenticationToken", Auth),
            (Some(403), "AuthorizationFailed", Auth),
            (Some(403), "SomethingElse", Auth),
            (Some(404), "DeploymentNotFound", NotFound),
            (Some(404), "ResourceNotFound", NotFound),
            // Failed long-running operations: the code alone decides.
            (None, "InternalServerError", Transient),
            (None, "Canceled", Transient),
            (None, "InsufficientQuota", Terminal),
            (None, "AuthorizationFailed", Auth),
            (None, "ProvisioningFailed", Terminal),
        ];
        for (status, code, want) in table {
            assert_eq!(classify(*status, code), *want, "{status:?} {code}");
        }
        assert!(AzureError::transport("x", "ConnectionError", "refused".into()).is_transient());
        let token = |transient| crate::azure::auth::TokenError {
            message: "no token".into(),
            transient,
        };
        assert_eq!(
            AzureError::credential("x", token(false)).class,
            ErrorClass::Auth
        );
        assert_eq!(
            AzureError::credential("x", token(true)).class,
            ErrorClass::Transient,
            "the identity endpoint failing is not the identity's fault"
        );
    }
}
