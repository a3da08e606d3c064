//! `AIWorkspace` (cluster-scoped, the platform team's): an existing Azure Machine Learning /
//! AI Foundry hub project that app teams may deploy models to on managed compute or as
//! serverless APIs; the credential the operator uses for it, the Key Vault that receives the
//! endpoint keys, which namespaces may use it, and which marketplace offers it may subscribe to.

use super::{AccountCredential, AllowedNamespaces, Condition};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An existing Azure Machine Learning workspace (an AI Foundry hub project) made available to
/// app teams for managed-compute and serverless ModelDeployments.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "aoai.dev",
    version = "v1alpha1",
    kind = "AIWorkspace",
    plural = "aiworkspaces",
    singular = "aiworkspace",
    shortname = "aiw",
    category = "aoai",
    status = "AIWorkspaceStatus",
    doc = "An existing Azure Machine Learning / AI Foundry project made available to app teams for managed-compute and serverless model deployments.",
    printcolumn = r#"{"name":"Workspace","type":"string","jsonPath":".spec.workspaceName"}"#,
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".status.kind"}"#,
    printcolumn = r#"{"name":"Location","type":"string","jsonPath":".status.location"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.subscriptionId == oldSelf.subscriptionId && self.resourceGroup == oldSelf.resourceGroup && self.workspaceName == oldSelf.workspaceName").message("subscriptionId, resourceGroup and workspaceName are immutable: create a new AIWorkspace for a different Azure workspace"))]
#[serde(rename_all = "camelCase")]
pub struct AIWorkspaceSpec {
    /// Azure subscription id (GUID) that holds the workspace.
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub subscription_id: String,
    /// Resource group of the workspace.
    #[schemars(length(min = 1, max = 90))]
    pub resource_group: String,
    /// Name of the existing Microsoft.MachineLearningServices workspace (a hub project, or a
    /// plain workspace) where the online and serverless endpoints go.
    #[schemars(
        length(min = 3, max = 33),
        regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    )]
    pub workspace_name: String,
    /// Credential the operator uses for this workspace. Absent: the operator's own ambient
    /// identity. Set exactly one member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<AccountCredential>,
    /// Key Vault that receives each endpoint's key, as secret `<secretPrefix>-<endpoint name>`.
    pub key_vault: WorkspaceKeyVault,
    /// Namespaces whose ModelDeployments may use this workspace. Nothing is allowed when absent or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<AllowedNamespaces>,
    /// Marketplace offers the operator may subscribe the workspace to for serverless models
    /// that need one (partner models billed through Azure Marketplace). A serverless
    /// ModelDeployment of such a model is refused, without any Azure write, unless its
    /// publisher or model is listed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace: Option<MarketplacePolicy>,
}

/// Where endpoint keys are stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceKeyVault {
    /// Vault base URI, e.g. https://contoso-kv.vault.azure.net/
    #[schemars(regex(pattern = r"^https://"))]
    pub vault_uri: String,
    /// Prefix of the secret names; default: the AIWorkspace's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 60), regex(pattern = r"^[0-9a-zA-Z-]+$"))]
    pub secret_prefix: Option<String>,
}

/// Which marketplace offers may be subscribed to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MarketplacePolicy {
    /// Marketplace publisher ids (e.g. metagenai, cohere) whose offers may be subscribed to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_publishers: Vec<String>,
    /// Model ids (azureml://registries/<r>/models/<m>) whose offers may be subscribed to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_models: Vec<String>,
}

impl MarketplacePolicy {
    /// Whether an offer of `publisher` for `model_id` may be subscribed to.
    pub fn allows(&self, publisher: &str, model_id: &str) -> bool {
        self.allowed_publishers
            .iter()
            .any(|p| p.eq_ignore_ascii_case(publisher))
            || self
                .allowed_models
                .iter()
                .any(|m| m.trim_end_matches('/').eq_ignore_ascii_case(model_id))
    }
}

/// Observed state of an AIWorkspace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AIWorkspaceStatus {
    /// Conditions; `Ready` tells whether deployments can use this workspace, with a reason.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// metadata.generation last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// ARM resource id of the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_resource_id: Option<String>,
    /// Azure region of the workspace (where VM quota is counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Workspace kind (Hub, Project, Default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
}

impl AIWorkspace {
    /// Prefix of the Key Vault secret names of this workspace's endpoints.
    pub fn secret_prefix(&self) -> String {
        self.spec
            .key_vault
            .secret_prefix
            .clone()
            .unwrap_or_else(|| kube::ResourceExt::name_any(self))
    }
}
