//! Server-side apply: required fieldManager, YAML bodies, create-if-missing, managedFields,
//! 409 conflicts with causes and `force`, removal of fields a manager stopped applying
//! (kept when another manager owns them), list-type map/set merges and atomic lists, and
//! ownership taken over by Update writes.
mod kube_common;

use kube::api::{Api, Patch, PatchParams};
use kube_common::*;
use serde_json::{Value, json};
use testbed::kube::KubeEmulator;

const URI: &str = "/apis/example.com/v1/namespaces/default/widgets/w?fieldManager=";

async fn apply(client: &kube::Client, manager: &str, yaml: &str, force: bool) -> (u16, Value) {
    let req = http::Request::builder()
        .method("PATCH")
        .uri(format!(
            "{URI}{manager}{}",
            if force { "&force=true" } else { "" }
        ))
        .header("content-type", "application/apply-patch+yaml")
        .body(yaml.as_bytes().to_vec())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["manager"].as_str().unwrap().to_string(),
                        m["operation"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

const HEAD: &str = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n";

#[tokio::test]
async fn apply_creates_tracks_and_conflicts() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    // fieldManager is required.
    let req = http::Request::builder()
        .method("PATCH")
        .uri("/apis/example.com/v1/namespaces/default/widgets/w")
        .header("content-type", "application/apply-patch+yaml")
        .body(format!("{HEAD}spec:\n  size: 1\n").into_bytes())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Create if missing (201), with managedFields for the manager.
    let (code, obj) = apply(
        &client,
        "alice",
        &format!("{HEAD}spec:\n  size: 1\n  tags: [a]\n"),
        false,
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    assert_eq!(managers(&obj), vec![("alice".into(), "Apply".into())]);
    let fields = &obj["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(
        fields,
        &json!({"f:spec": {"f:size": {}, "f:tags": {"v:\"a\"": {}}}})
    );
    // Another manager changing alice's field: 409 with causes.
    let (code, st) = apply(&client, "bob", &format!("{HEAD}spec:\n  size: 2\n"), false).await;
    assert_eq!(code, 409);
    assert_eq!(st["reason"], "Conflict");
    assert_eq!(
        st["message"],
        "Apply failed with 1 conflict: conflict with \"alice\" using example.com/v1: .spec.size"
    );
    assert_eq!(st["details"]["causes"][0]["reason"], "FieldManagerConflict");
    assert_eq!(st["details"]["causes"][0]["field"], ".spec.size");
    // Same value: shared ownership, no conflict.
    let (code, obj) = apply(
        &client,
        "bob",
        &format!("{HEAD}spec:\n  size: 1\n  tags: [b]\n"),
        false,
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(obj["spec"]["tags"], json!(["a", "b"]), "set lists merge");
    // Force takes ownership.
    let (code, obj) = apply(
        &client,
        "bob",
        &format!("{HEAD}spec:\n  size: 3\n  tags: [b]\n"),
        true,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(obj["spec"]["size"], 3);
    let alice = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "alice")
        .unwrap();
    assert!(
        alice["fieldsV1"]["f:spec"].get("f:size").is_none(),
        "alice lost .spec.size"
    );
}

#[tokio::test]
async fn apply_removes_fields_no_longer_applied() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    apply(&client, "alice", &format!("{HEAD}spec:\n  size: 1\n  name: abc\n  args: [x, y]\n  ports:\n  - {{name: http, port: 80}}\n"), false).await;
    apply(
        &client,
        "bob",
        &format!("{HEAD}spec:\n  size: 1\n  ports:\n  - {{name: grpc, port: 90}}\n"),
        false,
    )
    .await;
    // alice stops applying name and args and her port; size is co-owned by bob so it stays.
    let (code, obj) = apply(
        &client,
        "alice",
        &format!("{HEAD}spec:\n  mode: fast\n"),
        false,
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    assert!(obj["spec"].get("name").is_none(), "removed: {obj}");
    assert!(obj["spec"].get("args").is_none(), "removed atomic list");
    assert_eq!(obj["spec"]["size"], 1, "still owned by bob");
    assert_eq!(
        obj["spec"]["ports"],
        json!([{"name": "grpc", "port": 90}]),
        "alice's map item removed, bob's kept"
    );
    assert_eq!(obj["spec"]["mode"], "fast");
    // Atomic lists are replaced as a whole; map lists merge by key.
    let (_, obj) = apply(
        &client,
        "bob",
        &format!("{HEAD}spec:\n  size: 1\n  args: [z]\n  ports:\n  - {{name: grpc, port: 91}}\n"),
        false,
    )
    .await;
    assert_eq!(obj["spec"]["args"], json!(["z"]));
    assert_eq!(obj["spec"]["ports"], json!([{"name": "grpc", "port": 91}]));
}

#[tokio::test]
async fn update_writes_take_ownership() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    apply(
        &client,
        "alice",
        &format!("{HEAD}spec:\n  size: 1\n"),
        false,
    )
    .await;
    let api: Api<Widget> = Api::default_namespaced(client.clone());
    api.patch(
        "w",
        &PatchParams {
            field_manager: Some("editor".into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"spec": {"size": 4}})),
    )
    .await
    .unwrap();
    let (code, st) = apply(
        &client,
        "alice",
        &format!("{HEAD}spec:\n  size: 1\n"),
        false,
    )
    .await;
    assert_eq!(code, 409);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("conflict with \"editor\""),
        "{st}"
    );
    // kube-rs typed apply on /status with its own manager.
    let out = api
        .patch_status("w", &PatchParams::apply("status-writer"), &Patch::Apply(json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {"phase": "Ok"}})))
        .await
        .unwrap();
    assert_eq!(out.status.unwrap().phase.as_deref(), Some("Ok"));
    let mf = out.metadata.managed_fields.unwrap();
    let e = mf
        .iter()
        .find(|m| m.manager.as_deref() == Some("status-writer"))
        .unwrap();
    assert_eq!(e.subresource.as_deref(), Some("status"));
    assert_eq!(e.operation.as_deref(), Some("Apply"));
    // A no-op apply keeps the resourceVersion.
    let before = api.get("w").await.unwrap().metadata.resource_version;
    let again = api
        .patch_status("w", &PatchParams::apply("status-writer"), &Patch::Apply(json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {"phase": "Ok"}})))
        .await
        .unwrap();
    assert_eq!(again.metadata.resource_version, before);
}
