//! Entra ID token credentials. Client secret and workload identity (the federated token file as
//! client assertion) go through Microsoft's `azure_identity` crate, configured with the cloud's
//! authority host and the operator's one HTTP client (which carries the custom CA bundle).
//! Managed identity is the IMDS protocol written here: `azure_identity` 1.0 always calls
//! 169.254.169.254 and cannot be pointed at another IMDS-style endpoint
//! (`AZURE_POD_IDENTITY_AUTHORITY_HOST`, as pod-identity setups and the test bed use).
//! Tokens are cached per scope and refreshed before expiry; they are never logged (Debug is
//! redacted) and never appear in error text.

use crate::metrics::Metrics;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A secret string whose Debug/Display never reveal it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which identity to use.
#[derive(Clone, Debug, PartialEq)]
pub enum CredentialKind {
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: Secret,
    },
    WorkloadIdentity {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    ManagedIdentity {
        client_id: Option<String>,
    },
}

impl CredentialKind {
    /// Cache key, also the principal ARM budgets are kept for (no secret material: a client
    /// secret contributes only a hash).
    pub fn cache_key(&self) -> String {
        use sha2::Digest;
        match self {
            CredentialKind::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => {
                let h = sha2::Sha256::digest(secret.expose().as_bytes());
                let h: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
                format!("cs:{tenant_id}:{client_id}:{h}")
            }
            CredentialKind::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => format!("wi:{tenant_id}:{client_id}:{}", token_file.display()),
            CredentialKind::ManagedIdentity { client_id } => {
                format!("mi:{}", client_id.as_deref().unwrap_or("system"))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            CredentialKind::ClientSecret { client_id, .. } => {
                format!("client secret of {client_id}")
            }
            CredentialKind::WorkloadIdentity { client_id, .. } => {
                format!("workload identity {client_id}")
            }
            CredentialKind::ManagedIdentity { client_id } => format!(
                "managed identity {}",
                client_id.as_deref().unwrap_or("(system-assigned)")
            ),
        }
    }

    fn operation(&self) -> &'static str {
        match self {
            CredentialKind::ClientSecret { .. } => "token.client_secret",
            CredentialKind::WorkloadIdentity { .. } => "token.workload_identity",
            CredentialKind::ManagedIdentity { .. } => "token.managed_identity",
        }
    }
}

/// Where tokens come from: the cloud's authority host, the IMDS-style endpoint, the HTTP client.
#[derive(Clone)]
pub struct TokenSettings {
    pub http: reqwest::Client,
    pub authority_host: String,
    pub imds_host: Option<String>,
    pub metrics: Arc<Metrics>,
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    refresh_at: Instant,
    expires_at: Instant,
}

enum Source {
    Identity(Arc<dyn azure_core::credentials::TokenCredential>),
    Imds {
        http: reqwest::Client,
        host: String,
        client_id: Option<String>,
    },
}

/// A token source with a per-scope cache.
pub struct TokenCredential {
    kind: CredentialKind,
    source: Source,
    metrics: Arc<Metrics>,
    cache: tokio::sync::Mutex<HashMap<String, CachedToken>>,
}

impl std::fmt::Debug for TokenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenCredential({})", self.kind.describe())
    }
}

/// Why no token could be had: what to tell a human, and whether trying again later may help
/// (the identity endpoint unreachable, throttling or failing) or not (a wrong secret, an unknown
/// client, a missing federated credential).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenError {
    pub message: String,
    pub transient: bool,
}

/// Whether an `azure_identity` failure may pass: a connection or IO failure, or an identity
/// endpoint answering 408, 429 or 5xx, anywhere in the error's chain.
fn transient_identity_error(e: &azure_core::Error) -> bool {
    use azure_core::error::ErrorKind;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(a) = err.downcast_ref::<azure_core::Error>() {
            match a.kind() {
                ErrorKind::Connection | ErrorKind::Io => return true,
                ErrorKind::HttpResponse { status, .. } => {
                    let s = u16::from(*status);
                    return s == 408 || s == 429 || s >= 500;
                }
                _ => {}
            }
        }
        next = err.source();
    }
    false
}

/// When to refresh a token valid for `lifetime`: 5 minutes before expiry, or at half-life for short tokens.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 2).min(Duration::from_secs(300))
}

/// Counts each token request by its HTTP status in `aoai_azure_requests`.
struct CountRequests {
    operation: &'static str,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for CountRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CountRequests({})", self.operation)
    }
}

#[async_trait::async_trait]
impl azure_core::http::policies::Policy for CountRequests {
    async fn send(
        &self,
        ctx: &azure_core::http::Context,
        request: &mut azure_core::http::Request,
        next: &[Arc<dyn azure_core::http::policies::Policy>],
    ) -> azure_core::http::policies::PolicyResult {
        let res = next[0].send(ctx, request, &next[1..]).await;
        let status = match &res {
            Ok(r) => u16::from(r.status()),
            Err(_) => 0,
        };
        self.metrics.azure_request(self.operation, status, false);
        res
    }
}

impl TokenCredential {
    pub fn new(kind: CredentialKind, settings: &TokenSettings) -> Result<Self, String> {
        let who = kind.describe();
        let mut cloud = azure_core::cloud::CustomConfiguration::default();
        cloud.authority_host = settings.authority_host.trim_end_matches('/').to_string();
        let client_options = ClientOptions {
            transport: Some(Transport::new(Arc::new(settings.http.clone()))),
            cloud: Some(Arc::new(cloud.into())),
            // The reconcile's own backoff retries (honouring Retry-After), so the credential does not.
            retry: RetryOptions::none(),
            per_try_policies: vec![Arc::new(CountRequests {
                operation: kind.operation(),
                metrics: settings.metrics.clone(),
            })],
            ..Default::default()
        };
        let invalid = |e: azure_core::Error| format!("{who}: invalid credential settings: {e}");
        let source = match &kind {
            CredentialKind::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => Source::Identity(
                azure_identity::ClientSecretCredential::new(
                    tenant_id,
                    client_id.clone(),
                    azure_core::credentials::Secret::new(secret.expose().to_string()),
                    Some(azure_identity::ClientSecretCredentialOptions { client_options }),
                )
                .map_err(invalid)?,
            ),
            CredentialKind::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => Source::Identity(
                azure_identity::WorkloadIdentityCredential::new(Some(
                    azure_identity::WorkloadIdentityCredentialOptions {
                        credential_options: azure_identity::ClientAssertionCredentialOptions {
                            client_options,
                        },
                        client_id: Some(client_id.clone()),
                        tenant_id: Some(tenant_id.clone()),
                        token_file_path: Some(token_file.clone()),
                    },
                ))
                .map_err(invalid)?,
            ),
            CredentialKind::ManagedIdentity { client_id } => Source::Imds {
                http: settings.http.clone(),
                host: settings
                    .imds_host
                    .clone()
                    .unwrap_or_else(|| "http://169.254.169.254".into()),
                client_id: client_id.clone(),
            },
        };
        Ok(TokenCredential {
            kind,
            source,
            metrics: settings.metrics.clone(),
            cache: Default::default(),
        })
    }

    pub fn kind(&self) -> &CredentialKind {
        &self.kind
    }

    /// The principal whose ARM budget this credential's requests draw on.
    pub fn principal(&self) -> String {
        self.kind.cache_key()
    }

    /// A bearer token for `scope` (e.g. `https://management.azure.com/.default`).
    pub async fn token(&self, scope: &str) -> Result<Secret, TokenError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(t) = cache.get(scope)
            && now < t.refresh_at
        {
            return Ok(t.token.clone());
        }
        match self.fetch(scope).await {
            Ok((token, lifetime)) => {
                let expires_at = now + lifetime;
                cache.insert(
                    scope.to_string(),
                    CachedToken {
                        token: token.clone(),
                        refresh_at: expires_at - refresh_margin(lifetime),
                        expires_at,
                    },
                );
                Ok(token)
            }
            Err(e) => {
                // A still-valid cached token is better than failing during a refresh outage.
                if let Some(t) = cache.get(scope)
                    && now + Duration::from_secs(5) < t.expires_at
                {
                    tracing::warn!(error = %e.message, "token refresh failed; using the cached token until it expires");
                    return Ok(t.token.clone());
                }
                Err(e)
            }
        }
    }

    async fn fetch(&self, scope: &str) -> Result<(Secret, Duration), TokenError> {
        let who = self.kind.describe();
        match &self.source {
            Source::Identity(cred) => {
                let t = cred.get_token(&[scope], None).await.map_err(|e| TokenError {
                    transient: transient_identity_error(&e),
                    message: format!(
                        "{who} could not get a token: {e} — check the tenant/client ids, the secret or federated credential, and AZURE_AUTHORITY_HOST"
                    ),
                })?;
                let lifetime = (t.expires_on - azure_core::time::OffsetDateTime::now_utc())
                    .whole_seconds()
                    .max(1) as u64;
                Ok((
                    Secret::new(t.token.secret().to_string()),
                    Duration::from_secs(lifetime),
                ))
            }
            Source::Imds {
                http,
                host,
                client_id,
            } => self.imds(http, host, client_id.as_deref(), scope).await,
        }
    }

    /// The IMDS token protocol (`GET /metadata/identity/oauth2/token`, header `Metadata: true`).
    async fn imds(
        &self,
        http: &reqwest::Client,
        host: &str,
        client_id: Option<&str>,
        scope: &str,
    ) -> Result<(Secret, Duration), TokenError> {
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            access_token: String,
            #[serde(default)]
            expires_in: Option<serde_json::Value>,
            #[serde(default)]
            expires_on: Option<serde_json::Value>,
        }
        fn num(v: &Option<serde_json::Value>) -> Option<i64> {
            match v {
                Some(serde_json::Value::Number(n)) => n.as_i64(),
                Some(serde_json::Value::String(s)) => s.parse().ok(),
                _ => None,
            }
        }
        let who = self.kind.describe();
        let op = self.kind.operation();
        let resource = scope.trim_end_matches("/.default");
        let mut q = vec![("api-version", "2018-02-01"), ("resource", resource)];
        if let Some(c) = client_id {
            q.push(("client_id", c));
        }
        let req = http
            .get(format!(
                "{}/metadata/identity/oauth2/token",
                host.trim_end_matches('/')
            ))
            .header("Metadata", "true")
            .query(&q);
        let resp = super::http::send(&self.metrics, op, false, req)
            .await
            .map_err(|e| TokenError {
                message: format!("{who}: {e}"),
                transient: true,
            })?;
        if !resp.ok() {
            let e = resp.error(op);
            return Err(TokenError {
                transient: e.is_transient(),
                message: format!(
                    "{who} was refused by the identity endpoint (HTTP {} {}): {} — check the identity's client id and that it is assigned to the node or pod",
                    resp.status, e.code, e.message
                ),
            });
        }
        let t: TokenResponse = serde_json::from_str(&resp.body).map_err(|e| TokenError {
            message: format!("{who}: the identity endpoint returned no usable token: {e}"),
            transient: false,
        })?;
        let lifetime = num(&t.expires_in)
            .or_else(|| num(&t.expires_on).map(|on| on - chrono::Utc::now().timestamp()))
            .unwrap_or(3600)
            .max(1) as u64;
        Ok((Secret::new(t.access_token), Duration::from_secs(lifetime)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let k = CredentialKind::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            secret: Secret::new("hunter2"),
        };
        assert!(!format!("{k:?}").contains("hunter2"));
        assert!(!k.cache_key().contains("hunter2"));
        assert!(!k.describe().contains("hunter2"));
    }

    #[test]
    fn identity_failures_that_may_pass_are_transient() {
        use azure_core::error::ErrorKind;
        use azure_core::http::StatusCode;
        let http = |status| {
            azure_core::Error::with_message(
                ErrorKind::HttpResponse {
                    status,
                    error_code: None,
                    raw_response: None,
                },
                "from Entra ID",
            )
        };
        // As azure_identity wraps them: a Credential error around the response.
        let wrapped = |inner| azure_core::Error::with_error(ErrorKind::Credential, inner, "failed");
        assert!(transient_identity_error(&wrapped(http(
            StatusCode::ServiceUnavailable
        ))));
        assert!(transient_identity_error(&wrapped(http(
            StatusCode::TooManyRequests
        ))));
        assert!(!transient_identity_error(&wrapped(http(
            StatusCode::Unauthorized
        ))));
        assert!(!transient_identity_error(&wrapped(http(
            StatusCode::BadRequest
        ))));
        assert!(transient_identity_error(&azure_core::Error::with_message(
            ErrorKind::Connection,
            "refused"
        )));
        assert!(!transient_identity_error(&azure_core::Error::with_message(
            ErrorKind::Credential,
            "no token file"
        )));
    }

    #[test]
    fn refresh_before_expiry() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
    }
}
