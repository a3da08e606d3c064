//! Operator errors (thiserror) with a short metric label for `aoai_reconcile_errors_total`.
//! Messages name what is wrong and what to do; they never contain secrets or tokens.

use std::time::Duration;

/// An Azure REST failure, classified as transient (retry with backoff) or terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureError {
    /// Logical operation, e.g. `deployments.put`.
    pub operation: String,
    /// HTTP status (0 when no response: connection error or timeout).
    pub status: u16,
    /// Azure error code (e.g. `InsufficientQuota`), or a synthetic one (`ConnectionError`).
    pub code: String,
    /// Azure's message.
    pub message: String,
    /// Retry-After the service asked for.
    pub retry_after: Option<Duration>,
}

impl AzureError {
    /// Transient: 408, 409 (RequestConflict and other conflicts), 429, 5xx, no response.
    pub fn is_transient(&self) -> bool {
        matches!(self.status, 0 | 408 | 409 | 429) || self.status >= 500
    }
    pub fn is_throttled(&self) -> bool {
        self.status == 429
    }
}

impl std::fmt::Display for AzureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == 0 {
            write!(
                f,
                "Azure {} failed: {}: {}",
                self.operation, self.code, self.message
            )
        } else {
            write!(
                f,
                "Azure {} failed with HTTP {} {}: {}",
                self.operation, self.status, self.code, self.message
            )
        }
    }
}

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    #[error("{0}")]
    Azure(AzureError),

    #[error("cannot obtain an Azure token: {0}")]
    Auth(String),

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("deletion in progress: {0}")]
    DeletionInProgress(String),

    #[error("AIAccount is still used by {0} ModelDeployment(s); delete them first")]
    AccountInUse(usize),

    #[error("finalizer failed: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Short, bounded-cardinality label for metrics.
    pub fn metric_label(&self) -> String {
        match self {
            Error::Kube(_) => "kube".into(),
            Error::Azure(e) => {
                if e.is_transient() {
                    format!("azure_transient_{}", e.status)
                } else {
                    format!("azure_{}", e.code)
                }
            }
            Error::Auth(_) => "auth".into(),
            Error::Config(_) => "config".into(),
            Error::DeletionInProgress(_) => "deletion_in_progress".into(),
            Error::AccountInUse(_) => "account_in_use".into(),
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
