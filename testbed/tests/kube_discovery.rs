//! Discovery and OpenAPI v3: /version, /api, /apis, resource lists with names, verbs,
//! shortNames, categories and /status entries; the /openapi/v3 index whose hashes change
//! when a CRD changes, and per group/version documents with PATCH operations advertising
//! fieldValidation and the accepted patch types (strategic merge only for built-ins).
mod kube_common;

use kube_common::*;
use serde_json::{Value, json};
use testbed::kube::KubeEmulator;

async fn get(client: &kube::Client, uri: &str) -> Value {
    let (code, v) = raw(client, "GET", uri, "application/json", None).await;
    assert_eq!(code, 200, "{uri}: {v}");
    v
}

#[tokio::test]
async fn legacy_discovery() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    let v = get(&client, "/version").await;
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "33");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.33."));
    assert_eq!(get(&client, "/api").await["versions"], json!(["v1"]));
    let core = get(&client, "/api/v1").await;
    let res = core["resources"].as_array().unwrap();
    let cm = res.iter().find(|r| r["name"] == "configmaps").unwrap();
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["singularName"], "configmap");
    assert_eq!(cm["namespaced"], true);
    assert_eq!(cm["shortNames"], json!(["cm"]));
    assert!(cm["verbs"].as_array().unwrap().contains(&json!("watch")));
    assert!(res.iter().any(|r| r["name"] == "namespaces/status"));
    let groups = get(&client, "/apis").await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "policy",
        "networking.k8s.io",
    ] {
        assert!(names.contains(&g), "{g}");
    }
    assert!(!names.contains(&"example.com"));
    install_widget_crd(&client).await;
    let groups = get(&client, "/apis").await;
    let ex = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "example.com")
        .unwrap();
    assert_eq!(ex["preferredVersion"]["groupVersion"], "example.com/v1");
    let list = get(&client, "/apis/example.com/v1").await;
    let w = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "widgets")
        .unwrap();
    assert_eq!(w["singularName"], "widget");
    assert_eq!(w["shortNames"], json!(["wd"]));
    assert_eq!(w["categories"], json!(["all"]));
    let st = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "widgets/status")
        .unwrap();
    assert_eq!(st["verbs"], json!(["get", "patch", "update"]));
    let (code, body) = raw(
        &client,
        "GET",
        "/apis/nope.example.com/v1",
        "application/json",
        None,
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));
}

#[tokio::test]
async fn openapi_v3_index_and_documents() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    let idx1 = get(&client, "/openapi/v3").await;
    assert!(
        idx1["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/api/v1?hash=")
    );
    assert!(idx1["paths"].get("apis/example.com/v1").is_none());
    install_widget_crd(&client).await;
    let idx2 = get(&client, "/openapi/v3").await;
    let url = idx2["paths"]["apis/example.com/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = get(&client, &url).await;
    let schema = &doc["components"]["schemas"]["com.example.v1.Widget"];
    assert_eq!(
        schema["x-kubernetes-group-version-kind"],
        json!([{"group": "example.com", "kind": "Widget", "version": "v1"}])
    );
    assert_eq!(
        schema["properties"]["spec"]["properties"]["size"]["maximum"],
        10.0
    );
    let patch =
        &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        params.contains(&"fieldValidation")
            && params.contains(&"fieldManager")
            && params.contains(&"force")
    );
    let types: Vec<&String> = patch["requestBody"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert!(types.iter().any(|t| *t == "application/apply-patch+yaml"));
    assert!(
        !types
            .iter()
            .any(|t| *t == "application/strategic-merge-patch+json"),
        "no SMP for custom resources"
    );
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Widget");
    // Built-ins: strategic merge advertised, schemas from k8s-openapi.
    let apps_url = idx2["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let apps = get(&client, &apps_url).await;
    let p = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(
        p["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_some()
    );
    let dep = apps["components"]["schemas"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["x-kubernetes-group-version-kind"][0]["kind"] == "Deployment")
        .expect("Deployment schema");
    assert!(dep["properties"]["spec"].is_object());
    // Changing the CRD's schema changes the hash.
    let (code, _) = raw(
        &client,
        "PATCH",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        "application/json-patch+json",
        Some(json!([{"op": "replace", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/size/maximum", "value": 20}])),
    )
    .await;
    assert_eq!(code, 200);
    let idx3 = get(&client, "/openapi/v3").await;
    assert_ne!(
        idx3["paths"]["apis/example.com/v1"]["serverRelativeURL"],
        idx2["paths"]["apis/example.com/v1"]["serverRelativeURL"]
    );
    assert_eq!(
        idx3["paths"]["api/v1"], idx2["paths"]["api/v1"],
        "unrelated documents keep their hash"
    );
}
