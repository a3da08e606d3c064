//! `AIAccount` (cluster-scoped, the platform team's): which Azure account, the credential the
//! operator uses for it, the Key Vault that receives its key, which namespaces may use it.

use super::{Condition, KeyVaultSecretRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An existing Azure AI Services / Azure OpenAI account that app teams may deploy models to.
/// Owned by the platform team: it names the account, the credential the operator uses for it,
/// the Key Vault that receives the account's API key, and which namespaces may use it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "aoai.dev",
    version = "v1alpha1",
    kind = "AIAccount",
    plural = "aiaccounts",
    singular = "aiaccount",
    shortname = "aia",
    category = "aoai",
    status = "AIAccountStatus",
    doc = "An existing Azure AI Services / Azure OpenAI account made available to app teams.",
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".spec.accountName"}"#,
    printcolumn = r#"{"name":"Location","type":"string","jsonPath":".status.location"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.subscriptionId == oldSelf.subscriptionId && self.resourceGroup == oldSelf.resourceGroup && self.accountName == oldSelf.accountName").message("subscriptionId, resourceGroup and accountName are immutable: create a new AIAccount for a different Azure account"))]
#[serde(rename_all = "camelCase")]
pub struct AIAccountSpec {
    /// Azure subscription id (GUID) that holds the account.
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub subscription_id: String,
    /// Resource group of the account.
    #[schemars(length(min = 1, max = 90))]
    pub resource_group: String,
    /// Name of the existing Microsoft.CognitiveServices account (kind AIServices or OpenAI).
    #[schemars(
        length(min = 2, max = 64),
        regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    )]
    pub account_name: String,
    /// Credential the operator uses for this account. Absent: the operator's own ambient
    /// identity (the AZURE_* environment of the operator pod). Set exactly one member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<AccountCredential>,
    /// Key Vault that receives the account's API key (written once per account, re-written only when it changes).
    pub key_vault: KeyVaultTarget,
    /// Namespaces whose ModelDeployments may use this account. Nothing is allowed when absent or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<AllowedNamespaces>,
    /// Give every ModelDeployment on this account a `Verified` condition (one minimal data-plane
    /// call after it is Ready; see ModelDeployment spec.verify, which overrides this).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify_deployments: bool,
}

/// How the operator authenticates to Azure for one account. Set exactly one member.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema, Default)]
#[x_kube(validation = Rule::new("(has(self.workloadIdentity) ? 1 : 0) + (has(self.managedIdentity) ? 1 : 0) + (has(self.clientSecret) ? 1 : 0) == 1").message("set exactly one of credential.workloadIdentity, credential.managedIdentity or credential.clientSecret (or omit credential to use the operator's own identity)"))]
#[serde(rename_all = "camelCase")]
pub struct AccountCredential {
    /// Workload identity: the operator's projected service-account token (AZURE_FEDERATED_TOKEN_FILE)
    /// is exchanged for a token of this app registration / user-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentityCredential>,
    /// Managed identity of the node/pod (IMDS). clientId selects a user-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_identity: Option<ManagedIdentityCredential>,
    /// Service principal with a client secret read from a Kubernetes Secret in the operator's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecretCredential>,
}

/// Workload identity federation settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentityCredential {
    /// Application (client) id of the app registration or user-assigned managed identity.
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// Entra ID tenant id.
    #[schemars(length(min = 1))]
    pub tenant_id: String,
}

/// Managed identity settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ManagedIdentityCredential {
    /// Client id of a user-assigned managed identity; absent = the system-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// Service principal with a client secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretCredential {
    /// Entra ID tenant id.
    #[schemars(length(min = 1))]
    pub tenant_id: String,
    /// Application (client) id.
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// Secret (in the operator's namespace) and key holding the client secret.
    pub secret_ref: SecretKeyRef,
}

/// A key of a Kubernetes Secret in the operator's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// Where the account API key is stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultTarget {
    /// Vault base URI, e.g. https://contoso-kv.vault.azure.net/
    #[schemars(regex(pattern = r"^https://"))]
    pub vault_uri: String,
    /// Name of the secret that holds the account's key1.
    #[schemars(length(min = 1, max = 127), regex(pattern = r"^[0-9a-zA-Z-]+$"))]
    pub secret_name: String,
}

/// Namespace allow-list. A namespace is allowed when it is listed in `names` or its labels match `selector`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNamespaces {
    /// Namespaces allowed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Namespaces allowed by label selector (matchLabels / matchExpressions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Observed state of an AIAccount.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AIAccountStatus {
    /// Conditions; `Ready` tells whether deployments can use this account, with a reason.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// metadata.generation last acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// ARM resource id of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_resource_id: Option<String>,
    /// The account's endpoint (base URL of the data plane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Azure region of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Account kind (AIServices, OpenAI, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Key Vault secret holding the account key (never the key itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault_secret: Option<KeyVaultSecretRef>,
    /// When the account's status last changed after a successful check (RFC 3339); an
    /// unchanged periodic check does not rewrite it, so steady state makes no Kubernetes writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
}
