//! The Azure Machine Learning forms of a `ModelDeployment` (issue 12): `managedCompute` (a
//! registry model on dedicated VMs: a managed online endpoint, its deployment, its traffic) and
//! `serverless` (a serverless API endpoint of a catalogue model), the reference to the
//! `AIWorkspace` they go to, and the Azure names derived from the resource.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Reference to a cluster-scoped AIWorkspace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceRef {
    /// Name of the AIWorkspace.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// A model on dedicated VMs (Azure ML managed online endpoint and deployment).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.scaleSettings) || !has(self.scaleSettings.maxInstances) || !has(self.scaleSettings.minInstances) || self.scaleSettings.minInstances <= self.scaleSettings.maxInstances").message("managedCompute.scaleSettings.minInstances must not exceed maxInstances"))]
#[serde(rename_all = "camelCase")]
pub struct ManagedComputeSpec {
    /// Registry model asset id, e.g.
    /// azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1. A change deploys the
    /// new model beside the old one and moves the traffic to it.
    #[schemars(regex(pattern = r"^azureml://registries/[^/]+/models/[^/]+/versions/[^/]+$"))]
    pub model: String,
    /// VM size of the instances, e.g. Standard_NC24ads_A100_v4. Azure cannot change it in
    /// place: a change creates a new deployment and moves the traffic to it once it serves.
    #[schemars(length(min = 1), regex(pattern = r"^[A-Za-z0-9_]+$"))]
    pub instance_type: String,
    /// Number of instances (Azure's sku.capacity); changed in place.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub instance_count: i32,
    /// Online endpoint name (3-32 letters, digits and hyphens, unique in the region). Default:
    /// derived from the namespace and name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 3, max = 32),
        regex(pattern = r"^[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9]$")
    )]
    pub endpoint_name: Option<String>,
    /// Scale settings; absent: Azure's default (a fixed instance count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_settings: Option<ScaleSettings>,
    /// Liveness probe; absent: Azure's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    /// Readiness probe; absent: Azure's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// Request settings; absent: Azure's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_settings: Option<RequestSettings>,
    /// Environment variables of the scoring container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment_variables: BTreeMap<String, String>,
}

fn one() -> i32 {
    1
}

/// How Azure scales the deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSettings {
    /// Default (the fixed instanceCount) or TargetUtilization.
    pub scale_type: ScaleType,
    /// TargetUtilization: fewest instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_instances: Option<i32>,
    /// TargetUtilization: most instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_instances: Option<i32>,
    /// TargetUtilization: the CPU utilization to keep, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_utilization_percentage: Option<i32>,
    /// TargetUtilization: how often utilization is evaluated, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub polling_interval_seconds: Option<i32>,
}

/// Scale types of a managed online deployment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ScaleType {
    Default,
    TargetUtilization,
}

/// A health probe of the scoring container (Kubernetes-style seconds, sent to Azure as
/// ISO 8601 durations).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// Seconds after start before the first probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub period_seconds: Option<i32>,
    /// Seconds before a probe times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<i32>,
    /// Failures before the instance is considered unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub failure_threshold: Option<i32>,
    /// Successes before the instance is considered healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub success_threshold: Option<i32>,
}

/// How the scoring container takes requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RequestSettings {
    /// Concurrent requests per instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent_requests_per_instance: Option<i32>,
    /// Scoring timeout in milliseconds (Azure allows up to 180000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 180000))]
    pub request_timeout_ms: Option<i32>,
    /// Longest wait of a request in the queue, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_queue_wait_ms: Option<i32>,
}

/// A catalogue model as a serverless API (billed per token; partner models through a
/// marketplace subscription the operator creates when the AIWorkspace allows it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerlessSpec {
    /// Catalogue model id, e.g. azureml://registries/azureml-mistral/models/Mistral-Large-2411. Immutable.
    #[schemars(regex(pattern = r"^azureml://registries/[^/]+/models/[^/]+$"))]
    pub model_id: String,
    /// Serverless endpoint name (3-32 letters, digits and hyphens). Default: derived from the
    /// namespace and name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 3, max = 32),
        regex(pattern = r"^[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9]$")
    )]
    pub endpoint_name: Option<String>,
}

/// `<namespace>-<name>` as an Azure ML endpoint name: letters, digits and hyphens, starting
/// with a letter, at most 32 characters (shortened with a hash when longer; a hash suffix too
/// when dots had to be replaced, so `a.b` and `a-b` never collide).
pub fn default_endpoint_name(namespace: &str, name: &str) -> String {
    use sha2::Digest;
    let full = format!("{namespace}-{name}");
    let clean: String = full
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let clean = if clean.starts_with(|c: char| c.is_ascii_alphabetic()) {
        clean
    } else {
        format!("e-{clean}")
    };
    if clean.len() <= 32 && clean == full && !clean.ends_with('-') {
        return clean;
    }
    let digest = sha2::Sha256::digest(full.as_bytes());
    let hash: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    let keep: String = clean.chars().take(32 - 7).collect();
    format!("{}-{hash}", keep.trim_end_matches('-'))
}

/// Name of the online deployment that runs `model` on `instance_type`: a change of either
/// (which Azure cannot make in place) gives a new name, so the new deployment is created beside
/// the one serving. `<model name>-<hash>`, letters, digits and hyphens, at most 32 characters.
pub fn online_deployment_name(model: &str, instance_type: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{model}|{}", instance_type.to_ascii_lowercase()));
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let model_name = model
        .split("/models/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("model");
    let clean: String = model_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(32 - 9)
        .collect();
    let clean = clean.trim_matches('-');
    if clean.starts_with(|c: char| c.is_ascii_alphabetic()) {
        format!("{clean}-{hash}")
    } else {
        format!("m-{}", &hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_fit_azure_and_never_collide() {
        assert_eq!(default_endpoint_name("team-a", "phi"), "team-a-phi");
        let dotted = default_endpoint_name("team-a", "phi.v2");
        assert_ne!(dotted, default_endpoint_name("team-a", "phi-v2"));
        let long = default_endpoint_name(&"n".repeat(40), "x");
        assert!(long.len() <= 32, "{long}");
        let digit = default_endpoint_name("1team", "x");
        assert!(
            digit.starts_with(|c: char| c.is_ascii_alphabetic()),
            "{digit}"
        );
        for n in [dotted, long, digit] {
            assert!(n.len() >= 3 && n.len() <= 32);
            assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            assert!(!n.ends_with('-'));
        }
    }

    #[test]
    fn a_new_instance_type_or_model_is_a_new_deployment_name() {
        let m = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1";
        let a = online_deployment_name(m, "Standard_NC24ads_A100_v4");
        assert!(a.starts_with("phi-4-mini-instruct-"), "{a}");
        assert!(a.len() <= 32);
        assert_eq!(a, online_deployment_name(m, "standard_nc24ads_a100_v4"));
        assert_ne!(a, online_deployment_name(m, "Standard_NC48ads_A100_v4"));
        assert_ne!(
            a,
            online_deployment_name(
                &m.replace("versions/1", "versions/2"),
                "Standard_NC24ads_A100_v4"
            )
        );
    }
}
