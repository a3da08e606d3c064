//! Custom resource validation against the CRD schema — types, enums, formats, bounds,
//! required, pattern, maxLength, list-map keys — plus defaulting, pruning with
//! x-kubernetes-preserve-unknown-fields, CEL rules (reason, transition rules with
//! oldSelf), all in kube-apiserver's message shape; and the checks on CRDs themselves.
mod kube_common;

use kube_common::*;
use serde_json::{Value, json};
use testbed::kube::KubeEmulator;

const COLL: &str = "/apis/example.com/v1/namespaces/default/widgets";

fn widget(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})
}

async fn rejected(client: &kube::Client, spec: Value) -> (String, Vec<Value>) {
    let (code, body) = raw(
        client,
        "POST",
        COLL,
        "application/json",
        Some(widget("bad", spec)),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(body["details"]["kind"], "Widget");
    assert_eq!(body["details"]["group"], "example.com");
    (
        body["message"].as_str().unwrap().to_string(),
        body["details"]["causes"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn schema_violations_in_apiserver_format() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    let cases = [
        (
            json!({"size": 0}),
            r#"Widget.example.com "bad" is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"#,
        ),
        (
            json!({"size": 11}),
            r#"Widget.example.com "bad" is invalid: spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"#,
        ),
        (
            json!({}),
            r#"Widget.example.com "bad" is invalid: spec.size: Required value"#,
        ),
        (
            json!({"size": 1, "color": "pink"}),
            r#"Widget.example.com "bad" is invalid: spec.color: Unsupported value: "pink": supported values: "red", "green", "blue""#,
        ),
        (
            json!({"size": 1, "name": "ABC"}),
            r#"Widget.example.com "bad" is invalid: spec.name: Invalid value: "ABC": spec.name in body should match '^[a-z]+$'"#,
        ),
        (
            json!({"size": 1, "name": "abcdefghijklmn"}),
            r#"Widget.example.com "bad" is invalid: spec.name: Too long: may not be more than 12 bytes"#,
        ),
        (
            json!({"size": 1, "created": "yesterday"}),
            r#"Widget.example.com "bad" is invalid: spec.created: Invalid value: "yesterday": spec.created in body must be of type date-time: "yesterday""#,
        ),
        (
            json!({"size": 1, "ports": [{"name": "a"}, {"name": "a"}]}),
            r#"Widget.example.com "bad" is invalid: spec.ports[1]: Duplicate value: {"name":"a"}"#,
        ),
        (
            json!({"size": 1, "mode": "forbidden"}),
            r#"Widget.example.com "bad" is invalid: spec.mode: Forbidden: mode must not be forbidden"#,
        ),
    ];
    for (spec, want) in cases {
        let (msg, causes) = rejected(&client, spec.clone()).await;
        assert_eq!(msg, want, "{spec}");
        assert_eq!(causes.len(), 1, "{spec}");
    }
    // A type error: CEL rules are then not evaluated, and that is reported too.
    let (msg, causes) = rejected(&client, json!({"size": "big"})).await;
    assert_eq!(
        msg,
        r#"Widget.example.com "bad" is invalid: [spec.size: Invalid value: "string": spec.size in body must be of type integer: "string", <nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"#
    );
    assert_eq!(causes[0]["reason"], "FieldValueTypeInvalid");
    // Several errors at once are bracketed, one cause each.
    let (msg, causes) = rejected(&client, json!({"size": 0, "color": "pink"})).await;
    assert!(
        msg.starts_with(r#"Widget.example.com "bad" is invalid: ["#) && msg.ends_with(']'),
        "{msg}"
    );
    assert!(
        msg.contains(
            "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
        ),
        "{msg}"
    );
    assert!(
        msg.contains(r#"spec.color: Unsupported value: "pink""#),
        "{msg}"
    );
    let mut fields: Vec<&str> = causes
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, vec!["spec.color", "spec.size"]);
}

#[tokio::test]
async fn defaulting_pruning_and_preserved_fields() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    let (code, obj) = raw(
        &client,
        "POST",
        COLL,
        "application/json",
        Some(widget(
            "w",
            json!({"size": 2, "unknown": 1, "extra": {"anything": {"goes": [1, 2]}}}),
        )),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(obj["spec"]["color"], "red", "default applied");
    assert!(obj["spec"].get("unknown").is_none(), "pruned");
    assert_eq!(
        obj["spec"]["extra"],
        json!({"anything": {"goes": [1, 2]}}),
        "preserved"
    );
}

#[tokio::test]
async fn cel_transition_rule_with_old_self() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    let (code, _) = raw(
        &client,
        "POST",
        COLL,
        "application/json",
        Some(widget("w", json!({"size": 2, "color": "green"}))),
    )
    .await;
    assert_eq!(code, 201);
    let (code, body) = raw(
        &client,
        "PATCH",
        &format!("{COLL}/w"),
        "application/merge-patch+json",
        Some(json!({"spec": {"color": "blue"}})),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        r#"Widget.example.com "w" is invalid: spec: Invalid value: "object": color is immutable"#
    );
    assert_eq!(body["details"]["causes"][0]["field"], "spec");
    assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueInvalid");
    // Schema errors and CEL errors are reported together; a type error blocks CEL.
    let (code, body) = raw(
        &client,
        "PATCH",
        &format!("{COLL}/w"),
        "application/merge-patch+json",
        Some(json!({"spec": {"color": "blue", "size": 0}})),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        body["details"]["causes"].as_array().unwrap().len(),
        2,
        "{body}"
    );
    let (code, body) = raw(
        &client,
        "PATCH",
        &format!("{COLL}/w"),
        "application/merge-patch+json",
        Some(json!({"spec": {"color": "blue", "size": "x"}})),
    )
    .await;
    assert_eq!(code, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("some validation rules were not checked because the object was invalid"),
        "{body}"
    );
    // Other changes are fine (the transition rule compares with oldSelf).
    let (code, _) = raw(
        &client,
        "PATCH",
        &format!("{COLL}/w"),
        "application/merge-patch+json",
        Some(json!({"spec": {"size": 3}})),
    )
    .await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn crd_itself_is_checked() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"] =
        json!({"minimum": 1});
    let (code, body) = raw(&client, "POST", crds, "application/json", Some(crd)).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "CustomResourceDefinition.apiextensions.k8s.io \"widgets.example.com\" is invalid: spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type: Required value: must not be empty for specified object fields"
    );
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!("wrong.example.com");
    let (code, body) = raw(&client, "POST", crds, "application/json", Some(crd)).await;
    assert_eq!(code, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("must be spec.names.plural+\".\"+spec.group"),
        "{body}"
    );
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]
        .as_object_mut()
        .unwrap()
        .remove("schema");
    let (code, body) = raw(&client, "POST", crds, "application/json", Some(crd)).await;
    assert_eq!(code, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("schemas are required"),
        "{body}"
    );
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] =
        json!([{"rule": "self.spec.size >"}]);
    let (code, body) = raw(&client, "POST", crds, "application/json", Some(crd)).await;
    assert_eq!(code, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("compilation failed"),
        "{body}"
    );
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["type"] = json!("string");
    let (code, body) = raw(&client, "POST", crds, "application/json", Some(crd)).await;
    assert_eq!(code, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("must be object at the root"),
        "{body}"
    );
    // And nothing was served.
    let (code, _) = raw(&client, "GET", COLL, "application/json", None).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn unchanged_invalid_fields_are_ratcheted() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    let (code, _) = raw(
        &client,
        "POST",
        COLL,
        "application/json",
        Some(widget("w", json!({"size": 5}))),
    )
    .await;
    assert_eq!(code, 201);
    // Tighten the schema: size must now be <= 3.
    let (code, _) = raw(
        &client,
        "PATCH",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        "application/json-patch+json",
        Some(json!([{"op": "replace", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/size/maximum", "value": 3}])),
    )
    .await;
    assert_eq!(code, 200);
    // Unrelated changes still go through; changing the invalid field to another invalid value does not.
    let (code, body) = raw(
        &client,
        "PATCH",
        &format!("{COLL}/w"),
        "application/merge-patch+json",
        Some(json!({"metadata": {"labels": {"a": "b"}}, "spec": {"name": "abc"}})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = raw(
        &client,
        "PATCH",
        &format!("{COLL}/w"),
        "application/merge-patch+json",
        Some(json!({"spec": {"size": 6}})),
    )
    .await;
    assert_eq!(code, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("should be less than or equal to 3"),
        "{body}"
    );
}
