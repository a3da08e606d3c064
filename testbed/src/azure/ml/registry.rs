//! The model registry catalogue (`registries/{r}/models/{m}/versions/{v}`): which models exist,
//! which instance types managed compute may run each one on (Azure's
//! `inference_compute_allow_list` tag; empty = not offered on managed compute), whether it is
//! offered as a serverless API and whether that needs a marketplace subscription first. Seeded
//! with Microsoft-style system registries (`azureml`, `azureml-mistral`, `azureml-cohere`).
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::errors::not_found;
use super::routes::Ctx;
use super::state::provider_prefix;
use crate::azure::server::{Resp, json_response};

/// Marketplace plan a serverless endpoint of a partner model is billed through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarketplaceOffer {
    pub publisher_id: String,
    pub offer_id: String,
    pub plan_id: String,
}

/// One model version of a registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistryModel {
    pub registry: String,
    pub name: String,
    pub version: String,
    /// Instance types a managed online deployment of this model may use; empty = the model is
    /// not offered on managed compute.
    #[serde(default)]
    pub managed_compute_skus: Vec<String>,
    /// Offered as a serverless API (`serverlessEndpoints`).
    #[serde(default)]
    pub serverless: bool,
    /// The marketplace offer a serverless endpoint needs a subscription to; None = none needed.
    #[serde(default)]
    pub marketplace: Option<MarketplaceOffer>,
    #[serde(default)]
    pub author: String,
    #[serde(default = "chat_task")]
    pub task: String,
}

fn chat_task() -> String {
    "chat-completion".into()
}

impl RegistryModel {
    /// A model offered on managed compute on `skus` only.
    pub fn managed(registry: &str, name: &str, version: &str, skus: &[&str]) -> RegistryModel {
        RegistryModel {
            registry: registry.into(),
            name: name.into(),
            version: version.into(),
            managed_compute_skus: skus.iter().map(|s| s.to_string()).collect(),
            serverless: false,
            marketplace: None,
            author: "Microsoft".into(),
            task: chat_task(),
        }
    }

    /// The same model also offered as a serverless API (with `offer` when it needs a
    /// marketplace subscription).
    pub fn with_serverless(mut self, offer: Option<MarketplaceOffer>) -> RegistryModel {
        self.serverless = true;
        self.marketplace = offer;
        self
    }

    pub fn by(mut self, author: &str) -> RegistryModel {
        self.author = author.into();
        self
    }

    /// `azureml://registries/{r}/models/{m}` (the serverless `modelId`).
    pub fn model_id(&self) -> String {
        format!(
            "azureml://registries/{}/models/{}",
            self.registry, self.name
        )
    }

    /// `azureml://registries/{r}/models/{m}/versions/{v}` (a deployment's `model`).
    pub fn asset_id(&self) -> String {
        format!("{}/versions/{}", self.model_id(), self.version)
    }

    pub fn allows_instance_type(&self, instance_type: &str) -> bool {
        self.managed_compute_skus
            .iter()
            .any(|s| s.eq_ignore_ascii_case(instance_type))
    }

    fn tags(&self) -> Value {
        let mut tags =
            json!({"author": self.author, "task": self.task, "license": "see model card"});
        if !self.managed_compute_skus.is_empty() {
            tags["inference_compute_allow_list"] =
                json!(serde_json::to_string(&self.managed_compute_skus).unwrap_or_default());
        }
        if self.serverless {
            tags["serverless_api"] = json!("true");
        }
        if let Some(o) = &self.marketplace {
            tags["marketplace_offer"] =
                json!(format!("{}/{}/{}", o.publisher_id, o.offer_id, o.plan_id));
        }
        tags
    }

    /// `ModelVersion` as `RegistryModelVersions_Get` returns it: with its ARM id, or (from a
    /// registry's management front end, `arm_prefix` None) with its asset id.
    pub fn version_json(&self, arm_prefix: Option<&str>) -> Value {
        let id = match arm_prefix {
            Some(prefix) => format!(
                "{prefix}/registries/{}/models/{}/versions/{}",
                self.registry, self.name, self.version
            ),
            None => self.asset_id(),
        };
        json!({
            "id": id,
            "name": self.version,
            "type": "Microsoft.MachineLearningServices/registries/models/versions",
            "properties": {
                "description": format!("{} ({} {}), from the {} registry.", self.name, self.author, self.task, self.registry),
                "tags": self.tags(),
                "properties": {},
                "isAnonymous": false,
                "isArchived": false,
                "modelType": "custom_model",
                "flavors": {},
                "modelUri": self.asset_id(),
                "provisioningState": "Succeeded",
            },
        })
    }
}

/// A model reference parsed from `azureml://registries/{r}/models/{m}[/versions/{v}|/labels/latest]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelRef {
    pub registry: String,
    pub name: String,
    /// None = the latest version (no version, or the `latest` label).
    pub version: Option<String>,
}

pub fn parse_model_ref(s: &str) -> Option<ModelRef> {
    let rest = s.strip_prefix("azureml://registries/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (registry, name, version) = match parts.as_slice() {
        [r, "models", m] => (r, m, None),
        [r, "models", m, "labels", "latest"] => (r, m, None),
        [r, "models", m, "versions", v] => (r, m, Some(v.to_string())),
        _ => return None,
    };
    (!registry.is_empty() && !name.is_empty()).then(|| ModelRef {
        registry: registry.to_string(),
        name: name.to_string(),
        version,
    })
}

/// The model a reference names (the highest version when none is given).
pub(crate) fn resolve<'a>(catalog: &'a [RegistryModel], r: &ModelRef) -> Option<&'a RegistryModel> {
    let mut candidates: Vec<&RegistryModel> = catalog
        .iter()
        .filter(|m| {
            m.registry.eq_ignore_ascii_case(&r.registry) && m.name.eq_ignore_ascii_case(&r.name)
        })
        .collect();
    match &r.version {
        Some(v) => candidates.into_iter().find(|m| m.version == *v),
        None => {
            candidates.sort_by_key(|m| m.version.parse::<u64>().unwrap_or(0));
            candidates.pop()
        }
    }
}

/// Subscription-independent home of the system registries (as discovery reports it).
const REGISTRY_RESOURCE_GROUP: &str = "registry-builtin-eastus";

/// `GET /registrymanagement/v1.0/registries/{r}/discovery`: where a registry lives; its
/// management front end is this emulator (`primaryRegionResourceProviderUri`).
pub(crate) fn discovery(inner: &crate::azure::Inner, registry: &str) -> Resp {
    let known = inner
        .ml
        .world
        .lock()
        .catalog
        .iter()
        .any(|m| m.registry.eq_ignore_ascii_case(registry));
    if !known {
        return super::errors::arm_error(
            404,
            "NotFound",
            &format!("Registry '{registry}' was not found."),
        );
    }
    json_response(
        200,
        json!({
            "registryName": registry,
            "tenantId": inner.tenant_id,
            "primaryRegion": "eastus",
            "regions": ["eastus", "westus", "swedencentral"],
            "subscriptionId": inner.subscription_id,
            "resourceGroup": REGISTRY_RESOURCE_GROUP,
            "workspaceName": null,
            "primaryRegionResourceProviderUri": inner.main_url(),
        }),
    )
}

/// The ARM provider prefix ids are built on; None through a registry's front end (asset ids).
fn arm_prefix(ctx: &Ctx, sub: &str, rg: &str) -> Option<String> {
    (!ctx.mfe).then(|| provider_prefix(sub, rg))
}

/// The versions of one model of one registry, lowest first; Err = ARM's 404.
fn versions_of(
    ctx: &Ctx,
    rg: &str,
    registry: &str,
    model: Option<&str>,
) -> Result<Vec<RegistryModel>, Resp> {
    let w = ctx.inner.ml.world.lock();
    let in_registry: Vec<RegistryModel> = w
        .catalog
        .iter()
        .filter(|m| m.registry.eq_ignore_ascii_case(registry))
        .cloned()
        .collect();
    if in_registry.is_empty() {
        return Err(not_found(rg, &format!("registries/{registry}")));
    }
    let Some(model) = model else {
        return Ok(in_registry);
    };
    let mut out: Vec<RegistryModel> = in_registry
        .into_iter()
        .filter(|m| m.name.eq_ignore_ascii_case(model))
        .collect();
    if out.is_empty() {
        return Err(not_found(
            rg,
            &format!("registries/{registry}/models/{model}"),
        ));
    }
    out.sort_by_key(|m| m.version.parse::<u64>().unwrap_or(0));
    Ok(out)
}

fn container_json(prefix: Option<&str>, versions: &[RegistryModel]) -> Value {
    let latest = versions.last().expect("a version");
    let next = latest
        .version
        .parse::<u64>()
        .map(|v| (v + 1).to_string())
        .unwrap_or_default();
    let id = match prefix {
        Some(prefix) => format!(
            "{prefix}/registries/{}/models/{}",
            latest.registry, latest.name
        ),
        None => latest.model_id(),
    };
    json!({
        "id": id,
        "name": latest.name,
        "type": "Microsoft.MachineLearningServices/registries/models",
        "properties": {
            "description": format!("{} by {}", latest.name, latest.author),
            "tags": latest.tags(),
            "properties": {},
            "isArchived": false,
            "latestVersion": latest.version,
            "nextVersion": next,
            "provisioningState": "Succeeded",
        },
    })
}

/// `GET registries/{r}/models`.
pub(crate) fn containers(ctx: &Ctx, sub: &str, rg: &str, registry: &str) -> Resp {
    let all = match versions_of(ctx, rg, registry, None) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let prefix = arm_prefix(ctx, sub, rg);
    let mut names: Vec<String> = all.iter().map(|m| m.name.clone()).collect();
    names.sort();
    names.dedup();
    let value: Vec<Value> = names
        .iter()
        .map(|n| {
            let mut vs: Vec<RegistryModel> = all.iter().filter(|m| &m.name == n).cloned().collect();
            vs.sort_by_key(|m| m.version.parse::<u64>().unwrap_or(0));
            container_json(prefix.as_deref(), &vs)
        })
        .collect();
    json_response(200, json!({"value": value}))
}

/// `GET registries/{r}/models/{m}`.
pub(crate) fn container(ctx: &Ctx, sub: &str, rg: &str, registry: &str, model: &str) -> Resp {
    match versions_of(ctx, rg, registry, Some(model)) {
        Ok(vs) => json_response(
            200,
            container_json(arm_prefix(ctx, sub, rg).as_deref(), &vs),
        ),
        Err(r) => r,
    }
}

/// `GET registries/{r}/models/{m}/versions`.
pub(crate) fn versions(ctx: &Ctx, sub: &str, rg: &str, registry: &str, model: &str) -> Resp {
    match versions_of(ctx, rg, registry, Some(model)) {
        Ok(vs) => {
            let prefix = arm_prefix(ctx, sub, rg);
            let value: Vec<Value> = vs
                .iter()
                .rev()
                .map(|m| m.version_json(prefix.as_deref()))
                .collect();
            json_response(200, json!({"value": value}))
        }
        Err(r) => r,
    }
}

/// `GET registries/{r}/models/{m}/versions/{v}` (`RegistryModelVersions_Get`).
pub(crate) fn version(
    ctx: &Ctx,
    sub: &str,
    rg: &str,
    registry: &str,
    model: &str,
    version: &str,
) -> Resp {
    let vs = match versions_of(ctx, rg, registry, Some(model)) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match vs.iter().find(|m| m.version == version) {
        Some(m) => json_response(200, m.version_json(arm_prefix(ctx, sub, rg).as_deref())),
        None => not_found(
            rg,
            &format!("registries/{registry}/models/{model}/versions/{version}"),
        ),
    }
}

const A100_SKUS: &[&str] = &[
    "Standard_NC24ads_A100_v4",
    "Standard_NC48ads_A100_v4",
    "Standard_NC96ads_A100_v4",
];

/// The seeded catalogue: small open models that fit one A100 (NC24ads), a 70B model that needs
/// four (NC96ads) or an ND A100 node, and partner models offered only as serverless APIs
/// behind a marketplace subscription.
pub fn default_catalog() -> Vec<RegistryModel> {
    let offer = |publisher: &str, offer: &str, plan: &str| {
        Some(MarketplaceOffer {
            publisher_id: publisher.into(),
            offer_id: offer.into(),
            plan_id: plan.into(),
        })
    };
    let mut phi_skus = A100_SKUS.to_vec();
    phi_skus.push("Standard_NC40ads_H100_v5");
    vec![
        RegistryModel::managed("azureml", "Phi-4-mini-instruct", "1", &phi_skus)
            .with_serverless(None),
        RegistryModel::managed("azureml", "Phi-4", "7", &phi_skus[1..]).with_serverless(None),
        RegistryModel::managed("azureml", "Llama-3.2-3B-Instruct", "1", A100_SKUS).by("Meta"),
        RegistryModel::managed("azureml", "Llama-3.2-3B-Instruct", "2", A100_SKUS).by("Meta"),
        RegistryModel::managed(
            "azureml",
            "Llama-3.3-70B-Instruct",
            "4",
            &["Standard_NC96ads_A100_v4", "Standard_ND96amsr_A100_v4"],
        )
        .by("Meta")
        .with_serverless(offer(
            "metagenai",
            "meta-llama-3-3-70b-offer",
            "meta-llama-3-3-70b-instruct-plan",
        )),
        RegistryModel::managed("azureml-mistral", "Mistral-Large-2411", "2", &[])
            .by("Mistral AI")
            .with_serverless(offer(
                "000-000",
                "mistral-ai-large-2411-offer",
                "mistral-large-2411-plan",
            )),
        RegistryModel::managed("azureml-cohere", "Cohere-command-r-plus-08-2024", "1", &[])
            .by("Cohere")
            .with_serverless(offer(
                "cohere",
                "cohere-command-r-plus-08-2024-offer",
                "cohere-command-r-plus-08-2024-plan",
            )),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_references_parse_with_and_without_a_version() {
        let r = parse_model_ref("azureml://registries/azureml/models/Phi-4/versions/7").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str(), r.version.as_deref()),
            ("azureml", "Phi-4", Some("7"))
        );
        assert_eq!(
            parse_model_ref("azureml://registries/azureml/models/Phi-4")
                .unwrap()
                .version,
            None
        );
        assert_eq!(
            parse_model_ref("azureml://registries/azureml/models/Phi-4/labels/latest")
                .unwrap()
                .version,
            None
        );
        assert!(parse_model_ref("azureml:Phi-4:7").is_none());
        assert!(parse_model_ref("azureml://registries/azureml/models/Phi-4/versions").is_none());
    }

    #[test]
    fn the_latest_version_is_the_highest() {
        let cat = default_catalog();
        let r =
            parse_model_ref("azureml://registries/azureml/models/llama-3.2-3b-instruct").unwrap();
        assert_eq!(resolve(&cat, &r).unwrap().version, "2");
    }
}
