//! Entra ID token credentials, hand-rolled (small, shares the one reqwest client that carries the
//! custom CA bundle, and needs no pre-release azure_identity/azure_core crates):
//! client secret, workload identity (federated token file as client assertion), managed identity
//! (IMDS-style endpoint, overridable by AZURE_POD_IDENTITY_AUTHORITY_HOST). Tokens are cached per
//! scope and refreshed before expiry; they are never logged (Debug is redacted).

use crate::metrics::Metrics;
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
    /// Cache key (no secret material: a client secret contributes only a hash).
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
            } => {
                format!("wi:{tenant_id}:{client_id}:{}", token_file.display())
            }
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
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    refresh_at: Instant,
    expires_at: Instant,
}

/// A token source with a per-scope cache.
pub struct TokenCredential {
    kind: CredentialKind,
    http: reqwest::Client,
    authority_host: String,
    imds_host: String,
    metrics: Arc<Metrics>,
    cache: tokio::sync::Mutex<HashMap<String, CachedToken>>,
}

impl std::fmt::Debug for TokenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenCredential({})", self.kind.describe())
    }
}

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

/// When to refresh a token valid for `lifetime`: 5 minutes before expiry, or at half-life for short tokens.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 2).min(Duration::from_secs(300))
}

impl TokenCredential {
    pub fn new(
        kind: CredentialKind,
        http: reqwest::Client,
        authority_host: String,
        imds_host: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        TokenCredential {
            kind,
            http,
            authority_host: super::cloud::with_slash(&authority_host),
            imds_host: imds_host.unwrap_or_else(|| "http://169.254.169.254".into()),
            metrics,
            cache: Default::default(),
        }
    }

    pub fn kind(&self) -> &CredentialKind {
        &self.kind
    }

    /// A bearer token for `scope` (e.g. `https://management.azure.com/.default`).
    pub async fn token(&self, scope: &str) -> Result<Secret, String> {
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
                let refresh_at = expires_at - refresh_margin(lifetime);
                cache.insert(
                    scope.to_string(),
                    CachedToken {
                        token: token.clone(),
                        refresh_at,
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
                    tracing::warn!(error = %e, "token refresh failed; using the cached token until it expires");
                    return Ok(t.token.clone());
                }
                Err(e)
            }
        }
    }

    async fn fetch(&self, scope: &str) -> Result<(Secret, Duration), String> {
        let who = self.kind.describe();
        let (op, req) = match &self.kind {
            CredentialKind::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => (
                "token.client_secret",
                self.http
                    .post(format!(
                        "{}{}/oauth2/v2.0/token",
                        self.authority_host, tenant_id
                    ))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", client_id.as_str()),
                        ("client_secret", secret.expose()),
                        ("scope", scope),
                    ]),
            ),
            CredentialKind::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                let assertion = tokio::fs::read_to_string(token_file).await.map_err(|e| {
                    format!(
                        "{who}: cannot read the federated token file {} (AZURE_FEDERATED_TOKEN_FILE; is the service account token projected?): {e}",
                        token_file.display()
                    )
                })?;
                (
                    "token.workload_identity",
                    self.http
                        .post(format!(
                            "{}{}/oauth2/v2.0/token",
                            self.authority_host, tenant_id
                        ))
                        .form(&[
                            ("grant_type", "client_credentials"),
                            ("client_id", client_id.as_str()),
                            (
                                "client_assertion_type",
                                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                            ),
                            ("client_assertion", assertion.trim()),
                            ("scope", scope),
                        ]),
                )
            }
            CredentialKind::ManagedIdentity { client_id } => {
                let resource = scope.trim_end_matches("/.default");
                let mut q = vec![("api-version", "2018-02-01"), ("resource", resource)];
                if let Some(c) = client_id {
                    q.push(("client_id", c.as_str()));
                }
                (
                    "token.managed_identity",
                    self.http
                        .get(format!(
                            "{}/metadata/identity/oauth2/token",
                            self.imds_host.trim_end_matches('/')
                        ))
                        .header("Metadata", "true")
                        .query(&q),
                )
            }
        };
        let resp = super::http::send(&self.metrics, op, false, req)
            .await
            .map_err(|e| format!("{who}: {e}"))?;
        if !resp.ok() {
            let e = resp.error(op);
            return Err(format!(
                "{who} was refused by the identity endpoint (HTTP {} {}): {} — check the tenant/client ids, the secret or federated credential, and AZURE_AUTHORITY_HOST",
                e.status, e.code, e.message
            ));
        }
        let t: TokenResponse = serde_json::from_str(&resp.body)
            .map_err(|e| format!("{who}: the identity endpoint returned no usable token: {e}"))?;
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
