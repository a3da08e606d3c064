//! OpenAPI v3: the `/openapi/v3` index (hashes change when schemas change) and one
//! document per group/version, built from CRD schemas and k8s-openapi's schemas for the
//! built-in kinds, with PATCH operations advertising `fieldValidation` and patch types.
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::registry::{Builtin, Registry, ResourceType};

fn reversed_group(group: &str) -> String {
    if group.is_empty() {
        return "io.k8s.api.core".into();
    }
    let mut parts: Vec<&str> = group.split('.').collect();
    parts.reverse();
    parts.join(".")
}

fn schema_id(t: &ResourceType) -> String {
    format!("{}.{}.{}", reversed_group(&t.group), t.version, t.kind)
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn object_meta_schema() -> Value {
    let s = |d: &str| json!({"type": "string", "description": d});
    json!({
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "type": "object",
        "properties": {
            "name": s("Name must be unique within a namespace."),
            "generateName": s("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
            "namespace": s("Namespace defines the space within which each name must be unique."),
            "uid": s("UID is the unique in time and space value for this object."),
            "resourceVersion": s("An opaque value that represents the internal version of this object."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "CreationTimestamp is a timestamp representing the server time when this object was created."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."},
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}, "description": "Map of string keys and values that can be used to organize and categorize (scope and select) objects."},
            "annotations": {"type": "object", "additionalProperties": {"type": "string", "default": ""}, "description": "Annotations is an unstructured key value map stored with a resource."},
            "finalizers": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set", "description": "Must be empty before the object is deleted from the registry."},
            "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-map-type": "atomic"}, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"},
            "managedFields": {"type": "array", "items": {"type": "object"}},
            "selfLink": s("Deprecated.")
        }
    })
}

fn crd_schema(t: &ResourceType, schema: &Value) -> Value {
    let mut s = schema.clone();
    if !s.is_object() {
        s = json!({"type": "object"});
    }
    let props = s
        .as_object_mut()
        .unwrap()
        .entry("properties")
        .or_insert_with(|| json!({}));
    props["apiVersion"] = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."});
    props["kind"] = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."});
    props["metadata"] = json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "description": "Standard object's metadata."});
    s["x-kubernetes-group-version-kind"] =
        json!([{"group": t.group, "kind": t.kind, "version": t.version}]);
    s
}

fn builtin_schemas(b: Builtin, defs: &mut Map<String, Value>) -> Option<String> {
    use k8s_openapi::api::*;
    use schemars::generate::SchemaSettings;
    macro_rules! schema_gen {
        ($t:ty) => {{
            let mut g = SchemaSettings::openapi3().into_generator();
            let root = g.subschema_for::<$t>();
            for (k, v) in g.take_definitions(true) {
                defs.insert(k, v);
            }
            root.get("$ref")
                .and_then(|r| r.as_str())
                .map(|r| r.rsplit('/').next().unwrap_or("").to_string())
        }};
    }
    use Builtin::*;
    match b {
        Namespace => schema_gen!(core::v1::Namespace),
        Secret => schema_gen!(core::v1::Secret),
        ConfigMap => schema_gen!(core::v1::ConfigMap),
        ServiceAccount => schema_gen!(core::v1::ServiceAccount),
        Service => schema_gen!(core::v1::Service),
        Deployment => schema_gen!(apps::v1::Deployment),
        Lease => schema_gen!(coordination::v1::Lease),
        Role => schema_gen!(rbac::v1::Role),
        ClusterRole => schema_gen!(rbac::v1::ClusterRole),
        RoleBinding => schema_gen!(rbac::v1::RoleBinding),
        ClusterRoleBinding => schema_gen!(rbac::v1::ClusterRoleBinding),
        CoreEvent => schema_gen!(core::v1::Event),
        EventsEvent => schema_gen!(events::v1::Event),
        Pdb => schema_gen!(policy::v1::PodDisruptionBudget),
        NetworkPolicy => schema_gen!(networking::v1::NetworkPolicy),
        Pod => schema_gen!(core::v1::Pod),
        Endpoints => schema_gen!(core::v1::Endpoints),
        Pvc => schema_gen!(core::v1::PersistentVolumeClaim),
        ResourceQuota => schema_gen!(core::v1::ResourceQuota),
        LimitRange => schema_gen!(core::v1::LimitRange),
        Node => schema_gen!(core::v1::Node),
        StatefulSet => schema_gen!(apps::v1::StatefulSet),
        DaemonSet => schema_gen!(apps::v1::DaemonSet),
        ReplicaSet => schema_gen!(apps::v1::ReplicaSet),
        Job => schema_gen!(batch::v1::Job),
        CronJob => schema_gen!(batch::v1::CronJob),
        Crd => schema_gen!(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition),
        Ingress => schema_gen!(networking::v1::Ingress),
        IngressClass => schema_gen!(networking::v1::IngressClass),
        Hpa => schema_gen!(autoscaling::v2::HorizontalPodAutoscaler),
        PriorityClass => schema_gen!(scheduling::v1::PriorityClass),
        ValidatingWebhook => schema_gen!(admissionregistration::v1::ValidatingWebhookConfiguration),
        MutatingWebhook => schema_gen!(admissionregistration::v1::MutatingWebhookConfiguration),
        EndpointSlice => schema_gen!(discovery::v1::EndpointSlice),
        StorageClass => schema_gen!(storage::v1::StorageClass),
        SelfSubjectAccessReview => schema_gen!(authorization::v1::SelfSubjectAccessReview),
        SubjectAccessReview => schema_gen!(authorization::v1::SubjectAccessReview),
        SelfSubjectRulesReview => schema_gen!(authorization::v1::SelfSubjectRulesReview),
        TokenReview => schema_gen!(authentication::v1::TokenReview),
        SelfSubjectReview => schema_gen!(authentication::v1::SelfSubjectReview),
    }
}

/// Adds the patch-strategy extensions kubectl reads to compute strategic merge patches,
/// matching the merge keys this server applies (see `patch::builtin_merge_key`).
fn add_patch_extensions(schema_name: &str, schema: &mut Value) {
    let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (name, prop) in props.iter_mut() {
        let is_array = prop.get("type").and_then(|t| t.as_str()) == Some("array")
            || prop
                .get("type")
                .and_then(|t| t.as_array())
                .is_some_and(|a| a.iter().any(|t| t == "array"));
        if !is_array {
            continue;
        }
        if super::patch::builtin_primitive_merge(name) {
            prop["x-kubernetes-patch-strategy"] = json!("merge");
            prop["x-kubernetes-list-type"] = json!("set");
            continue;
        }
        let sample = if name == "ports" && schema_name.ends_with("Container") {
            Some(json!({"containerPort": 1}))
        } else {
            None
        };
        if let Some(key) = super::patch::builtin_merge_key(name, sample.as_ref()) {
            prop["x-kubernetes-patch-strategy"] = json!("merge");
            prop["x-kubernetes-patch-merge-key"] = json!(key);
            prop["x-kubernetes-list-type"] = json!("map");
            prop["x-kubernetes-list-map-keys"] = json!([key]);
        }
    }
}

fn param(name: &str, loc: &str) -> Value {
    json!({"name": name, "in": loc, "description": name, "schema": {"type": "string", "uniqueItems": true}})
}

fn gvk_ext(t: &ResourceType) -> Value {
    json!({"group": t.group, "version": t.version, "kind": t.kind})
}

fn op(
    t: &ResourceType,
    action: &str,
    id: &str,
    params: &[&str],
    body_types: &[&str],
    sid: &str,
) -> Value {
    let ref_schema = json!({"$ref": format!("#/components/schemas/{sid}")});
    let mut o = json!({
        "operationId": format!("{action}{}", t.kind),
        "parameters": params.iter().map(|p| param(p, "query")).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref_schema}}}},
        "x-kubernetes-action": id,
        "x-kubernetes-group-version-kind": gvk_ext(t),
    });
    if !body_types.is_empty() {
        let mut content = Map::new();
        for bt in body_types {
            let schema = if bt.contains("patch") {
                json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"})
            } else {
                ref_schema.clone()
            };
            content.insert(bt.to_string(), json!({"schema": schema}));
        }
        o["requestBody"] = json!({"content": content, "required": true});
    }
    o
}

pub fn gv_document(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = reg.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(OBJECT_META.into(), object_meta_schema());
    schemas.insert("io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(), json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}));
    let prefix = if group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{group}/{version}")
    };
    for t in &types {
        let sid = match (&t.crd, t.builtin) {
            (Some(c), _) => {
                let sid = schema_id(t);
                schemas.insert(
                    sid.clone(),
                    crd_schema(t, c.schema.as_ref().unwrap_or(&json!({"type": "object"}))),
                );
                sid
            }
            (None, Some(b)) => {
                let mut defs = Map::new();
                match builtin_schemas(b, &mut defs) {
                    Some(root) => {
                        for (k, mut v) in defs {
                            add_patch_extensions(&k, &mut v);
                            if k == root {
                                v["x-kubernetes-group-version-kind"] = json!([gvk_ext(t)]);
                            }
                            schemas.entry(k).or_insert(v);
                        }
                        root
                    }
                    None => {
                        let sid = schema_id(t);
                        schemas.insert(
                            sid.clone(),
                            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "x-kubernetes-group-version-kind": [gvk_ext(t)]}),
                        );
                        sid
                    }
                }
            }
            _ => continue,
        };
        let mut patch_types = vec![
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ];
        if t.builtin.is_some() {
            patch_types.push("application/strategic-merge-patch+json");
        }
        let write_params = ["dryRun", "fieldManager", "fieldValidation", "pretty"];
        let patch_params = [
            "dryRun",
            "fieldManager",
            "fieldValidation",
            "force",
            "pretty",
        ];
        let collection = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("{prefix}/{}", t.plural)
        };
        let mut path_params = vec![];
        if t.namespaced {
            path_params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}));
        }
        if t.create_only {
            paths.insert(
                collection.clone(),
                json!({"post": op(t, "create", "post", &write_params, &["application/json"], &sid), "parameters": path_params}),
            );
            continue;
        }
        paths.insert(
            collection.clone(),
            json!({
                "get": op(t, "list", "list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"], &[], &sid),
                "post": op(t, "create", "post", &write_params, &["application/json", "application/yaml"], &sid),
                "delete": op(t, "deletecollection", "deletecollection", &["labelSelector", "fieldSelector", "dryRun"], &[], &sid),
                "parameters": path_params.clone(),
            }),
        );
        let mut item_params = path_params.clone();
        item_params.push(
            json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": op(t, "read", "get", &[], &[], &sid),
                "put": op(t, "replace", "put", &write_params, &["application/json", "application/yaml"], &sid),
                "patch": op(t, "patch", "patch", &patch_params, &patch_types, &sid),
                "delete": op(t, "delete", "delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"], &[], &sid),
                "parameters": item_params.clone(),
            }),
        );
        if t.status {
            paths.insert(
                format!("{collection}/{{name}}/status"),
                json!({
                    "get": op(t, "read", "get", &[], &[], &sid),
                    "put": op(t, "replace", "put", &write_params, &["application/json"], &sid),
                    "patch": op(t, "patch", "patch", &patch_params, &patch_types, &sid),
                    "parameters": item_params,
                }),
            );
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

pub fn hash(doc: &Value) -> String {
    let h = sha2::Sha512::digest(serde_json::to_vec(doc).unwrap_or_default());
    h.iter().map(|b| format!("{b:02X}")).collect()
}

pub fn gv_list(reg: &Registry) -> Vec<(String, String)> {
    let mut out = vec![(String::new(), "v1".to_string())];
    for (g, vs) in reg.groups() {
        for v in vs {
            out.push((g.clone(), v));
        }
    }
    out
}

pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}
