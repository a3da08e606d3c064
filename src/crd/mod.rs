//! The custom resources, group `aoai.dev`, version `v1alpha1`: `AIAccount` (`account`),
//! `AIWorkspace` (`workspace`) and `ModelDeployment` (`deployment`, its Azure ML forms in `ml`),
//! the types their statuses share, and the YAML generation
//! used by `aoai-operator crd` and `cargo xtask crds`.

pub mod account;
pub mod deployment;
pub mod ml;
pub mod workspace;

pub use account::*;
pub use deployment::*;
pub use ml::*;
pub use workspace::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "aoai.dev";
pub const VERSION: &str = "v1alpha1";

/// Reference to a Key Vault secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultSecretRef {
    /// Vault base URI.
    pub vault_uri: String,
    /// Secret name.
    pub name: String,
    /// Secret version holding the current key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A status condition (same shape as metav1.Condition).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. Ready.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// PascalCase reason (for errors: Azure's error code).
    #[serde(default)]
    pub reason: String,
    /// Human-readable message: what is wrong and what to do.
    #[serde(default)]
    pub message: String,
    /// metadata.generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// Every CRD the operator serves, in the order they are installed (a new kind goes here and
/// nowhere else: `crd`, `cargo xtask crds`, the chart's copy and the tests take them from it).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![AIAccount::crd(), AIWorkspace::crd(), ModelDeployment::crd()]
}

/// Every CRD as multi-document YAML (what `aoai-operator crd` prints).
pub fn crd_yaml() -> String {
    crd_files()
        .into_iter()
        .map(|(_, y)| y)
        .collect::<Vec<_>>()
        .join("---\n")
}

/// (file name, content) pairs for `crds/` and the chart: `<group>_<plural>.yaml`.
pub fn crd_files() -> Vec<(String, String)> {
    crds()
        .into_iter()
        .map(|c| {
            let name = format!("{}_{}.yaml", c.spec.group, c.spec.names.plural);
            (name, serde_yaml::to_string(&c).expect("CRD serializes"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_do_not_collide_and_fit() {
        assert_eq!(default_deployment_name("team-a", "chat"), "team-a.chat");
        assert_ne!(
            default_deployment_name("team-a", "b-c"),
            default_deployment_name("team-a-b", "c")
        );
        let long = default_deployment_name(&"n".repeat(63), &"x".repeat(200));
        assert!(long.len() <= 64, "{long}");
        assert_ne!(
            long,
            default_deployment_name(&"n".repeat(63), &"x".repeat(201))
        );
    }

    #[test]
    fn crds_have_cel_printer_columns_and_descriptions() {
        let md = serde_json::to_value(ModelDeployment::crd()).unwrap();
        let s = md.to_string();
        assert!(s.contains("x-kubernetes-validations"));
        assert!(s.contains("deploymentName is immutable"));
        assert!(s.contains("\"shortNames\""));
        let cols = &md["spec"]["versions"][0]["additionalPrinterColumns"];
        let names: Vec<_> = cols
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        for want in [
            "Account", "Model", "Version", "SKU", "Capacity", "Ready", "Reason", "Age",
        ] {
            assert!(names.iter().any(|n| n == want), "missing column {want}");
        }
        // every spec property has a description
        fn check(v: &serde_json::Value, path: &str) {
            if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
                for (k, p) in props {
                    if path.is_empty() && (k == "apiVersion" || k == "kind" || k == "metadata") {
                        continue;
                    }
                    let here = format!("{path}.{k}");
                    assert!(p.get("description").is_some(), "no description on {here}");
                    check(p, &here);
                    if let Some(items) = p.get("items") {
                        check(items, &here);
                    }
                }
            }
        }
        for crd in [
            md,
            serde_json::to_value(AIAccount::crd()).unwrap(),
            serde_json::to_value(AIWorkspace::crd()).unwrap(),
        ] {
            check(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "");
        }
    }

    #[test]
    fn issue_example_parses() {
        let docs = r#"
apiVersion: aoai.dev/v1alpha1
kind: AIAccount
metadata: {name: shared-eastus}
spec:
  subscriptionId: 00000000-0000-0000-0000-000000000000
  resourceGroup: rg-ai
  accountName: contoso-ai-eastus
  credential:
    workloadIdentity: {clientId: "c", tenantId: "t"}
  keyVault: {vaultUri: "https://contoso-kv.vault.azure.net/", secretName: contoso-ai-eastus-key}
  allowedNamespaces:
    names: [team-a]
    selector: {matchLabels: {ai-access: "true"}}
"#;
        let a: AIAccount = serde_yaml::from_str(docs).unwrap();
        assert_eq!(a.spec.allowed_namespaces.unwrap().names, vec!["team-a"]);
        let md: ModelDeployment = serde_yaml::from_str(
            r#"
apiVersion: aoai.dev/v1alpha1
kind: ModelDeployment
metadata: {name: chat, namespace: team-a}
spec:
  accountRef: {name: shared-eastus}
  model: {name: gpt-4o-mini, version: "2024-07-18"}
  sku: {name: GlobalStandard, capacity: 10}
  connectionConfigMap: chat-connection
"#,
        )
        .unwrap();
        assert_eq!(md.spec.model.as_ref().unwrap().format, "OpenAI");
        assert_eq!(md.spec.deletion_policy, DeletionPolicy::Delete);
        assert_eq!(md.azure_deployment_name(), "team-a.chat");
    }
}
