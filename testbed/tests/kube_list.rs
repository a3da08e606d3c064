//! LIST: label selectors (=, !=, in, notin, exists, !key), field selectors, limit/continue,
//! resourceVersionMatch, and content negotiation (as=Table with printer columns and
//! PartialObjectMetadata rows, as=PartialObjectMetadataList).
mod kube_common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube_common::*;
use serde_json::{Value, json};
use testbed::kube::KubeEmulator;

async fn seed(api: &Api<ConfigMap>) {
    for (name, labels) in [
        ("a", vec![("app", "web"), ("tier", "front")]),
        ("b", vec![("app", "db")]),
        ("c", vec![("app", "cache"), ("tier", "back")]),
        ("d", vec![]),
    ] {
        let c = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &c).await.unwrap();
    }
}

async fn names(api: &Api<ConfigMap>, lp: &ListParams) -> Vec<String> {
    api.list(lp)
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect()
}

#[tokio::test]
async fn label_and_field_selectors() {
    let emu = KubeEmulator::new();
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client());
    seed(&api).await;
    let cases = [
        ("app=web", vec!["a"]),
        ("app==db", vec!["b"]),
        ("app!=web", vec!["b", "c", "d"]),
        ("app in (web,cache)", vec!["a", "c"]),
        ("app notin (web,cache)", vec!["b", "d"]),
        ("tier", vec!["a", "c"]),
        ("!tier", vec!["b", "d"]),
        ("app,tier=back", vec!["c"]),
    ];
    for (sel, want) in cases {
        assert_eq!(
            names(&api, &ListParams::default().labels(sel)).await,
            want,
            "{sel}"
        );
    }
    assert_eq!(
        names(&api, &ListParams::default().fields("metadata.name=b")).await,
        vec!["b"]
    );
    assert_eq!(
        names(&api, &ListParams::default().fields("metadata.name!=b")).await,
        vec!["a", "c", "d"]
    );
    let all: Api<ConfigMap> = Api::all(emu.client());
    assert_eq!(
        all.list(&ListParams::default().fields("metadata.namespace=default"))
            .await
            .unwrap()
            .items
            .len(),
        4
    );
    assert!(
        all.list(&ListParams::default().fields("metadata.namespace=kube-system"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn unsupported_field_selectors_are_rejected() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    let (code, body) = raw(
        &client,
        "GET",
        "/apis/example.com/v1/namespaces/default/widgets?fieldSelector=spec.size%3D1",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(body["message"], "field label not supported: spec.size");
    let (code, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dx",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/secrets?fieldSelector=type%3DOpaque",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps?fieldSelector=data.x%3Dy&watch=true",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn limit_and_continue() {
    let emu = KubeEmulator::new();
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client());
    seed(&api).await;
    let p1 = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(
        p1.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(),
        vec!["a", "b", "c"]
    );
    assert_eq!(p1.metadata.remaining_item_count, Some(1));
    let token = p1.metadata.continue_.clone().unwrap();
    let p2 = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        p2.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(),
        vec!["d"]
    );
    assert!(p2.metadata.continue_.as_deref().unwrap_or("").is_empty());
    assert_eq!(
        p1.metadata.resource_version,
        Some(emu.resource_version().to_string())
    );
}

#[tokio::test]
async fn resource_version_match_exact() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    seed(&api).await;
    let rv = emu.resource_version();
    let (code, _) = raw(
        &client,
        "GET",
        &format!(
            "/api/v1/namespaces/default/configmaps?resourceVersion={rv}&resourceVersionMatch=Exact"
        ),
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps?resourceVersion=1&resourceVersionMatch=Exact",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 410);
    assert_eq!(body["reason"], "Expired");
}

async fn get_as(client: &kube::Client, uri: &str, accept: &str) -> Value {
    let req = http::Request::builder()
        .uri(uri)
        .header("accept", accept)
        .body(Vec::new())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn table_and_partial_metadata() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    let (code, _) = raw(
        &client,
        "POST",
        "/apis/example.com/v1/namespaces/default/widgets",
        "application/json",
        Some(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"x": "y"}}, "spec": {"size": 7}})),
    )
    .await;
    assert_eq!(code, 201);
    raw(
        &client,
        "PATCH",
        "/apis/example.com/v1/namespaces/default/widgets/w/status",
        "application/merge-patch+json",
        Some(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
    )
    .await;
    let t = get_as(
        &client,
        "/apis/example.com/v1/namespaces/default/widgets",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    )
    .await;
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, vec!["Name", "Size", "Ready", "Age"]);
    let row = &t["rows"][0];
    assert_eq!(row["cells"][0], "w");
    assert_eq!(row["cells"][1], 7);
    assert_eq!(row["cells"][2], "True");
    let age = row["cells"][3].as_str().unwrap();
    assert!(
        age.ends_with('s') && age[..age.len() - 1].parse::<u32>().is_ok(),
        "human age: {age}"
    );
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["labels"]["x"], "y");
    assert!(row["object"].get("spec").is_none());
    // Built-in kinds get Name and Age columns.
    let t = get_as(
        &client,
        "/api/v1/namespaces",
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    .await;
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, vec!["Name", "Status", "Age"]);
    // PartialObjectMetadataList (what kube's metadata watcher asks for).
    let l = get_as(
        &client,
        "/apis/example.com/v1/namespaces/default/widgets",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .await;
    assert_eq!(l["kind"], "PartialObjectMetadataList");
    assert_eq!(l["items"][0]["kind"], "PartialObjectMetadata");
    assert!(l["items"][0].get("spec").is_none());
    let metas: Api<kube::core::PartialObjectMeta<Widget>> = Api::default_namespaced(client.clone());
    let list = metas.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("w"));
}

#[tokio::test]
async fn table_watch_for_kubectl_get_watch() {
    use futures::{AsyncBufReadExt, TryStreamExt};
    use http_body_util::BodyExt;
    let emu = KubeEmulator::new();
    let client = emu.client();
    let api: kube::Api<ConfigMap> = kube::Api::default_namespaced(client.clone());
    api.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("a".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let req = http::Request::builder()
        .uri("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0&timeoutSeconds=5")
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let body = resp
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other)
        .into_async_read();
    let mut lines = body.lines();
    let line = timeout(lines.try_next()).await.unwrap().unwrap();
    let ev: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["kind"], "Table");
    assert_eq!(ev["object"]["rows"][0]["cells"][0], "a");
}

#[tokio::test]
async fn human_durations() {
    use testbed::kube::table::human_duration;
    for (s, want) in [
        (5, "5s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 120, "3h2m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (40 * 86400, "40d"),
        (800 * 86400, "2y70d"),
    ] {
        assert_eq!(human_duration(s), want, "{s}");
    }
}
