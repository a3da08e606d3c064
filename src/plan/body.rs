//! The body of a deployment PUT. ARM's PUT replaces the resource, so a write starts from what
//! Azure returned (read fresh just before) and changes only the fields the spec sets: every
//! property Azure holds that the spec does not set — `model.publisher`, `model.source`,
//! `model.sourceAccount`, `parentDeploymentName`, `capacitySettings`, the `routing` of
//! model-router deployments, `contextCacheContainerId`, tags, and whatever a newer api-version
//! adds — goes back unchanged. Only what the spec marks read-only is dropped.

use crate::crd::CognitiveSpec;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Tag naming the owning resource (`<namespace>/<name>`).
pub const OWNER_TAG: &str = "aoai.dev-owner";
/// Tag naming the owning cluster (so two clusters never fight over one deployment).
pub const CLUSTER_TAG: &str = "aoai.dev-cluster";

/// Paths the 2026-09-01 spec marks `readOnly` in `Deployment` (a test checks this list against
/// the spec), plus `properties.currentCapacity`: writable in the spec but Azure's report of the
/// capacity in force, which `sku.capacity` sets. `[]` stands for every item of an array.
pub const READ_ONLY: &[&str] = &[
    "id",
    "name",
    "type",
    "systemData",
    "etag",
    "properties.provisioningState",
    "properties.capabilities",
    "properties.callRateLimit",
    "properties.rateLimits",
    "properties.dynamicThrottlingEnabled",
    "properties.currentCapacity",
    "properties.model.callRateLimit",
    "properties.scaleSettings.activeCapacity",
    "properties.routing.models.[].callRateLimit",
];

fn remove_path(v: &mut Value, path: &[&str]) {
    match path {
        [] => {}
        ["[]", rest @ ..] => {
            if let Some(items) = v.as_array_mut() {
                for item in items {
                    remove_path(item, rest);
                }
            }
        }
        [last] => {
            if let Some(o) = v.as_object_mut() {
                o.remove(*last);
            }
        }
        [first, rest @ ..] => {
            if let Some(child) = v.get_mut(*first) {
                remove_path(child, rest);
            }
        }
    }
}

fn object<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let o = v.as_object_mut().expect("an object");
    let child = o.entry(key).or_insert_with(|| json!({}));
    if !child.is_object() {
        *child = json!({});
    }
    child.as_object_mut().expect("an object")
}

/// Owner tags merged over the observed tags (other tags are preserved).
pub fn tags_for(
    observed: Option<&BTreeMap<String, String>>,
    owner: &str,
    cluster: &str,
) -> BTreeMap<String, String> {
    let mut tags = observed.cloned().unwrap_or_default();
    tags.insert(OWNER_TAG.into(), owner.into());
    tags.insert(CLUSTER_TAG.into(), cluster.into());
    tags
}

/// The PUT body: Azure's deployment (`observed`, None for a create) with the spec's fields set.
/// `keep_observed_version`: the first of two writes (capacity first, the version next).
pub fn build_body(
    spec: &CognitiveSpec,
    observed: Option<&Value>,
    owner: &str,
    cluster: &str,
    keep_observed_version: bool,
) -> Value {
    let mut body = observed.cloned().unwrap_or_else(|| json!({}));
    if !body.is_object() {
        body = json!({});
    }
    for path in READ_ONLY {
        let parts: Vec<&str> = path.split('.').collect();
        remove_path(&mut body, &parts);
    }
    // sku: name and capacity from the spec; tier, size, family kept.
    let sku = object(&mut body, "sku");
    sku.insert("name".into(), json!(spec.sku.name.as_str()));
    sku.insert("capacity".into(), json!(spec.sku.capacity));
    let props = object(&mut body, "properties");
    // The deprecated scaleSettings, if Azure still reports it, must not contradict sku.
    if let Some(s) = props
        .get_mut("scaleSettings")
        .and_then(Value::as_object_mut)
        && s.contains_key("capacity")
    {
        s.insert("capacity".into(), json!(spec.sku.capacity));
    }
    let model = props
        .entry("model")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("model is an object");
    let observed_version = model.get("version").cloned();
    model.insert("format".into(), json!(spec.model.format));
    model.insert("name".into(), json!(spec.model.name));
    let version = if keep_observed_version {
        observed_version
    } else {
        spec.model
            .version
            .clone()
            .map(Value::from)
            .or(observed_version)
    };
    match version {
        Some(v) if !v.is_null() => {
            model.insert("version".into(), v);
        }
        _ => {
            model.remove("version");
        }
    }
    let set = |props: &mut Map<String, Value>, key: &str, v: Option<&str>| {
        if let Some(v) = v {
            props.insert(key.into(), json!(v));
        }
    };
    set(props, "raiPolicyName", spec.rai_policy_name.as_deref());
    set(
        props,
        "versionUpgradeOption",
        spec.version_upgrade_option.map(|v| v.as_str()),
    );
    set(
        props,
        "spilloverDeploymentName",
        spec.spillover_deployment_name.as_deref(),
    );
    set(props, "serviceTier", spec.service_tier.map(|v| v.as_str()));
    let observed_tags: Option<BTreeMap<String, String>> = body
        .get("tags")
        .and_then(|t| serde_json::from_value(t.clone()).ok());
    body["tags"] = json!(tags_for(observed_tags.as_ref(), owner, cluster));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> CognitiveSpec {
        let mut base = json!({"accountRef": {"name": "a"},
            "model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-11-20"},
            "sku": {"name": "GlobalStandard", "capacity": 20}});
        if let (Some(b), Some(v)) = (base.as_object_mut(), v.as_object()) {
            for (k, val) in v {
                b.insert(k.clone(), val.clone());
            }
        }
        serde_json::from_value(base).unwrap()
    }

    /// A deployment carrying every property a write must not drop (shapes from the spec's
    /// `DeploymentProperties`, `DeploymentModel`, `DeploymentCapacitySettings`, `DeploymentRouting`).
    fn rich() -> Value {
        json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a/deployments/d",
            "name": "d", "type": "Microsoft.CognitiveServices/accounts/deployments", "etag": "\"1\"",
            "systemData": {"createdBy": "someone"},
            "tags": {"cost-center": "42"},
            "sku": {"name": "GlobalStandard", "capacity": 10, "tier": "Standard"},
            "properties": {
                "model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-08-06",
                          "publisher": "OpenAI", "source": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/src",
                          "sourceAccount": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/src",
                          "callRateLimit": {"count": 1}},
                "provisioningState": "Succeeded",
                "capabilities": {"chatCompletion": "true"},
                "rateLimits": [{"key": "request", "count": 10}],
                "callRateLimit": {"count": 5},
                "dynamicThrottlingEnabled": true,
                "currentCapacity": 10,
                "raiPolicyName": "Microsoft.DefaultV2",
                "versionUpgradeOption": "NoAutoUpgrade",
                "parentDeploymentName": "parent",
                "capacitySettings": {"designatedCapacity": 10, "priority": 1},
                "spilloverDeploymentName": "overflow",
                "contextCacheContainerId": "container-1",
                "deploymentState": "Running",
                "routing": {"mode": "balanced", "models": [
                    {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18", "callRateLimit": {"count": 1}}
                ]}
            }
        })
    }

    #[test]
    fn a_write_keeps_every_property_azure_holds_that_the_spec_does_not_set() {
        let body = build_body(&spec(json!({})), Some(&rich()), "ns/md", "c", false);
        let p = &body["properties"];
        for (path, want) in [
            ("/properties/model/publisher", json!("OpenAI")),
            (
                "/properties/model/sourceAccount",
                rich()["properties"]["model"]["sourceAccount"].clone(),
            ),
            ("/properties/parentDeploymentName", json!("parent")),
            (
                "/properties/capacitySettings",
                json!({"designatedCapacity": 10, "priority": 1}),
            ),
            ("/properties/spilloverDeploymentName", json!("overflow")),
            ("/properties/contextCacheContainerId", json!("container-1")),
            ("/properties/routing/mode", json!("balanced")),
            ("/properties/routing/models/0/name", json!("gpt-4o-mini")),
            ("/properties/raiPolicyName", json!("Microsoft.DefaultV2")),
            ("/properties/versionUpgradeOption", json!("NoAutoUpgrade")),
            ("/properties/deploymentState", json!("Running")),
            ("/sku/tier", json!("Standard")),
            ("/tags/cost-center", json!("42")),
        ] {
            assert_eq!(body.pointer(path), Some(&want), "{path} in {body:#}");
        }
        // The spec's fields win.
        assert_eq!(body["sku"]["capacity"], 20);
        assert_eq!(p["model"]["version"], "2024-11-20");
        assert_eq!(body["tags"][OWNER_TAG], "ns/md");
        // Read-only ones are not sent.
        for path in [
            "/id",
            "/name",
            "/type",
            "/etag",
            "/systemData",
            "/properties/provisioningState",
            "/properties/capabilities",
            "/properties/rateLimits",
            "/properties/callRateLimit",
            "/properties/dynamicThrottlingEnabled",
            "/properties/currentCapacity",
            "/properties/model/callRateLimit",
            "/properties/routing/models/0/callRateLimit",
        ] {
            assert!(body.pointer(path).is_none(), "{path} sent in {body:#}");
        }
    }

    #[test]
    fn a_create_sends_the_spec_only_and_a_two_step_change_keeps_the_version() {
        let s = spec(json!({"raiPolicyName": "strict", "serviceTier": "Priority"}));
        let body = build_body(&s, None, "ns/md", "c", false);
        assert_eq!(
            body,
            json!({"sku": {"name": "GlobalStandard", "capacity": 20},
                   "properties": {"model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-11-20"},
                                  "raiPolicyName": "strict", "serviceTier": "Priority"},
                   "tags": {OWNER_TAG: "ns/md", CLUSTER_TAG: "c"}})
        );
        let first = build_body(&s, Some(&rich()), "ns/md", "c", true);
        assert_eq!(first["properties"]["model"]["version"], "2024-08-06");
        assert_eq!(first["sku"]["capacity"], 20);
        let no_version = spec(json!({"model": {"format": "OpenAI", "name": "gpt-4o"}}));
        assert!(
            build_body(&no_version, None, "ns/md", "c", false)["properties"]["model"]
                .get("version")
                .is_none(),
            "Azure picks the default version"
        );
    }

    /// The read-only list is what the spec says (run with AZURE_SPECS_DIR).
    #[test]
    fn the_read_only_list_matches_the_spec() {
        let Some(dir) = std::env::var_os("AZURE_SPECS_DIR") else {
            eprintln!(
                "SKIPPED (loudly): AZURE_SPECS_DIR is not set; the read-only list was not checked against the spec"
            );
            return;
        };
        let path = std::path::Path::new(&dir).join(
            "specification/cognitiveservices/resource-manager/Microsoft.CognitiveServices/CognitiveServices/stable/2026-09-01/cognitiveservices.json",
        );
        let spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let defs = &spec["definitions"];
        fn walk(defs: &Value, name: &str, prefix: &str, out: &mut Vec<String>, depth: usize) {
            if depth > 6 {
                return;
            }
            let Some(props) = defs[name]["properties"].as_object() else {
                return;
            };
            for (k, v) in props {
                let here = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v["readOnly"] == json!(true) {
                    out.push(here);
                    continue;
                }
                let (r, array) = match (v.get("$ref"), v["items"].get("$ref")) {
                    (Some(r), _) => (r, false),
                    (None, Some(r)) => (r, true),
                    _ => continue,
                };
                if let Some(n) = r.as_str().and_then(|r| r.strip_prefix("#/definitions/")) {
                    let p = if array { format!("{here}.[]") } else { here };
                    walk(defs, n, &p, out, depth + 1);
                }
            }
        }
        let mut from_spec = vec![];
        walk(defs, "Deployment", "", &mut from_spec, 0);
        // ProxyResource (common-types): id, name, type, systemData are read-only.
        from_spec.extend(["id", "name", "type", "systemData"].map(String::from));
        from_spec.push("properties.currentCapacity".into());
        from_spec.sort();
        let mut ours: Vec<String> = READ_ONLY.iter().map(|s| s.to_string()).collect();
        ours.sort();
        assert_eq!(ours, from_spec);
    }
}
