//! `ModelDeployment` (namespaced, an app team's): a model deployment on an AIAccount, its spec
//! (model, SKU and capacity, options), its status (endpoint, Key Vault reference, what Azure
//! resolved, the pending operation, the last terminal error) and its Azure deployment name.

use super::{Condition, KeyVaultSecretRef, ManagedComputeSpec, ServerlessSpec, WorkspaceRef};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A model deployment: on an AIAccount (an Azure OpenAI / AI Foundry deployment, `sku`), or on an
/// AIWorkspace (Azure ML managed compute or a serverless API).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "aoai.dev",
    version = "v1alpha1",
    kind = "ModelDeployment",
    plural = "modeldeployments",
    singular = "modeldeployment",
    shortname = "md",
    shortname = "mdep",
    category = "aoai",
    namespaced,
    status = "ModelDeploymentStatus",
    doc = "A model deployment on an AIAccount (sku) or an AIWorkspace (managedCompute, serverless); status carries the endpoint and a Key Vault reference to the key.",
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".spec.accountRef.name"}"#,
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.model.name"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.model.version"}"#,
    printcolumn = r#"{"name":"SKU","type":"string","jsonPath":".spec.sku.name"}"#,
    printcolumn = r#"{"name":"Capacity","type":"integer","jsonPath":".spec.sku.capacity"}"#,
    printcolumn = r#"{"name":"Workspace","type":"string","jsonPath":".spec.workspaceRef.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Instance","type":"string","priority":1,"jsonPath":".status.instanceType"}"#,
    printcolumn = r#"{"name":"Instances","type":"integer","priority":1,"jsonPath":".status.instanceCount"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","priority":1,"jsonPath":".status.endpointName"}"#,
    printcolumn = r#"{"name":"Scoring URI","type":"string","priority":1,"jsonPath":".status.scoringUri"}"#
)]
#[x_kube(validation = Rule::new("(has(self.sku) ? 1 : 0) + (has(self.managedCompute) ? 1 : 0) + (has(self.serverless) ? 1 : 0) == 1").message("set exactly one deployment method: spec.sku (a deployment on an AIAccount), spec.managedCompute (dedicated VMs) or spec.serverless (a serverless API), the last two on an AIWorkspace"))]
#[x_kube(validation = Rule::new("has(self.sku) == has(self.accountRef) && has(self.sku) == has(self.model) && has(self.sku) != has(self.workspaceRef)").message("spec.sku goes with spec.accountRef and spec.model; spec.managedCompute and spec.serverless go with spec.workspaceRef and name their model themselves"))]
#[x_kube(validation = Rule::new("has(self.sku) || !(has(self.deploymentName) || has(self.raiPolicyName) || has(self.versionUpgradeOption) || has(self.spilloverDeploymentName) || has(self.serviceTier) || has(self.paused) || has(self.verify))").message("deploymentName, raiPolicyName, versionUpgradeOption, spilloverDeploymentName, serviceTier, paused and verify apply to spec.sku deployments only"))]
#[x_kube(validation = Rule::new("has(self.sku) == has(oldSelf.sku) && has(self.managedCompute) == has(oldSelf.managedCompute)").message("the deployment method (sku, managedCompute or serverless) cannot change: create a new ModelDeployment, then delete this one"))]
#[x_kube(validation = Rule::new("has(self.deploymentName) == has(oldSelf.deploymentName) && (!has(self.deploymentName) || self.deploymentName == oldSelf.deploymentName)").message("spec.deploymentName is immutable: delete and re-create the ModelDeployment to use another Azure deployment name"))]
#[x_kube(validation = Rule::new("!has(self.accountRef) || !has(oldSelf.accountRef) || self.accountRef.name == oldSelf.accountRef.name").message("spec.accountRef is immutable: create a new ModelDeployment on the other account, then delete this one"))]
#[x_kube(validation = Rule::new("!has(self.workspaceRef) || !has(oldSelf.workspaceRef) || self.workspaceRef.name == oldSelf.workspaceRef.name").message("spec.workspaceRef is immutable: create a new ModelDeployment on the other workspace, then delete this one"))]
#[x_kube(validation = Rule::new("!has(self.model) || !has(oldSelf.model) || (self.model.name == oldSelf.model.name && self.model.format == oldSelf.model.format)").message("spec.model.name and spec.model.format cannot change in place in Azure: create a new ModelDeployment for the other model"))]
#[x_kube(validation = Rule::new("!has(self.managedCompute) || !has(oldSelf.managedCompute) || (has(self.managedCompute.endpointName) == has(oldSelf.managedCompute.endpointName) && (!has(self.managedCompute.endpointName) || self.managedCompute.endpointName == oldSelf.managedCompute.endpointName))").message("spec.managedCompute.endpointName is immutable: create a new ModelDeployment for another endpoint"))]
#[x_kube(validation = Rule::new("!has(self.serverless) || !has(oldSelf.serverless) || self.serverless == oldSelf.serverless").message("spec.serverless cannot change: a serverless endpoint runs one model under one name; create a new ModelDeployment for another"))]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentSpec {
    /// The cluster-scoped AIAccount to deploy to (with `sku`). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<AccountRef>,
    /// The cluster-scoped AIWorkspace to deploy to (with `managedCompute` or `serverless`). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_ref: Option<WorkspaceRef>,
    /// Azure deployment name. Default: `<namespace>.<name>` (shortened with a hash when longer than 64
    /// characters), so two namespaces never collide. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 2, max = 64),
        regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    )]
    pub deployment_name: Option<String>,
    /// The model to deploy (with `sku`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    /// Deployment type and capacity: a deployment on the AIAccount (pay-per-token, provisioned
    /// throughput, batch, developer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<SkuSpec>,
    /// A registry model on dedicated VMs (Azure ML managed online endpoint) in the AIWorkspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_compute: Option<ManagedComputeSpec>,
    /// A catalogue model as a serverless API endpoint in the AIWorkspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessSpec>,
    /// Name of the Responsible AI (content filter) policy. Absent: Azure's default, not enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rai_policy_name: Option<String>,
    /// How Azure upgrades the model version. Absent: Azure's default, not enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_upgrade_option: Option<VersionUpgradeOption>,
    /// Deployment that serves requests this one would throttle (spillover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spillover_deployment_name: Option<String>,
    /// Service tier: Default or Priority. Absent: Azure's default, not enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
    /// true pauses the deployment (Azure's pause action), false resumes it; absent: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// What happens to the Azure deployment when this resource is deleted: Delete (default) or Retain.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Adopt an existing Azure deployment with the same name that no resource owns (untagged).
    /// Without it such a deployment is never modified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_existing: bool,
    /// Opt in to a `Verified` condition (default: the AIAccount's `verifyDeployments`): once the
    /// deployment is Ready, one minimal data-plane call with the stored key (a chat completion of
    /// `max_tokens: 1`, or a one-word embedding for embedding models; none for batch). Made again
    /// only after a spec change, never in a loop; each costs one Key Vault read and one call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    /// Name of a ConfigMap (same namespace) to write with the connection settings an app needs:
    /// endpoint, deployment name, api version and Key Vault secret URI — never the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_config_map: Option<String>,
}

/// The `sku` form of a ModelDeployment as the Cognitive Services planner sees it: a deployment
/// on an AIAccount, every field the form requires present (the CRD's rules guarantee it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CognitiveSpec {
    pub account_ref: AccountRef,
    #[serde(default)]
    pub deployment_name: Option<String>,
    pub model: ModelSpec,
    pub sku: SkuSpec,
    #[serde(default)]
    pub rai_policy_name: Option<String>,
    #[serde(default)]
    pub version_upgrade_option: Option<VersionUpgradeOption>,
    #[serde(default)]
    pub spillover_deployment_name: Option<String>,
    #[serde(default)]
    pub service_tier: Option<ServiceTier>,
    #[serde(default)]
    pub paused: Option<bool>,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    #[serde(default)]
    pub adopt_existing: bool,
    #[serde(default)]
    pub connection_config_map: Option<String>,
    #[serde(default)]
    pub verify: Option<bool>,
}

/// How a ModelDeployment is served: which form of the spec is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `sku`: a Cognitive Services deployment on an AIAccount.
    Cognitive,
    /// `managedCompute`: an Azure ML managed online endpoint on an AIWorkspace.
    ManagedCompute,
    /// `serverless`: an Azure ML serverless endpoint on an AIWorkspace.
    Serverless,
}

impl ModelDeploymentSpec {
    /// Which form is set (the CRD's rules allow exactly one; `sku` when, against them, none is).
    pub fn method(&self) -> Method {
        if self.managed_compute.is_some() {
            Method::ManagedCompute
        } else if self.serverless.is_some() {
            Method::Serverless
        } else {
            Method::Cognitive
        }
    }

    /// The `sku` form, when it is complete.
    pub fn cognitive(&self) -> Option<CognitiveSpec> {
        Some(CognitiveSpec {
            account_ref: self.account_ref.clone()?,
            deployment_name: self.deployment_name.clone(),
            model: self.model.clone()?,
            sku: self.sku.clone()?,
            rai_policy_name: self.rai_policy_name.clone(),
            version_upgrade_option: self.version_upgrade_option,
            spillover_deployment_name: self.spillover_deployment_name.clone(),
            service_tier: self.service_tier,
            paused: self.paused,
            deletion_policy: self.deletion_policy,
            adopt_existing: self.adopt_existing,
            connection_config_map: self.connection_config_map.clone(),
            verify: self.verify,
        })
    }

    /// Name of the AIAccount this resource uses, if any.
    pub fn account_name(&self) -> Option<&str> {
        self.account_ref.as_ref().map(|a| a.name.as_str())
    }

    /// Name of the AIWorkspace this resource uses, if any.
    pub fn workspace_name(&self) -> Option<&str> {
        self.workspace_ref.as_ref().map(|a| a.name.as_str())
    }
}

/// Reference to a cluster-scoped AIAccount.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    /// Name of the AIAccount.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// The model to deploy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// Model format (publisher family), e.g. OpenAI. Immutable.
    #[serde(default = "default_format")]
    pub format: String,
    /// Model name, e.g. gpt-4o-mini. Immutable.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Model version, e.g. 2024-07-18. Absent: Azure's default version, shown in status.model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

fn default_format() -> String {
    "OpenAI".to_string()
}

/// Deployment type and capacity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkuSpec {
    /// Deployment type (SKU name).
    pub name: SkuName,
    /// Capacity in units of the SKU (thousands of tokens per minute for Standard types, PTUs for provisioned).
    #[schemars(range(min = 1))]
    pub capacity: i32,
}

/// Azure deployment types.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SkuName {
    Standard,
    GlobalStandard,
    DataZoneStandard,
    ProvisionedManaged,
    GlobalProvisionedManaged,
    DataZoneProvisionedManaged,
    GlobalBatch,
    DataZoneBatch,
    DeveloperTier,
}

impl SkuName {
    pub fn as_str(&self) -> &'static str {
        match self {
            SkuName::Standard => "Standard",
            SkuName::GlobalStandard => "GlobalStandard",
            SkuName::DataZoneStandard => "DataZoneStandard",
            SkuName::ProvisionedManaged => "ProvisionedManaged",
            SkuName::GlobalProvisionedManaged => "GlobalProvisionedManaged",
            SkuName::DataZoneProvisionedManaged => "DataZoneProvisionedManaged",
            SkuName::GlobalBatch => "GlobalBatch",
            SkuName::DataZoneBatch => "DataZoneBatch",
            SkuName::DeveloperTier => "DeveloperTier",
        }
    }
}

/// Model version upgrade policy (Azure's versionUpgradeOption).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum VersionUpgradeOption {
    OnceNewDefaultVersionAvailable,
    OnceCurrentVersionExpired,
    NoAutoUpgrade,
}

impl VersionUpgradeOption {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OnceNewDefaultVersionAvailable => "OnceNewDefaultVersionAvailable",
            Self::OnceCurrentVersionExpired => "OnceCurrentVersionExpired",
            Self::NoAutoUpgrade => "NoAutoUpgrade",
        }
    }
}

/// Service tier.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ServiceTier {
    Default,
    Priority,
}

impl ServiceTier {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Default => "Default",
            Self::Priority => "Priority",
        }
    }
}

/// What to do with the Azure deployment when the resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum DeletionPolicy {
    /// Delete the Azure deployment (waits for Azure to finish) before the resource goes.
    #[default]
    Delete,
    /// Leave the Azure deployment in place.
    Retain,
}

/// Observed state of a ModelDeployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentStatus {
    /// Conditions; `Ready` (with observedGeneration) is True when Azure matches the spec.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// metadata.generation last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Azure provisioningState of the deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// The account endpoint apps call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The Azure deployment name apps pass as `model` / deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    /// ARM resource id of the deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_resource_id: Option<String>,
    /// The model as Azure resolved it (version filled in when spec leaves it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ResolvedModel>,
    /// SKU name as deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_name: Option<String>,
    /// Capacity as deployed (currentCapacity when Azure reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i32>,
    /// Azure deployment state (Running / Paused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_state: Option<String>,
    /// Rate limits Azure derived from the capacity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
    /// Key Vault secret holding the account key (never the key itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault_secret: Option<KeyVaultSecretRef>,
    /// Azure long-running operation in progress; a restarted operator resumes polling it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_operation: Option<PendingOperation>,
    /// Last terminal Azure error; no write is retried for this generation until the spec or the account changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Azure ML forms: the online or serverless endpoint's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_name: Option<String>,
    /// Azure ML forms: the URI apps call (the online endpoint's scoring URI, the serverless
    /// endpoint's inference URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoring_uri: Option<String>,
    /// managedCompute: the endpoint's traffic split, deployment name to percent.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub traffic: std::collections::BTreeMap<String, i32>,
    /// managedCompute: the VM size of the deployment that serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// managedCompute: the instance count of the deployment that serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<i32>,
    /// When the deployment was last brought in sync with the spec (created, updated, drift
    /// corrected) or its status otherwise changed (RFC 3339); an unchanged resync does not
    /// rewrite it, so steady state makes no Kubernetes writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
}

/// Model as resolved by Azure.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedModel {
    /// Model format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Model version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One rate limit rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// What is limited (e.g. request, token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Allowed count per renewal period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<f64>,
    /// Renewal period in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_period: Option<f64>,
}

/// The kinds of Azure write the operator makes on a deployment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum OperationKind {
    /// PUT of a new deployment.
    #[default]
    Create,
    /// PUT of changed spec fields (or correcting drift).
    Update,
    /// First of two writes: capacity/SKU with the observed model version (Azure cannot change both at once).
    UpdateCapacity,
    /// PUT taking over an untagged deployment (adoptExisting).
    Adopt,
    /// PUT of a deployment whose provisioning failed.
    Repair,
    /// POST pause.
    Pause,
    /// POST resume.
    Resume,
    /// DELETE.
    Delete,
}

impl OperationKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            OperationKind::Create => "Create",
            OperationKind::Update => "Update",
            OperationKind::UpdateCapacity => "UpdateCapacity",
            OperationKind::Adopt => "Adopt",
            OperationKind::Repair => "Repair",
            OperationKind::Pause => "Pause",
            OperationKind::Resume => "Resume",
            OperationKind::Delete => "Delete",
        }
    }
    /// The Ready reason while this kind of operation runs.
    pub fn progress_reason(&self) -> &'static str {
        use crate::reason::*;
        match self {
            OperationKind::Create => CREATING,
            OperationKind::Delete => DELETING,
            OperationKind::Pause => PAUSING,
            OperationKind::Resume => RESUMING,
            _ => UPDATING,
        }
    }
}

/// An Azure long-running operation the operator started and is polling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PendingOperation {
    /// What the operation does.
    pub kind: OperationKind,
    /// Azure-AsyncOperation URL to poll (preferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_operation_url: Option<String>,
    /// Location URL to poll when Azure gave no Azure-AsyncOperation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_url: Option<String>,
    /// When the operation started (RFC 3339).
    pub started_at: String,
    /// metadata.generation the operation was started for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Azure ML forms: the ARM id of the resource the operation writes (endpoint, deployment,
    /// marketplace subscription), so a restarted operator knows what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A terminal Azure error.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// Azure error code (e.g. InsufficientQuota).
    pub code: String,
    /// Azure's message.
    pub message: String,
    /// metadata.generation the error happened on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// resourceVersion/generation marker of the AIAccount when it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_generation: Option<i64>,
    /// When it happened (RFC 3339).
    pub at: String,
}

impl ModelDeployment {
    /// The Azure deployment name: spec.deploymentName or `<namespace>.<name>`
    /// (namespaces contain no dots, so the split is unambiguous across namespaces).
    pub fn azure_deployment_name(&self) -> String {
        if let Some(n) = &self.spec.deployment_name {
            return n.clone();
        }
        let ns = self.metadata.namespace.as_deref().unwrap_or("default");
        let name = self.metadata.name.as_deref().unwrap_or_default();
        default_deployment_name(ns, name)
    }

    /// Owner identity written to the Azure deployment's tags.
    pub fn owner_id(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or("default"),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

/// `<namespace>.<name>`, shortened with a hash suffix when longer than 64 characters.
pub fn default_deployment_name(namespace: &str, name: &str) -> String {
    use sha2::Digest;
    let full = format!("{namespace}.{name}");
    if full.len() <= 64 {
        return full;
    }
    let digest = sha2::Sha256::digest(full.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let keep: String = full.chars().take(64 - 9).collect();
    format!("{}-{hash}", keep.trim_end_matches(['.', '-', '_']))
}
