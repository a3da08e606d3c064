//! Model catalog per account (formats, names, versions, supported SKUs, default version,
//! capabilities, capacity rules per SKU) and how it renders in ARM (account models, location
//! models, deployment SKUs). Quota usage names are `{format}.{sku}.{model}`, e.g.
//! `OpenAI.GlobalStandard.gpt-4o-mini`.
//!
//! Capacity rules follow Microsoft's published provisioned-throughput table (Azure OpenAI
//! "provisioned throughput" concepts/onboarding docs): global and data-zone provisioned
//! deployments have a minimum of 15 PTU and an increment of 5; regional `ProvisionedManaged`
//! has 50/50 for gpt-4o-class models and 25/25 for the mini models. Pay-per-token SKUs
//! (Standard, GlobalStandard, DataZoneStandard, batch, DeveloperTier) take 1 to the model's
//! maximum in steps of 1.
//!
//! Availability per region: a model lists the regions that offer it (empty = all of
//! `REGIONS`); an account created in a region gets that region's catalog, so a model the
//! region does not offer is rejected as Azure rejects it (`DeploymentModelNotSupported`), and
//! the location models show the region's catalog.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogModel {
    pub format: String,
    pub name: String,
    pub version: String,
    /// Deployment SKU names this model version supports.
    pub skus: Vec<String>,
    /// Whether this is the version a PUT without `model.version` gets.
    pub is_default: bool,
    pub capabilities: BTreeMap<String, String>,
    pub max_capacity: u32,
    pub lifecycle_status: String,
    /// Capacity rule per SKU name; a SKU without one takes `CapacityRule::standard`.
    #[serde(default)]
    pub capacity: BTreeMap<String, CapacityRule>,
    /// Regions that offer this model (normalized names); empty = every region.
    #[serde(default)]
    pub regions: Vec<String>,
}

/// The regions where Microsoft.CognitiveServices accounts can be created (ARM location names).
pub const REGIONS: &[&str] = &[
    "australiaeast",
    "brazilsouth",
    "canadacentral",
    "canadaeast",
    "centralus",
    "eastus",
    "eastus2",
    "francecentral",
    "germanywestcentral",
    "italynorth",
    "japaneast",
    "koreacentral",
    "northcentralus",
    "northeurope",
    "norwayeast",
    "polandcentral",
    "southafricanorth",
    "southcentralus",
    "southeastasia",
    "southindia",
    "spaincentral",
    "swedencentral",
    "switzerlandnorth",
    "uaenorth",
    "uksouth",
    "westeurope",
    "westus",
    "westus2",
    "westus3",
];

/// The regions the seeded Foundry (non-OpenAI) models are offered in.
pub const FOUNDRY_REGIONS: &[&str] = &[
    "eastus",
    "eastus2",
    "northcentralus",
    "southcentralus",
    "swedencentral",
    "westus",
    "westus3",
];

/// Normalized region name (`East US` → `eastus`).
pub fn normalize_region(location: &str) -> String {
    location.to_ascii_lowercase().replace(' ', "")
}

/// Whether accounts can be created in `location`.
pub fn is_region(location: &str) -> bool {
    REGIONS.contains(&normalize_region(location).as_str())
}

/// The seeded catalog as offered in `location`.
pub fn region_catalog(location: &str) -> Vec<CatalogModel> {
    let loc = normalize_region(location);
    default_catalog()
        .into_iter()
        .filter(|m| m.offered_in(&loc))
        .collect()
}

/// The capacity a deployment of one model SKU may have (the spec's `CapacityConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityRule {
    pub minimum: u32,
    pub maximum: u32,
    /// Allowed values are `minimum + k * step`.
    pub step: u32,
    pub default: u32,
    /// When not empty, the only allowed values (minimum/maximum/step still rendered).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_values: Vec<u32>,
}

impl CapacityRule {
    /// Pay-per-token SKUs: 1 to `maximum` in steps of 1.
    pub fn standard(maximum: u32) -> Self {
        CapacityRule {
            minimum: 1,
            maximum,
            step: 1,
            default: 10.min(maximum),
            allowed_values: Vec::new(),
        }
    }

    /// A minimum and an increment (provisioned throughput).
    pub fn increments(minimum: u32, step: u32, maximum: u32) -> Self {
        CapacityRule {
            minimum,
            maximum,
            step,
            default: minimum,
            allowed_values: Vec::new(),
        }
    }

    /// The published rule for a model on a SKU.
    pub fn published(model: &str, sku: &str, maximum: u32) -> Self {
        let mini = model.to_ascii_lowercase().contains("mini");
        match sku {
            "GlobalProvisionedManaged" | "DataZoneProvisionedManaged" => {
                Self::increments(15, 5, maximum)
            }
            "ProvisionedManaged" if mini => Self::increments(25, 25, maximum),
            "ProvisionedManaged" => Self::increments(50, 50, maximum),
            _ => Self::standard(maximum),
        }
    }

    /// Azure's `InvalidCapacity` message when `capacity` breaks the rule.
    pub fn check(&self, capacity: i64) -> Result<(), String> {
        if !self.allowed_values.is_empty() {
            if self
                .allowed_values
                .iter()
                .any(|v| i64::from(*v) == capacity)
            {
                return Ok(());
            }
            let list: Vec<String> = self.allowed_values.iter().map(u32::to_string).collect();
            return Err(format!(
                "The specified capacity '{capacity}' of account deployment should be one of the allowed values {}.",
                list.join(", ")
            ));
        }
        let (min, max, step) = (
            i64::from(self.minimum),
            i64::from(self.maximum),
            i64::from(self.step.max(1)),
        );
        if capacity < min || capacity > max {
            return Err(format!(
                "The specified capacity '{capacity}' of account deployment should be at least {min} and no more than {max}."
            ));
        }
        if (capacity - min) % step != 0 {
            return Err(format!(
                "The specified capacity '{capacity}' of account deployment should be at least {min} and no more than {max}, in increments of {step}."
            ));
        }
        Ok(())
    }

    /// `CapacityConfig` JSON.
    pub fn json(&self) -> Value {
        let mut v = json!({
            "minimum": self.minimum, "maximum": self.maximum, "step": self.step, "default": self.default,
        });
        if !self.allowed_values.is_empty() {
            v["allowedValues"] = json!(self.allowed_values);
        }
        v
    }
}

pub const OPENAI_SKUS: &[&str] = &[
    "Standard",
    "GlobalStandard",
    "DataZoneStandard",
    "GlobalProvisionedManaged",
    "GlobalBatch",
];

impl CatalogModel {
    pub fn new(format: &str, name: &str, version: &str, skus: &[&str], is_default: bool) -> Self {
        let mut capabilities = BTreeMap::new();
        capabilities.insert("chatCompletion".to_string(), "true".to_string());
        capabilities.insert("maxContextToken".to_string(), "128000".to_string());
        capabilities.insert("maxOutputToken".to_string(), "16384".to_string());
        let max_capacity = 10_000;
        CatalogModel {
            format: format.into(),
            name: name.into(),
            version: version.into(),
            skus: skus.iter().map(|s| s.to_string()).collect(),
            is_default,
            capabilities,
            max_capacity,
            lifecycle_status: "GenerallyAvailable".into(),
            capacity: skus
                .iter()
                .filter(|s| s.contains("Provisioned"))
                .map(|s| {
                    (
                        s.to_string(),
                        CapacityRule::published(name, s, max_capacity),
                    )
                })
                .collect(),
            regions: Vec::new(),
        }
    }

    /// Limits the model to these regions.
    pub fn in_regions(mut self, regions: &[&str]) -> Self {
        self.regions = regions.iter().map(|r| normalize_region(r)).collect();
        self
    }

    /// Whether `location` offers this model.
    pub fn offered_in(&self, location: &str) -> bool {
        let loc = normalize_region(location);
        self.regions.is_empty() || self.regions.contains(&loc)
    }

    /// Sets the capacity rule of one SKU.
    pub fn with_capacity(mut self, sku: &str, rule: CapacityRule) -> Self {
        self.capacity.insert(sku.to_string(), rule);
        self
    }

    /// The capacity rule of a SKU (case-insensitive name).
    pub fn rule(&self, sku: &str) -> CapacityRule {
        self.capacity
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(sku))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| CapacityRule::standard(self.max_capacity))
    }

    /// `SkuResource` entries (deployments/{name}/skus): each SKU with its capacity rule.
    pub fn sku_resources_json(&self) -> Vec<Value> {
        self.skus
            .iter()
            .map(|s| {
                let rule = self.rule(s);
                json!({
                    "resourceType": "Microsoft.CognitiveServices/accounts/deployments",
                    "sku": {"name": s, "capacity": rule.default},
                    "capacity": rule.json(),
                })
            })
            .collect()
    }

    fn system_data() -> Value {
        json!({
            "createdAt": "2024-07-18T00:00:00Z", "createdBy": "Microsoft", "createdByType": "Application",
            "lastModifiedAt": "2024-07-18T00:00:00Z", "lastModifiedBy": "Microsoft", "lastModifiedByType": "Application",
        })
    }

    fn sku_json(&self) -> Vec<Value> {
        self.skus
            .iter()
            .map(|s| {
                json!({
                    "name": s,
                    "usageName": usage_name(&self.format, s, &self.name),
                    "capacity": self.rule(s).json(),
                })
            })
            .collect()
    }

    /// `AccountModel` (accounts/{name}/models).
    pub fn account_model_json(&self) -> Value {
        json!({
            "name": format!("{}.{}", self.name, self.version),
            "format": self.format,
            "version": self.version,
            "baseModel": {"format": self.format, "name": self.name, "version": self.version},
            "capabilities": self.capabilities,
            "isDefaultVersion": self.is_default,
            "lifecycleStatus": self.lifecycle_status,
            "maxCapacity": self.max_capacity,
            "skus": self.sku_json(),
            "deprecation": {"inference": "2027-12-31T00:00:00Z", "fineTune": "2027-06-30T00:00:00Z", "deprecationStatus": "Planned"},
            "systemData": Self::system_data(),
        })
    }

    /// `Model` (locations/{location}/models).
    pub fn location_model_json(&self, kind: &str) -> Value {
        json!({
            "kind": kind,
            "skuName": "S0",
            "model": {
                "name": self.name,
                "format": self.format,
                "version": self.version,
                "capabilities": self.capabilities,
                "isDefaultVersion": self.is_default,
                "lifecycleStatus": self.lifecycle_status,
                "maxCapacity": self.max_capacity,
                "skus": self.sku_json(),
                "deprecation": {"inference": "2027-12-31T00:00:00Z", "fineTune": "2027-06-30T00:00:00Z", "deprecationStatus": "Planned"},
                "systemData": Self::system_data(),
            }
        })
    }
}

pub fn usage_name(format: &str, sku: &str, model: &str) -> String {
    format!("{format}.{sku}.{model}")
}

/// Human name of a quota, as in Azure's InsufficientQuota messages.
pub fn quota_display_name(model: &str, sku: &str) -> String {
    format!("Tokens Per Minute (thousands) - {model} - {sku}")
}

/// The seeded catalog: OpenAI gpt-4o-mini 2024-07-18, gpt-4o 2024-08-06 (default) and
/// 2024-05-13, each with the five OpenAI SKUs; Microsoft Phi-4 and DeepSeek-R1 (non-OpenAI
/// Foundry models, offered in `FOUNDRY_REGIONS` only); a fine-tuned gpt-4o-mini (Azure names
/// those `<base model>.ft-<job id>`).
pub fn default_catalog() -> Vec<CatalogModel> {
    let mut embed = CatalogModel::new(
        "OpenAI",
        "text-embedding-3-small",
        "1",
        &["Standard", "GlobalStandard"],
        true,
    );
    embed.capabilities = BTreeMap::from([("embeddings".to_string(), "true".to_string())]);
    vec![
        CatalogModel::new("OpenAI", "gpt-4o-mini", "2024-07-18", OPENAI_SKUS, true),
        CatalogModel::new("OpenAI", "gpt-4o", "2024-08-06", OPENAI_SKUS, true),
        CatalogModel::new("OpenAI", "gpt-4o", "2024-05-13", OPENAI_SKUS, false),
        CatalogModel::new("OpenAI", "gpt-4o", "2024-11-20", OPENAI_SKUS, false),
        embed,
        CatalogModel::new("Microsoft", "Phi-4", "7", &["GlobalStandard"], true)
            .in_regions(FOUNDRY_REGIONS),
        CatalogModel::new("DeepSeek", "DeepSeek-R1", "1", &["GlobalStandard"], true)
            .in_regions(FOUNDRY_REGIONS),
        CatalogModel::new(
            "OpenAI",
            "gpt-4o-mini-2024-07-18.ft-0123456789abcdef0123456789abcdef",
            "1",
            &["Standard", "GlobalStandard", "DeveloperTier"],
            true,
        ),
    ]
}
