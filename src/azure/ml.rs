//! Azure Resource Manager client for Microsoft.MachineLearningServices (api-version
//! 2026-09-01): the workspace, managed online endpoints and their deployments, serverless
//! endpoints, marketplace subscriptions, endpoint keys, the region's VM sizes and vCPU quota,
//! and the model catalogue of a registry (through registry discovery and the registry's
//! management front end). Requests go through `ArmClient::call`, so they draw on the same
//! per-subscription ARM budget and are counted alike; long-running operations are polled with
//! `ArmClient::poll`. Resources are kept as Azure's JSON so a write starts from what Azure holds.

use super::arm::{ArmClient, same_origin};
use super::auth::{Secret, TokenCredential};
use super::budget::{Access, Priority};
use super::http::{Resp, retry_after};
use crate::error::AzureError;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Microsoft.MachineLearningServices api-version spoken to ARM.
pub const ML_API_VERSION: &str = "2026-09-01";

/// Coordinates of an Azure ML workspace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkspaceId {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
}

impl WorkspaceId {
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
    pub fn online_endpoint(&self, name: &str) -> String {
        format!("{}/onlineEndpoints/{name}", self.resource_id())
    }
    pub fn online_deployment(&self, endpoint: &str, name: &str) -> String {
        format!("{}/deployments/{name}", self.online_endpoint(endpoint))
    }
    pub fn serverless_endpoint(&self, name: &str) -> String {
        format!("{}/serverlessEndpoints/{name}", self.resource_id())
    }
    pub fn marketplace_subscription(&self, name: &str) -> String {
        format!("{}/marketplaceSubscriptions/{name}", self.resource_id())
    }
}

/// What Azure answered to a write: its status, the resource's body (if any) and where to poll.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MlWrite {
    pub status: u16,
    pub body: Option<Value>,
    pub async_operation_url: Option<String>,
    pub location_url: Option<String>,
    pub retry_after: Option<Duration>,
}

/// A VM size of the region (`locations/{l}/vmSizes`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct VmSize {
    pub name: String,
    #[serde(default)]
    pub family: String,
    #[serde(rename = "vCPUs", default)]
    pub vcpus: u32,
}

/// vCPU quota of one VM family in a region (`locations/{l}/usages`).
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyUsage {
    pub family: String,
    pub current: u64,
    pub limit: u64,
}

/// What the catalogue says of a registry model (from its tags).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RegistryModel {
    /// The version this entry describes (the latest when none was asked for).
    pub version: String,
    /// Instance types managed compute may run it on (`inference_compute_allow_list`); empty:
    /// not offered on managed compute.
    pub managed_compute_skus: Vec<String>,
    /// Offered as a serverless API.
    pub serverless: bool,
    /// `publisher/offer/plan` of the marketplace offer a serverless endpoint needs.
    pub marketplace_offer: Option<String>,
}

impl RegistryModel {
    /// Parse a `ModelVersion` or `ModelContainer` body.
    pub fn from_json(v: &Value) -> RegistryModel {
        let p = &v["properties"];
        let tags = &p["tags"];
        let skus = tags["inference_compute_allow_list"]
            .as_str()
            .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
            .or_else(|| {
                tags["inference_compute_allow_list"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default();
        RegistryModel {
            version: p["latestVersion"]
                .as_str()
                .or(v["name"].as_str())
                .unwrap_or_default()
                .to_string(),
            managed_compute_skus: skus,
            serverless: tags["serverless_api"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
            marketplace_offer: tags["marketplace_offer"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        }
    }

    /// The marketplace publisher id, when an offer is needed.
    pub fn marketplace_publisher(&self) -> Option<&str> {
        self.marketplace_offer
            .as_deref()
            .and_then(|o| o.split('/').next())
    }
}

/// A registry model reference `azureml://registries/{r}/models/{m}[/versions/{v}]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelRef {
    pub registry: String,
    pub name: String,
    pub version: Option<String>,
}

impl ModelRef {
    pub fn parse(s: &str) -> Option<ModelRef> {
        let rest = s.strip_prefix("azureml://registries/")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let (r, m, v) = match parts.as_slice() {
            [r, "models", m] => (r, m, None),
            [r, "models", m, "versions", v] => (r, m, Some(v.to_string())),
            _ => return None,
        };
        (!r.is_empty() && !m.is_empty()).then(|| ModelRef {
            registry: r.to_string(),
            name: m.to_string(),
            version: v,
        })
    }
}

/// Where a registry lives (registry discovery's answer).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Discovery {
    subscription_id: String,
    resource_group: String,
    primary_region_resource_provider_uri: String,
}

/// Hosts of Azure ML's own regional services, which take ARM tokens (public, China, US Gov).
const ML_SERVICE_SUFFIXES: &[&str] = &[".api.azureml.ms", ".api.ml.azure.cn", ".api.ml.azure.us"];

/// The Azure ML client: a view of the ARM client with the ML api-version.
pub struct MlClient<'a> {
    pub arm: &'a ArmClient,
    /// Registry discovery base URL for the workspace's region.
    pub discovery: String,
}

impl MlClient<'_> {
    fn url(&self, path: &str) -> String {
        self.arm.url_with(path, ML_API_VERSION)
    }

    /// Whether an ARM token may be sent to `url`: the configured ARM or discovery origin, or
    /// one of Azure ML's own regional service hosts.
    fn trusted(&self, url: &str) -> bool {
        same_origin(url, self.arm.endpoint())
            || same_origin(url, &self.discovery)
            || url::Url::parse(url).is_ok_and(|u| {
                u.scheme() == "https"
                    && u.host_str().is_some_and(|h| {
                        let h = h.to_ascii_lowercase();
                        ML_SERVICE_SUFFIXES.iter().any(|s| h.ends_with(s))
                    })
            })
    }

    async fn send(
        &self,
        cred: &TokenCredential,
        op: &str,
        access: Access,
        method: reqwest::Method,
        url: String,
        body: Option<&Value>,
    ) -> Result<Resp, AzureError> {
        if !self.trusted(&url) {
            return Err(AzureError {
                operation: op.into(),
                status: None,
                code: "UntrustedEndpoint".into(),
                message: format!(
                    "refusing to send a token to {url}: it is neither the ARM endpoint nor an Azure ML service host (check AZURE_ML_REGISTRY_DISCOVERY_ENDPOINT)"
                ),
                class: crate::error::ErrorClass::Terminal,
                retry_after: None,
            });
        }
        self.arm
            .call(cred, op, access, Priority::Urgent, method, url, body)
            .await
    }

    /// GET an ARM resource by id; None when it does not exist.
    pub async fn get(
        &self,
        cred: &TokenCredential,
        op: &str,
        id: &str,
    ) -> Result<Option<Value>, AzureError> {
        self.send(
            cred,
            op,
            Access::Read,
            reqwest::Method::GET,
            self.url(id),
            None,
        )
        .await?
        .json_unless_missing(op)
    }

    /// Every item of a paged ARM listing.
    pub async fn list(
        &self,
        cred: &TokenCredential,
        op: &str,
        path: &str,
    ) -> Result<Vec<Value>, AzureError> {
        let mut out = vec![];
        let mut next = Some(self.url(path));
        let mut pages = 0;
        while let Some(url) = next.take() {
            if pages >= 100 {
                break;
            }
            pages += 1;
            let page: Value = self
                .send(cred, op, Access::Read, reqwest::Method::GET, url, None)
                .await?
                .ok_json(op)?;
            out.extend(page["value"].as_array().cloned().unwrap_or_default());
            next = page["nextLink"]
                .as_str()
                .filter(|l| !l.is_empty())
                .map(str::to_string);
        }
        Ok(out)
    }

    /// PUT a resource (long-running: poll what is returned).
    pub async fn put(
        &self,
        cred: &TokenCredential,
        op: &str,
        id: &str,
        body: &Value,
    ) -> Result<MlWrite, AzureError> {
        let r = self
            .send(
                cred,
                op,
                Access::Write,
                reqwest::Method::PUT,
                self.url(id),
                Some(body),
            )
            .await?;
        write_outcome(&r, op)
    }

    /// DELETE a resource; status 404 when it was already gone.
    pub async fn delete(
        &self,
        cred: &TokenCredential,
        op: &str,
        id: &str,
    ) -> Result<MlWrite, AzureError> {
        let r = self
            .send(
                cred,
                op,
                Access::Delete,
                reqwest::Method::DELETE,
                self.url(id),
                None,
            )
            .await?;
        if r.status == 404 {
            return Ok(MlWrite {
                status: 404,
                ..Default::default()
            });
        }
        let mut o = write_outcome(&r, op)?;
        o.body = None;
        Ok(o)
    }

    /// POST listKeys of an online or serverless endpoint: the primary key.
    pub async fn primary_key(
        &self,
        cred: &TokenCredential,
        op: &str,
        endpoint_id: &str,
    ) -> Result<Option<Secret>, AzureError> {
        let r = self
            .send(
                cred,
                op,
                Access::Read,
                reqwest::Method::POST,
                self.url(&format!("{endpoint_id}/listKeys")),
                None,
            )
            .await?;
        let v: Value = r.ok_json(op)?;
        // Online endpoints answer {primaryKey, secondaryKey}; serverless ones {keys: {...}} in
        // some api-versions: accept both.
        let key = v["primaryKey"]
            .as_str()
            .or(v["keys"]["primaryKey"].as_str())
            .filter(|k| !k.is_empty());
        Ok(key.map(Secret::new))
    }

    /// The region's VM sizes.
    pub async fn vm_sizes(
        &self,
        cred: &TokenCredential,
        subscription: &str,
        location: &str,
    ) -> Result<Vec<VmSize>, AzureError> {
        let op = "ml.vmSizes";
        let path = format!(
            "/subscriptions/{subscription}/providers/Microsoft.MachineLearningServices/locations/{location}/vmSizes"
        );
        let v: Value = self
            .send(
                cred,
                op,
                Access::Read,
                reqwest::Method::GET,
                self.url(&path),
                None,
            )
            .await?
            .ok_json(op)?;
        Ok(v["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| serde_json::from_value(x.clone()).ok())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// vCPU quota per VM family in the region.
    pub async fn usages(
        &self,
        cred: &TokenCredential,
        subscription: &str,
        location: &str,
    ) -> Result<Vec<FamilyUsage>, AzureError> {
        let path = format!(
            "/subscriptions/{subscription}/providers/Microsoft.MachineLearningServices/locations/{location}/usages"
        );
        let items = self.list(cred, "ml.usages", &path).await?;
        Ok(items
            .iter()
            .filter_map(|u| {
                Some(FamilyUsage {
                    family: u["name"]["value"].as_str()?.to_string(),
                    current: u["currentValue"].as_u64().unwrap_or(0),
                    limit: u["limit"].as_u64().unwrap_or(0),
                })
            })
            .collect())
    }

    /// What the registry's catalogue says of a model (its version when given, else its
    /// latest); None when the registry or the model does not exist.
    pub async fn registry_model(
        &self,
        cred: &TokenCredential,
        model: &ModelRef,
    ) -> Result<Option<RegistryModel>, AzureError> {
        let op = "ml.registryDiscovery";
        let url = format!(
            "{}registrymanagement/v1.0/registries/{}/discovery",
            self.discovery, model.registry
        );
        let r = self
            .send(cred, op, Access::Read, reqwest::Method::GET, url, None)
            .await?;
        let Some(d): Option<Discovery> = r.json_unless_missing(op)? else {
            return Ok(None);
        };
        let mut path = format!(
            "{}mferp/managementfrontend/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/registries/{}/models/{}",
            super::cloud::with_slash(&d.primary_region_resource_provider_uri),
            d.subscription_id,
            d.resource_group,
            model.registry,
            model.name
        );
        if let Some(v) = &model.version {
            path.push_str(&format!("/versions/{v}"));
        }
        let op = "ml.registryModel";
        let url = format!("{path}?api-version={ML_API_VERSION}");
        let r = self
            .send(cred, op, Access::Read, reqwest::Method::GET, url, None)
            .await?;
        let v: Option<Value> = r.json_unless_missing(op)?;
        Ok(v.as_ref().map(RegistryModel::from_json))
    }
}

fn write_outcome(r: &Resp, op: &str) -> Result<MlWrite, AzureError> {
    if !r.ok() {
        return Err(r.error(op));
    }
    let body = if r.body.trim().is_empty() {
        None
    } else {
        Some(r.json::<Value>(op)?)
    };
    Ok(MlWrite {
        status: r.status,
        body,
        async_operation_url: r.header("azure-asyncoperation"),
        location_url: r.header("location"),
        retry_after: retry_after(&r.headers),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_tags_say_where_a_model_may_run() {
        let v = serde_json::json!({"name": "7", "properties": {"tags": {
            "inference_compute_allow_list": "[\"Standard_NC24ads_A100_v4\"]",
            "serverless_api": "true",
            "marketplace_offer": "metagenai/offer/plan"}}});
        let m = RegistryModel::from_json(&v);
        assert_eq!(m.version, "7");
        assert_eq!(m.managed_compute_skus, vec!["Standard_NC24ads_A100_v4"]);
        assert!(m.serverless);
        assert_eq!(m.marketplace_publisher(), Some("metagenai"));
        let none = RegistryModel::from_json(&serde_json::json!({"properties": {"tags": {}}}));
        assert!(none.managed_compute_skus.is_empty() && !none.serverless);
    }

    #[test]
    fn model_references() {
        let r = ModelRef::parse("azureml://registries/azureml/models/Phi-4/versions/7").unwrap();
        assert_eq!((r.registry.as_str(), r.name.as_str()), ("azureml", "Phi-4"));
        assert_eq!(r.version.as_deref(), Some("7"));
        assert_eq!(
            ModelRef::parse("azureml://registries/azureml/models/Phi-4")
                .unwrap()
                .version,
            None
        );
        assert!(ModelRef::parse("azureml:Phi-4:7").is_none());
    }
}
