//! PATCH: JSON patch with kube-apiserver semantics (`test` of a missing path equals null,
//! failing tests are 422), merge patch, strategic merge patch for built-in kinds (merge
//! keys, `$patch: delete`, primitive-list merge) and 415 for custom resources.
mod kube_common;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use kube_common::*;
use serde_json::json;
use testbed::kube::KubeEmulator;
use testbed::kube::patch::{json_patch, merge_patch, strategic_merge};

#[test]
fn json_patch_test_of_missing_path_is_null() {
    let doc = json!({"metadata": {"name": "x"}});
    let p = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                   {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]);
    let out = json_patch(&doc, &p).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
    // Now a null test fails.
    let e = json_patch(&out, &p).unwrap_err();
    assert_eq!(e.code, 422);
    assert!(e.message.contains("test failed"), "{}", e.message);
    // Removal guarded by a test on the element.
    let p = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "f"}, {"op": "remove", "path": "/metadata/finalizers/0"}]);
    assert_eq!(
        json_patch(&out, &p).unwrap()["metadata"]["finalizers"],
        json!([])
    );
    // Remove of a missing path is an error; add with "-" appends.
    assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/spec"}])).is_err());
    let a = json_patch(
        &json!({"l": [1]}),
        &json!([{"op": "add", "path": "/l/-", "value": 2}]),
    )
    .unwrap();
    assert_eq!(a["l"], json!([1, 2]));
}

#[test]
fn merge_patch_rfc7386() {
    let doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
    let out = merge_patch(&doc, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
    assert_eq!(out, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
}

#[test]
fn strategic_merge_by_keys() {
    let doc = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
        {"name": "b", "image": "b:1"}
    ]}}}, "metadata": {"finalizers": ["f1"]}});
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
        {"name": "b", "$patch": "delete"},
        {"name": "c", "image": "c:1"}
    ]}}}, "metadata": {"finalizers": ["f2"]}});
    let out = strategic_merge(&doc, &patch).unwrap();
    let cs = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(cs.as_array().unwrap().len(), 2);
    assert_eq!(cs[0]["image"], "a:2");
    assert_eq!(
        cs[0]["env"],
        json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}])
    );
    assert_eq!(cs[1]["name"], "c");
    assert_eq!(out["metadata"]["finalizers"], json!(["f1", "f2"]));
}

#[tokio::test]
async fn strategic_merge_for_builtins_only() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}
    }))
    .unwrap();
    let made = deps.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(made.spec.as_ref().unwrap().replicas, Some(1), "defaulted");
    let (code, out) = raw(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/d",
        "application/strategic-merge-patch+json",
        Some(json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}})),
    )
    .await;
    assert_eq!(code, 200);
    let cs = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        cs.as_array().unwrap().len(),
        2,
        "merged by name, not replaced"
    );
    assert_eq!(cs[1]["image"], "b:2");
    assert_eq!(out["metadata"]["generation"], 2);
    install_widget_crd(&client).await;
    raw(&client, "POST", "/apis/example.com/v1/namespaces/default/widgets", "application/json",
        Some(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}))).await;
    let (code, body) = raw(
        &client,
        "PATCH",
        "/apis/example.com/v1/namespaces/default/widgets/w",
        "application/strategic-merge-patch+json",
        Some(json!({"spec": {"size": 2}})),
    )
    .await;
    assert_eq!(code, 415);
    assert_eq!(body["reason"], "UnsupportedMediaType");
    // JSON patch through the API: a failing test is 422 and nothing changes.
    let (code, body) = raw(&client, "PATCH", "/apis/example.com/v1/namespaces/default/widgets/w", "application/json-patch+json",
        Some(json!([{"op": "test", "path": "/spec/size", "value": 5}, {"op": "replace", "path": "/spec/size", "value": 6}]))).await;
    assert_eq!(code, 422, "{body}");
    let (code, body) = raw(&client, "PATCH", "/apis/example.com/v1/namespaces/default/widgets/w", "application/json-patch+json",
        Some(json!([{"op": "test", "path": "/spec/size", "value": 1}, {"op": "replace", "path": "/spec/size", "value": 6}]))).await;
    assert_eq!(code, 200);
    assert_eq!(body["spec"]["size"], 6);
    // PATCH of a missing object is 404.
    let (code, body) = raw(
        &client,
        "PATCH",
        "/apis/example.com/v1/namespaces/default/widgets/missing",
        "application/merge-patch+json",
        Some(json!({"spec": {"size": 2}})),
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(body["message"], "widgets.example.com \"missing\" not found");
    assert_eq!(body["details"]["group"], "example.com");
}
