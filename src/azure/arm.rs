//! Azure Resource Manager client for Microsoft.CognitiveServices (api-version 2026-09-01):
//! account GET, listKeys, the account's models, quota usages, the paged deployment LIST,
//! deployment GET/PUT/DELETE/pause/resume and long-running operation polling. Every call draws
//! on the ARM budget of its subscription and principal (`budget`) and reports ARM's remaining
//! count back to it. Types are permissive (every field optional, unknown fields ignored) so every
//! official example parses; a deployment read fresh keeps Azure's whole body, so a write can
//! start from it and drop nothing Azure holds.

use super::auth::TokenCredential;
use super::budget::{Access, ArmBudget, Priority, subscription_of};
use super::http::{Resp, ratelimit_remaining, retry_after, send};
use crate::error::AzureError;
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

// ------------------------------------------------------------------ types

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Sku {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ThrottlingRule {
    pub key: Option<String>,
    pub renewal_period: Option<f64>,
    pub count: Option<f64>,
}

/// Deployment as ARM returns it.
#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: Option<String>,
    pub name: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub sku: Option<Sku>,
    pub properties: Option<DeploymentProperties>,
    /// Azure's whole body, kept for a deployment read fresh before a write (the write starts
    /// from it); dropped from listings to keep memory flat.
    #[serde(skip)]
    pub raw: Option<Arc<serde_json::Value>>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentProperties {
    pub provisioning_state: Option<String>,
    pub model: Option<DeploymentModel>,
    pub rai_policy_name: Option<String>,
    pub version_upgrade_option: Option<String>,
    pub current_capacity: Option<i32>,
    pub rate_limits: Option<Vec<ThrottlingRule>>,
    pub spillover_deployment_name: Option<String>,
    pub service_tier: Option<String>,
    pub deployment_state: Option<String>,
}

impl Deployment {
    /// Parse Azure's body, keeping it whole.
    pub fn from_json(v: serde_json::Value) -> Result<Self, serde_json::Error> {
        let mut d: Deployment = serde_json::from_value(v.clone())?;
        d.raw = Some(Arc::new(v));
        Ok(d)
    }
    /// What a listing keeps: without Azure's whole body, and of the tags only the operator's
    /// ownership tags (the only ones decisions read).
    pub fn slim(mut self) -> Self {
        self.raw = None;
        if let Some(tags) = self.tags.as_mut() {
            tags.retain(|k, _| k.starts_with("aoai.dev-"));
        }
        self
    }
    pub fn props(&self) -> DeploymentProperties {
        self.properties.clone().unwrap_or_default()
    }
    pub fn provisioning_state(&self) -> Option<&str> {
        self.properties.as_ref()?.provisioning_state.as_deref()
    }
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.as_ref()?.get(key).map(String::as_str)
    }
}

#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub location: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub sku: Option<Sku>,
    pub properties: Option<AccountProperties>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AccountProperties {
    pub endpoint: Option<String>,
    pub provisioning_state: Option<String>,
    pub endpoints: Option<BTreeMap<String, String>>,
}

/// listKeys result. Debug never prints the keys.
#[derive(Deserialize, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeys {
    pub key1: Option<String>,
    pub key2: Option<String>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeys(<redacted>)")
    }
}

#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    pub id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub error: Option<OperationError>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
pub struct OperationError {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// One entry of `GET {account}/models` (Accounts_ListModels).
#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AccountModel {
    pub name: Option<String>,
    pub format: Option<String>,
    pub version: Option<String>,
    pub base_model: Option<DeploymentModel>,
    pub is_default_version: Option<bool>,
    pub max_capacity: Option<i64>,
    pub skus: Option<Vec<ModelSku>>,
    pub lifecycle_status: Option<String>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ModelSku {
    pub name: Option<String>,
    pub usage_name: Option<String>,
    pub capacity: Option<CapacityConfig>,
}

/// The spec's `CapacityConfig`: what capacities a model accepts for a SKU.
#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CapacityConfig {
    pub minimum: Option<i64>,
    pub maximum: Option<i64>,
    pub step: Option<i64>,
    pub default: Option<i64>,
    pub allowed_values: Option<Vec<i64>>,
}

/// One entry of `GET .../locations/{location}/usages`.
#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub name: Option<UsageName>,
    pub current_value: Option<f64>,
    pub limit: Option<f64>,
    pub unit: Option<String>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UsageName {
    pub value: Option<String>,
    pub localized_value: Option<String>,
}

/// One page of an ARM list (`value`, `nextLink`).
#[derive(Deserialize, Debug)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "nextLink")]
    pub next_link: Option<String>,
}

/// Coordinates of an account.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountId {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
}

impl AccountId {
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
    /// Lower-cased resource id: the key of the per-account write slot and caches (ARM ids are
    /// case-insensitive).
    pub fn key(&self) -> String {
        self.resource_id().to_ascii_lowercase()
    }
}

/// A write's outcome: the body Azure returned and, for a long-running operation, where to poll.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteOutcome {
    pub status: u16,
    pub deployment: Option<Deployment>,
    pub async_operation_url: Option<String>,
    pub location_url: Option<String>,
    pub retry_after: Option<Duration>,
}

impl WriteOutcome {
    pub fn is_long_running(&self) -> bool {
        if self.async_operation_url.is_none() && self.location_url.is_none() {
            return false;
        }
        match self
            .deployment
            .as_ref()
            .and_then(|d| d.provisioning_state())
        {
            Some(s) => !is_terminal_state(s),
            None => self.status == 202 || self.status == 201,
        }
    }
}

/// Result of polling a long-running operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Poll {
    InProgress { retry_after: Option<Duration> },
    Succeeded,
    Failed { code: String, message: String },
}

pub fn is_terminal_state(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "succeeded" | "failed" | "canceled" | "cancelled"
    )
}

/// A listing of an account's deployments: every page, and how many pages it took.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub deployments: Vec<Deployment>,
    pub pages: u32,
}

// ------------------------------------------------------------------ client

#[derive(Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    endpoint: String,
    scope: String,
    metrics: Arc<Metrics>,
    budget: Arc<ArmBudget>,
}

/// At most this many pages are followed in one listing (a runaway nextLink chain stops).
const MAX_PAGES: u32 = 200;

impl ArmClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        scope: String,
        metrics: Arc<Metrics>,
        budget: Arc<ArmBudget>,
    ) -> Self {
        ArmClient {
            http,
            endpoint: super::cloud::with_slash(endpoint),
            scope,
            metrics,
            budget,
        }
    }

    fn url(&self, path: &str) -> String {
        self.url_with(path, super::ARM_API_VERSION)
    }

    /// `{ARM}{path}?api-version={api_version}`.
    pub(crate) fn url_with(&self, path: &str, api_version: &str) -> String {
        format!(
            "{}{}?api-version={api_version}",
            self.endpoint,
            path.trim_start_matches('/'),
        )
    }

    /// The configured ARM base URL.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn deployment_path(account: &AccountId, name: &str) -> String {
        format!("{}/deployments/{}", account.resource_id(), name)
    }

    /// One ARM request: paced by the budget, authenticated, counted, and its remaining-budget
    /// headers reported back.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn call(
        &self,
        cred: &TokenCredential,
        operation: &str,
        access: Access,
        priority: Priority,
        method: reqwest::Method,
        url: String,
        body: Option<&serde_json::Value>,
    ) -> Result<Resp, AzureError> {
        let token = cred
            .token(&self.scope)
            .await
            .map_err(|m| AzureError::credential(operation, m))?;
        let subscription = subscription_of(&url).map(str::to_string);
        let principal = cred.principal();
        if let Some(s) = &subscription {
            self.budget.acquire(s, &principal, access, priority).await;
        }
        let mut req = self.http.request(method, url).bearer_auth(token.expose());
        if let Some(b) = body {
            req = req.json(b);
        }
        let write = access != Access::Read;
        let r = send(&self.metrics, operation, write, req).await?;
        if let Some(s) = &subscription {
            let throttled = (r.status == 429)
                .then(|| retry_after(&r.headers).unwrap_or(Duration::from_secs(1)));
            self.budget.observe(
                s,
                &principal,
                access,
                ratelimit_remaining(&r.headers, access.header_word()),
                throttled,
            );
        }
        Ok(r)
    }

    async fn get(
        &self,
        cred: &TokenCredential,
        op: &str,
        priority: Priority,
        url: String,
    ) -> Result<Resp, AzureError> {
        self.call(
            cred,
            op,
            Access::Read,
            priority,
            reqwest::Method::GET,
            url,
            None,
        )
        .await
    }

    pub async fn get_account(
        &self,
        cred: &TokenCredential,
        account: &AccountId,
    ) -> Result<Account, AzureError> {
        let op = "accounts.get";
        self.get(cred, op, Priority::Urgent, self.url(&account.resource_id()))
            .await?
            .ok_json(op)
    }

    pub async fn list_keys(
        &self,
        cred: &TokenCredential,
        account: &AccountId,
    ) -> Result<ApiKeys, AzureError> {
        let op = "accounts.listKeys";
        let path = format!("{}/listKeys", account.resource_id());
        self.call(
            cred,
            op,
            Access::Read,
            Priority::Urgent,
            reqwest::Method::POST,
            self.url(&path),
            None,
        )
        .await?
        .ok_json(op)
    }

    /// Models the account can deploy, with their SKUs and capacity rules.
    pub async fn list_account_models(
        &self,
        cred: &TokenCredential,
        account: &AccountId,
    ) -> Result<Vec<AccountModel>, AzureError> {
        let url = self.url(&format!("{}/models", account.resource_id()));
        Ok(self
            .pages(cred, "accounts.listModels", Priority::Urgent, url)
            .await?
            .0)
    }

    /// Quota usages of a subscription in a location.
    pub async fn list_usages(
        &self,
        cred: &TokenCredential,
        subscription_id: &str,
        location: &str,
    ) -> Result<Vec<Usage>, AzureError> {
        let path = format!(
            "/subscriptions/{subscription_id}/providers/Microsoft.CognitiveServices/locations/{location}/usages"
        );
        Ok(self
            .pages(cred, "usages.list", Priority::Urgent, self.url(&path))
            .await?
            .0)
    }

    /// Every deployment of an account (following `nextLink`).
    pub async fn list_deployments(
        &self,
        cred: &TokenCredential,
        account: &AccountId,
        priority: Priority,
    ) -> Result<Listing, AzureError> {
        let url = self.url(&format!("{}/deployments", account.resource_id()));
        // Parsed straight into the typed form (no JSON tree of the whole page in memory).
        let (deployments, pages) = self
            .pages::<Deployment>(cred, "deployments.list", priority, url)
            .await?;
        Ok(Listing { deployments, pages })
    }

    async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        cred: &TokenCredential,
        op: &str,
        priority: Priority,
        first: String,
    ) -> Result<(Vec<T>, u32), AzureError> {
        let mut out = vec![];
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            if pages >= MAX_PAGES || !same_origin(&url, &self.endpoint) {
                break;
            }
            pages += 1;
            let page: Page<T> = self.get(cred, op, priority, url).await?.ok_json(op)?;
            out.extend(page.value);
            next = page.next_link.filter(|l| !l.is_empty());
        }
        Ok((out, pages))
    }

    /// GET a deployment; `None` when it does not exist (404).
    pub async fn get_deployment(
        &self,
        cred: &TokenCredential,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<Deployment>, AzureError> {
        let op = "deployments.get";
        let r = self
            .get(
                cred,
                op,
                Priority::Urgent,
                self.url(&Self::deployment_path(account, name)),
            )
            .await?;
        let v: Option<serde_json::Value> = r.json_unless_missing(op)?;
        v.map(Deployment::from_json).transpose().map_err(|e| {
            AzureError::invalid_response(
                op,
                r.status,
                format!("cannot parse Azure's deployment: {e}"),
            )
        })
    }

    pub async fn put_deployment(
        &self,
        cred: &TokenCredential,
        account: &AccountId,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<WriteOutcome, AzureError> {
        let op = "deployments.put";
        let r = self
            .call(
                cred,
                op,
                Access::Write,
                Priority::Urgent,
                reqwest::Method::PUT,
                self.url(&Self::deployment_path(account, name)),
                Some(body),
            )
            .await?;
        outcome(&r, op)
    }

    pub async fn delete_deployment(
        &self,
        cred: &TokenCredential,
        account: &AccountId,
        name: &str,
    ) -> Result<WriteOutcome, AzureError> {
        let op = "deployments.delete";
        let r = self
            .call(
                cred,
                op,
                Access::Delete,
                Priority::Urgent,
                reqwest::Method::DELETE,
                self.url(&Self::deployment_path(account, name)),
                None,
            )
            .await?;
        if r.status == 404 {
            return Ok(WriteOutcome {
                status: 404,
                ..Default::default()
            });
        }
        let mut o = outcome(&r, op)?;
        // A 202 for DELETE is long-running; its body (if any) is not the deployment's future.
        if r.status == 202 {
            o.deployment = None;
        }
        Ok(o)
    }

    /// POST pause or resume.
    pub async fn set_paused(
        &self,
        cred: &TokenCredential,
        account: &AccountId,
        name: &str,
        paused: bool,
    ) -> Result<WriteOutcome, AzureError> {
        let (op, action) = if paused {
            ("deployments.pause", "pause")
        } else {
            ("deployments.resume", "resume")
        };
        let path = format!("{}/{}", Self::deployment_path(account, name), action);
        let r = self
            .call(
                cred,
                op,
                Access::Write,
                Priority::Urgent,
                reqwest::Method::POST,
                self.url(&path),
                None,
            )
            .await?;
        outcome(&r, op)
    }

    /// Poll a long-running operation (Azure-AsyncOperation preferred, else Location).
    /// The token is only sent to the configured ARM host.
    pub async fn poll(
        &self,
        cred: &TokenCredential,
        async_operation_url: Option<&str>,
        location_url: Option<&str>,
    ) -> Result<Poll, AzureError> {
        let op = "operations.get";
        let (url, is_async) = match (async_operation_url, location_url) {
            (Some(u), _) => (u, true),
            (None, Some(u)) => (u, false),
            (None, None) => return Ok(Poll::Succeeded),
        };
        if !same_origin(url, &self.endpoint) {
            return Err(AzureError {
                operation: op.into(),
                status: None,
                code: "UntrustedOperationUrl".into(),
                message: format!(
                    "Azure returned an operation URL outside the configured ARM endpoint {}; refusing to send a token there (check AZURE_RESOURCE_MANAGER_ENDPOINT)",
                    self.endpoint
                ),
                class: crate::error::ErrorClass::Terminal,
                retry_after: None,
            });
        }
        let r = self
            .get(cred, op, Priority::Urgent, url.to_string())
            .await?;
        let retry = retry_after(&r.headers);
        if is_async {
            let s: OperationStatus = r.ok_json(op)?;
            Ok(poll_from_status(&s, retry))
        } else {
            match r.status {
                202 => Ok(Poll::InProgress { retry_after: retry }),
                200..=299 => Ok(Poll::Succeeded),
                404 => Ok(Poll::Succeeded), // Location of a finished DELETE
                _ => {
                    let e = r.error(op);
                    if e.is_transient() {
                        return Err(e);
                    }
                    Ok(Poll::Failed {
                        code: e.code,
                        message: e.message,
                    })
                }
            }
        }
    }
}

pub fn poll_from_status(s: &OperationStatus, retry: Option<Duration>) -> Poll {
    match s.status.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("succeeded") => Poll::Succeeded,
        Some("failed") | Some("canceled") | Some("cancelled") => {
            let e = s.error.clone().unwrap_or_default();
            Poll::Failed {
                code: e
                    .code
                    .unwrap_or_else(|| s.status.clone().unwrap_or_default()),
                message: e
                    .message
                    .unwrap_or_else(|| "the operation did not succeed".into()),
            }
        }
        _ => Poll::InProgress { retry_after: retry },
    }
}

fn outcome(r: &Resp, op: &str) -> Result<WriteOutcome, AzureError> {
    if !r.ok() {
        return Err(r.error(op));
    }
    let deployment = if r.body.trim().is_empty() {
        None
    } else {
        let v: serde_json::Value = r.json(op)?;
        Some(Deployment::from_json(v).map_err(|e| {
            AzureError::invalid_response(
                op,
                r.status,
                format!("cannot parse Azure's deployment: {e}"),
            )
        })?)
    };
    Ok(WriteOutcome {
        status: r.status,
        deployment,
        async_operation_url: r.header("azure-asyncoperation"),
        location_url: r.header("location"),
        retry_after: retry_after(&r.headers),
    })
}

pub(crate) fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str().map(str::to_ascii_lowercase)
                    == b.host_str().map(str::to_ascii_lowercase)
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(same_origin(
            "https://127.0.0.1:5/x/y?z",
            "https://127.0.0.1:5/"
        ));
        assert!(!same_origin("https://evil:5/x", "https://127.0.0.1:5/"));
        assert!(same_origin(
            "https://management.azure.com/x",
            "https://management.azure.com:443/"
        ));
    }

    #[test]
    fn poll_states() {
        let s = |st: &str| OperationStatus {
            status: Some(st.into()),
            ..Default::default()
        };
        assert_eq!(poll_from_status(&s("Succeeded"), None), Poll::Succeeded);
        assert!(matches!(
            poll_from_status(&s("InProgress"), None),
            Poll::InProgress { .. }
        ));
        assert!(matches!(
            poll_from_status(&s("Failed"), None),
            Poll::Failed { .. }
        ));
    }

    #[test]
    fn a_deployment_read_fresh_keeps_the_whole_body_and_a_listing_does_not() {
        let v = serde_json::json!({
            "name": "d", "sku": {"name": "GlobalStandard", "capacity": 1},
            "properties": {"model": {"format": "OpenAI", "name": "m", "publisher": "OpenAI"},
                           "capacitySettings": {"designatedCapacity": 5}}
        });
        let d = Deployment::from_json(v.clone()).unwrap();
        assert_eq!(d.raw.as_deref(), Some(&v));
        assert!(d.clone().slim().raw.is_none());
        assert_eq!(d.props().model.unwrap().name.as_deref(), Some("m"));
    }
}
