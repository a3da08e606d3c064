//! Built-in kinds: normalisation through k8s-openapi's types (which also finds unknown
//! fields for `fieldValidation`), type-specific defaulting, and the events.k8s.io/v1 ⇄
//! core/v1 Event views over one storage.
use serde_json::{Value, json};

use super::registry::Builtin;

macro_rules! rt {
    ($t:ty, $v:expr) => {{
        let t: $t = serde_json::from_value($v.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(&t).map_err(|e| e.to_string())?
    }};
}

/// Round-trips through the typed struct: Err(message) on type errors.
pub fn roundtrip(b: Builtin, v: &Value) -> Result<Value, String> {
    use Builtin::*;
    use k8s_openapi::api::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    Ok(match b {
        Namespace => rt!(core::v1::Namespace, v),
        Secret => rt!(core::v1::Secret, v),
        ConfigMap => rt!(core::v1::ConfigMap, v),
        ServiceAccount => rt!(core::v1::ServiceAccount, v),
        Service => rt!(core::v1::Service, v),
        Pod => rt!(core::v1::Pod, v),
        Endpoints => rt!(core::v1::Endpoints, v),
        Pvc => rt!(core::v1::PersistentVolumeClaim, v),
        ResourceQuota => rt!(core::v1::ResourceQuota, v),
        LimitRange => rt!(core::v1::LimitRange, v),
        Node => rt!(core::v1::Node, v),
        CoreEvent => rt!(core::v1::Event, v),
        EventsEvent => rt!(events::v1::Event, v),
        Deployment => rt!(apps::v1::Deployment, v),
        StatefulSet => rt!(apps::v1::StatefulSet, v),
        DaemonSet => rt!(apps::v1::DaemonSet, v),
        ReplicaSet => rt!(apps::v1::ReplicaSet, v),
        Job => rt!(batch::v1::Job, v),
        CronJob => rt!(batch::v1::CronJob, v),
        Lease => rt!(coordination::v1::Lease, v),
        Role => rt!(rbac::v1::Role, v),
        ClusterRole => rt!(rbac::v1::ClusterRole, v),
        RoleBinding => rt!(rbac::v1::RoleBinding, v),
        ClusterRoleBinding => rt!(rbac::v1::ClusterRoleBinding, v),
        Crd => rt!(apiext::CustomResourceDefinition, v),
        Pdb => rt!(policy::v1::PodDisruptionBudget, v),
        NetworkPolicy => rt!(networking::v1::NetworkPolicy, v),
        Ingress => rt!(networking::v1::Ingress, v),
        IngressClass => rt!(networking::v1::IngressClass, v),
        Hpa => rt!(autoscaling::v2::HorizontalPodAutoscaler, v),
        PriorityClass => rt!(scheduling::v1::PriorityClass, v),
        ValidatingWebhook => rt!(admissionregistration::v1::ValidatingWebhookConfiguration, v),
        MutatingWebhook => rt!(admissionregistration::v1::MutatingWebhookConfiguration, v),
        EndpointSlice => rt!(discovery::v1::EndpointSlice, v),
        StorageClass => rt!(storage::v1::StorageClass, v),
        SelfSubjectAccessReview => rt!(authorization::v1::SelfSubjectAccessReview, v),
        SubjectAccessReview => rt!(authorization::v1::SubjectAccessReview, v),
        SelfSubjectRulesReview => rt!(authorization::v1::SelfSubjectRulesReview, v),
        TokenReview => rt!(authentication::v1::TokenReview, v),
        SelfSubjectReview => rt!(authentication::v1::SelfSubjectReview, v),
    })
}

/// Paths present (non-null) in `input` but dropped by the typed round trip.
pub fn unknown_fields(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    None => {
                        if !v.is_null()
                            && !(v.is_object() && v.as_object().is_some_and(|m| m.is_empty()))
                        {
                            out.push(p)
                        }
                    }
                    Some(bv) => unknown_fields(v, bv, &p, out),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Defaults kube-apiserver applies to a new or updated built-in object.
pub fn default_builtin(b: Builtin, v: &mut Value) {
    match b {
        Builtin::Secret => {
            if let Some(sd) = v.get("stringData").and_then(|s| s.as_object()).cloned() {
                use base64::Engine;
                for (k, val) in sd {
                    let enc = base64::engine::general_purpose::STANDARD
                        .encode(val.as_str().unwrap_or(""));
                    v["data"][k] = json!(enc);
                }
                v.as_object_mut().map(|m| m.remove("stringData"));
            }
            if v.get("type").is_none() {
                v["type"] = json!("Opaque");
            }
        }
        Builtin::Namespace => {
            if v.pointer("/spec/finalizers").is_none() {
                v["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            if v.pointer("/status/phase").is_none() {
                v["status"] = json!({"phase": "Active"});
            }
        }
        Builtin::Service => {
            if v.pointer("/spec/type").is_none() {
                v["spec"]["type"] = json!("ClusterIP");
            }
            if v.pointer("/spec/clusterIP").is_none()
                && v.pointer("/spec/type").and_then(|t| t.as_str()) != Some("ExternalName")
            {
                let n: u8 = rand::random::<u8>().max(2);
                let m: u8 = rand::random::<u8>().max(1);
                v["spec"]["clusterIP"] = json!(format!("10.96.{m}.{n}"));
                v["spec"]["clusterIPs"] = json!([format!("10.96.{m}.{n}")]);
            }
            if v.pointer("/spec/sessionAffinity").is_none() {
                v["spec"]["sessionAffinity"] = json!("None");
            }
            if let Some(ports) = v.pointer_mut("/spec/ports").and_then(|p| p.as_array_mut()) {
                for p in ports {
                    if p.get("protocol").is_none() {
                        p["protocol"] = json!("TCP");
                    }
                    if p.get("targetPort").is_none() {
                        let port = p.get("port").cloned().unwrap_or(json!(0));
                        p["targetPort"] = port;
                    }
                }
            }
        }
        Builtin::Deployment | Builtin::StatefulSet | Builtin::ReplicaSet => {
            if v.get("spec").is_some() && v.pointer("/spec/replicas").is_none() {
                v["spec"]["replicas"] = json!(1);
            }
            if b == Builtin::Deployment && v.get("spec").is_some() {
                if v.pointer("/spec/strategy").is_none() {
                    v["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}});
                }
                if v.pointer("/spec/revisionHistoryLimit").is_none() {
                    v["spec"]["revisionHistoryLimit"] = json!(10);
                }
                if v.pointer("/spec/progressDeadlineSeconds").is_none() {
                    v["spec"]["progressDeadlineSeconds"] = json!(600);
                }
            }
        }
        Builtin::ServiceAccount | Builtin::ConfigMap => {}
        _ => {}
    }
}

/// Stored (core/v1) Event → events.k8s.io/v1 view.
pub fn core_to_events(v: &Value) -> Value {
    let mut out = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": v.get("metadata").cloned().unwrap_or(json!({})),
    });
    let map = [
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
        ("action", "action"),
        ("reason", "reason"),
        ("involvedObject", "regarding"),
        ("related", "related"),
        ("message", "note"),
        ("type", "type"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ];
    for (c, e) in map {
        if let Some(x) = v.get(c).filter(|x| !x.is_null()) {
            out[e] = x.clone();
        }
    }
    if out.get("eventTime").is_none() {
        out["eventTime"] = Value::Null;
    }
    out
}

/// events.k8s.io/v1 Event → stored core/v1 form.
pub fn events_to_core(v: &Value) -> Value {
    let mut out = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": v.get("metadata").cloned().unwrap_or(json!({})),
    });
    let map = [
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
        ("action", "action"),
        ("reason", "reason"),
        ("regarding", "involvedObject"),
        ("related", "related"),
        ("note", "message"),
        ("type", "type"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
    ];
    for (e, c) in map {
        if let Some(x) = v.get(e).filter(|x| !x.is_null()) {
            out[c] = x.clone();
        }
    }
    if out.get("involvedObject").is_none() {
        out["involvedObject"] = json!({});
    }
    if out.get("source").is_none() {
        if let Some(rc) = v.get("reportingController") {
            out["source"] = json!({"component": rc});
        }
    }
    if let Some(series) = v.get("series") {
        if let Some(c) = series.get("count") {
            out["count"] = c.clone();
        }
        if let Some(t) = series.get("lastObservedTime") {
            out["lastTimestamp"] = t.clone();
        }
    }
    if out.get("count").is_none() {
        out["count"] = json!(1);
    }
    out
}
