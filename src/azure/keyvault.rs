//! Key Vault secrets client (api-version 2026-04-01): get latest, set. Values are wrapped in
//! `Secret` so they never reach logs; callers compare, never print.

use super::auth::{Secret, TokenCredential};
use super::http::send;
use crate::error::AzureError;
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Deserialize, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretBundle {
    pub value: Option<String>,
    pub id: Option<String>,
    pub content_type: Option<String>,
    pub attributes: Option<SecretAttributes>,
    pub tags: Option<BTreeMap<String, String>>,
    pub kid: Option<String>,
    pub managed: Option<bool>,
}

impl std::fmt::Debug for SecretBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBundle")
            .field("id", &self.id)
            .field("value", &"<redacted>")
            .finish()
    }
}

impl SecretBundle {
    /// The version segment of `id` (`.../secrets/{name}/{version}`).
    pub fn version(&self) -> Option<String> {
        let id = self.id.as_deref()?;
        let mut parts = id.trim_end_matches('/').rsplit('/');
        let v = parts.next()?;
        let _name = parts.next()?;
        (parts.next()? == "secrets").then(|| v.to_string())
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretAttributes {
    pub enabled: Option<bool>,
    pub created: Option<i64>,
    pub updated: Option<i64>,
    pub recovery_level: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SetSecretBody<'a> {
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: &'a BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct KeyVaultClient {
    http: reqwest::Client,
    scope: String,
    metrics: Arc<Metrics>,
}

impl KeyVaultClient {
    pub fn new(http: reqwest::Client, scope: String, metrics: Arc<Metrics>) -> Self {
        KeyVaultClient {
            http,
            scope,
            metrics,
        }
    }

    fn url(vault_uri: &str, name: &str) -> String {
        format!(
            "{}secrets/{}?api-version={}",
            super::cloud::with_slash(vault_uri),
            name,
            super::KEY_VAULT_API_VERSION
        )
    }

    async fn token(&self, cred: &TokenCredential, op: &str) -> Result<Secret, AzureError> {
        cred.token(&self.scope)
            .await
            .map_err(|m| AzureError::credential(op, m))
    }

    /// Latest version of a secret; `None` when absent (404 SecretNotFound).
    pub async fn get_secret(
        &self,
        cred: &TokenCredential,
        vault_uri: &str,
        name: &str,
    ) -> Result<Option<SecretBundle>, AzureError> {
        let op = "keyvault.getSecret";
        let token = self.token(cred, op).await?;
        let url = format!(
            "{}secrets/{}/?api-version={}",
            super::cloud::with_slash(vault_uri),
            name,
            super::KEY_VAULT_API_VERSION
        );
        let r = send(
            &self.metrics,
            op,
            false,
            self.http.get(url).bearer_auth(token.expose()),
        )
        .await?;
        r.json_unless_missing(op)
    }

    pub async fn set_secret(
        &self,
        cred: &TokenCredential,
        vault_uri: &str,
        name: &str,
        value: &Secret,
        content_type: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<SecretBundle, AzureError> {
        let op = "keyvault.setSecret";
        let token = self.token(cred, op).await?;
        let body = SetSecretBody {
            value: value.expose(),
            content_type,
            tags,
        };
        let r = send(
            &self.metrics,
            op,
            true,
            self.http
                .put(Self::url(vault_uri, name))
                .bearer_auth(token.expose())
                .json(&body),
        )
        .await?;
        if !r.ok() {
            return Err(r.error(op));
        }
        r.json(op)
    }
}

/// Constant-time comparison, so the key check leaks nothing through timing.
pub fn secret_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_id() {
        let b = SecretBundle {
            id: Some("https://myvault.vault.azure.net/secrets/crpsecret/03bcccc7c8cf4546a0e3e21e52560441".into()),
            ..Default::default()
        };
        assert_eq!(
            b.version().as_deref(),
            Some("03bcccc7c8cf4546a0e3e21e52560441")
        );
        assert!(!format!("{b:?}").contains("value\": \"m"));
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "ab"));
    }
}
