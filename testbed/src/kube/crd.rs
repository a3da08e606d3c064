//! CustomResourceDefinitions: checks on the CRD itself, the served types it defines, and
//! its `Established` / `NamesAccepted` status.
use std::sync::Arc;

use serde_json::{Value, json};

use super::error::Cause;
use super::registry::{CrdInfo, ResourceType};
use super::store::now_rfc3339;
use super::validation::check_structural;

pub fn validate_crd(crd: &Value) -> Vec<Cause> {
    let mut errs = vec![];
    let spec = crd.get("spec").cloned().unwrap_or(json!({}));
    let group = spec.get("group").and_then(|g| g.as_str()).unwrap_or("");
    let plural = spec
        .pointer("/names/plural")
        .and_then(|g| g.as_str())
        .unwrap_or("");
    let kind = spec
        .pointer("/names/kind")
        .and_then(|g| g.as_str())
        .unwrap_or("");
    let name = crd
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or("");
    if group.is_empty() {
        errs.push(Cause::new(
            "FieldValueRequired",
            "spec.group",
            "Required value",
        ));
    } else if !group.contains('.') {
        errs.push(Cause::new(
            "FieldValueInvalid",
            "spec.group",
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() {
        errs.push(Cause::new(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    }
    if kind.is_empty() {
        errs.push(Cause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        errs.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    match spec.get("scope").and_then(|s| s.as_str()) {
        Some("Namespaced") | Some("Cluster") => {}
        Some(other) => errs.push(Cause::new(
            "FieldValueNotSupported",
            "spec.scope",
            format!(
                "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        )),
        None => errs.push(Cause::new(
            "FieldValueRequired",
            "spec.scope",
            "Required value",
        )),
    }
    let versions = spec
        .get("versions")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(Cause::new(
            "FieldValueRequired",
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(|s| s.as_bool()) == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        errs.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            format!(
                "Invalid value: {}: must have exactly one version marked as storage version",
                Value::Array(versions.clone())
            ),
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        match v.pointer("/schema/openAPIV3Schema") {
            None => errs.push(Cause::new(
                "FieldValueRequired",
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Required value: schemas are required",
            )),
            Some(s) => check_structural(
                s,
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                true,
                &mut errs,
            ),
        }
    }
    errs
}

pub fn types_of(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("").to_string();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    let plural = names["plural"].as_str().unwrap_or("").to_string();
    let singular = names["singular"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names["listKind"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("{kind}List"));
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let crd_name = crd["metadata"]["name"].as_str().unwrap_or("").to_string();
    let mut out = vec![];
    for v in spec["versions"].as_array().cloned().unwrap_or_default() {
        if v.get("served").and_then(|s| s.as_bool()) == Some(false) {
            continue;
        }
        let schema = v.pointer("/schema/openAPIV3Schema").cloned();
        let compiled = schema
            .as_ref()
            .map(|s| Arc::new(kube_cel::compile_schema(s)));
        out.push(ResourceType {
            group: group.clone(),
            version: v["name"].as_str().unwrap_or("").to_string(),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced,
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            list_kind: list_kind.clone(),
            status: v.pointer("/subresources/status").is_some(),
            builtin: None,
            crd: Some(CrdInfo {
                crd_name: crd_name.clone(),
                schema,
                printer_columns: v["additionalPrinterColumns"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                selectable_fields: v["selectableFields"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|f| f["jsonPath"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                compiled,
            }),
            storage: (group.clone(), plural.clone()),
            create_only: false,
            has_generation: true,
        });
    }
    out
}

/// Status kube-apiserver's CRD controllers would set once names are accepted.
pub fn set_established(crd: &mut Value) {
    let now = now_rfc3339();
    let names = crd["spec"]["names"].clone();
    let mut accepted = names.clone();
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(names["kind"].as_str().unwrap_or("").to_lowercase());
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{}List", names["kind"].as_str().unwrap_or("")));
    }
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|v| v.get("storage").and_then(|s| s.as_bool()) == Some(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default();
    for s in storage {
        if !stored.contains(&s) {
            stored.push(s);
        }
    }
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    crd["status"] = json!({
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
}

pub fn crd_name_conflicts(existing: &[Arc<ResourceType>], crd: &Value) -> bool {
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
    let name = crd["metadata"]["name"].as_str().unwrap_or("");
    existing.iter().any(|t| {
        t.group == group
            && t.plural == plural
            && t.crd.as_ref().map(|c| c.crd_name.as_str()) != Some(name)
    })
}
