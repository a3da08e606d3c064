//! Model catalog per account (formats, names, versions, supported SKUs, default version,
//! capabilities) and how it renders in ARM (account models, location models, deployment SKUs).
//! Quota usage names are `{format}.{sku}.{model}`, e.g. `OpenAI.GlobalStandard.gpt-4o-mini`.
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
        CatalogModel {
            format: format.into(),
            name: name.into(),
            version: version.into(),
            skus: skus.iter().map(|s| s.to_string()).collect(),
            is_default,
            capabilities,
            max_capacity: 10_000,
            lifecycle_status: "GenerallyAvailable".into(),
        }
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
                    "capacity": {"minimum": 1, "maximum": self.max_capacity, "step": 1, "default": 10},
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
/// 2024-05-13, each with the five OpenAI SKUs; Microsoft Phi-4 (a non-OpenAI Foundry model);
/// a fine-tuned gpt-4o-mini (Azure names those `<base model>.ft-<job id>`).
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
        CatalogModel::new("Microsoft", "Phi-4", "7", &["GlobalStandard"], true),
        CatalogModel::new("DeepSeek", "DeepSeek-R1", "1", &["GlobalStandard"], true),
        CatalogModel::new(
            "OpenAI",
            "gpt-4o-mini-2024-07-18.ft-0123456789abcdef0123456789abcdef",
            "1",
            &["Standard", "GlobalStandard", "DeveloperTier"],
            true,
        ),
    ]
}
