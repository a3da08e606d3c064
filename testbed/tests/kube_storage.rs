//! Storage semantics of the kube emulator through a real kube::Client (in-process):
//! resourceVersion/uid/generation, no-op writes, /status separation, namespaces,
//! optimistic concurrency, generateName, dryRun, finalizers, preconditions and GC.
mod kube_common;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube_common::*;
use serde_json::json;
use testbed::kube::KubeEmulator;

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into()),
        ..Default::default()
    }
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected API error, got {other:?}"),
    }
}

#[tokio::test]
async fn default_namespaces_exist_and_missing_namespace_is_rejected() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    for n in ["default", "kube-system"] {
        let ns = nss.get(n).await.unwrap();
        assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    }
    let cms: Api<ConfigMap> = Api::namespaced(client, "nope");
    let s = api_err(
        cms.create(&PostParams::default(), &cm("a"))
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 404);
    assert_eq!(s.reason, "NotFound");
    assert_eq!(s.message, "namespaces \"nope\" not found");
    assert_eq!(s.details.unwrap().kind, "namespaces");
}

#[tokio::test]
async fn resource_version_uid_and_noop_writes() {
    let emu = KubeEmulator::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(emu.client());
    let a = cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let rv1: u64 = a
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(a.metadata.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(a.metadata.creation_timestamp.is_some());
    // No-op replace keeps the resourceVersion.
    let same = cms.replace("a", &PostParams::default(), &a).await.unwrap();
    assert_eq!(same.metadata.resource_version, a.metadata.resource_version);
    // A no-op merge patch too.
    let same2 = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "v"}})),
        )
        .await
        .unwrap();
    assert_eq!(same2.metadata.resource_version, a.metadata.resource_version);
    // A real change bumps it, monotonically, and keeps uid/creationTimestamp.
    let b = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "w"}})),
        )
        .await
        .unwrap();
    let rv2: u64 = b
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    assert_eq!(b.metadata.uid, a.metadata.uid);
    assert_eq!(b.metadata.creation_timestamp, a.metadata.creation_timestamp);
    // Another object gets a higher version still (one counter for everything).
    let c = cms.create(&PostParams::default(), &cm("c")).await.unwrap();
    assert!(c.metadata.resource_version.unwrap().parse::<u64>().unwrap() > rv2);
}

#[tokio::test]
async fn stale_resource_version_conflicts() {
    let emu = KubeEmulator::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(emu.client());
    let a = cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let mut changed = a.clone();
    changed.data = Some([("k".to_string(), "1".to_string())].into());
    cms.replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    let mut stale = a.clone();
    stale.data = Some([("k".to_string(), "2".to_string())].into());
    let s = api_err(
        cms.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 409);
    assert_eq!(s.reason, "Conflict");
    assert!(
        s.message.contains("the object has been modified"),
        "{}",
        s.message
    );
    // Unconditional update (no resourceVersion) is allowed.
    stale.metadata.resource_version = None;
    let ok = cms
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap();
    assert_eq!(ok.data.unwrap()["k"], "2");
    // Creating it again is AlreadyExists.
    let s = api_err(
        cms.create(&PostParams::default(), &cm("a"))
            .await
            .unwrap_err(),
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
}

#[tokio::test]
async fn generation_bumps_only_on_spec_and_status_is_separate() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    let ws: Api<Widget> = Api::default_namespaced(client);
    let w = ws
        .create(
            &PostParams::default(),
            &Widget::new(
                "w",
                WidgetSpec {
                    size: 1,
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    // Metadata-only change: no generation bump.
    let w2 = ws
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(w2.metadata.generation, Some(1));
    assert_ne!(w2.metadata.resource_version, w.metadata.resource_version);
    // Status write via /status: no bump; spec in the body is ignored there.
    let w3 = ws
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 9}, "status": {"phase": "Up"}})),
        )
        .await
        .unwrap();
    assert_eq!(w3.metadata.generation, Some(1));
    assert_eq!(w3.spec.size, 1);
    assert_eq!(w3.status.as_ref().unwrap().phase.as_deref(), Some("Up"));
    // Main-resource write cannot change status, but spec change bumps generation.
    let w4 = ws
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}, "status": {"phase": "Hacked"}})),
        )
        .await
        .unwrap();
    assert_eq!(w4.metadata.generation, Some(2));
    assert_eq!(w4.status.unwrap().phase.as_deref(), Some("Up"));
}

#[tokio::test]
async fn generate_name_dry_run_and_strict_validation() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut g = cm("");
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let made = cms.create(&PostParams::default(), &g).await.unwrap();
    let name = made.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    // dryRun=All: validated and returned, not stored.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    cms.create(&dry, &cm("dry")).await.unwrap();
    assert!(cms.get_opt("dry").await.unwrap().is_none());
    // fieldValidation=Strict rejects unknown fields (built-in and custom).
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}, "data": {"a": "b"}, "bogus": 1});
    let (code, s) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        "application/json",
        Some(bad.clone()),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        s["message"],
        "strict decoding error: unknown field \"bogus\""
    );
    assert_eq!(s["reason"], "BadRequest");
    // Default (Warn): accepted and the unknown field dropped.
    let (code, made) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        Some(bad),
    )
    .await;
    assert_eq!(code, 201);
    assert!(made.get("bogus").is_none());
    install_widget_crd(&client).await;
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1, "bogus": true}});
    let (code, s) = raw(
        &client,
        "POST",
        "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Strict",
        "application/json",
        Some(w.clone()),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        s["message"],
        "strict decoding error: unknown field \"spec.bogus\""
    );
    let (code, made) = raw(
        &client,
        "POST",
        "/apis/example.com/v1/namespaces/default/widgets",
        "application/json",
        Some(w),
    )
    .await;
    assert_eq!(code, 201);
    assert!(made["spec"].get("bogus").is_none(), "pruned");
}

#[tokio::test]
async fn finalizers_hold_deletion_and_no_new_finalizers_while_deleting() {
    let emu = KubeEmulator::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(emu.client());
    let mut c = cm("f");
    c.metadata.finalizers = Some(vec!["example.com/a".into()]);
    cms.create(&PostParams::default(), &c).await.unwrap();
    let r = cms.delete("f", &DeleteParams::default()).await.unwrap();
    let held = r.left().expect("object returned while finalizers remain");
    assert!(held.metadata.deletion_timestamp.is_some());
    let got = cms.get("f").await.unwrap();
    assert!(got.metadata.deletion_timestamp.is_some());
    // No new finalizers while deleting.
    let s = api_err(
        cms.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/a", "example.com/b"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 422);
    assert!(
        s.message
            .contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        s.message
    );
    // Removing the last finalizer completes the deletion.
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("f").await.unwrap().is_none());
}

#[tokio::test]
async fn delete_preconditions_and_owner_gc() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owner = cms
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    let s = api_err(
        cms.delete(
            "owner",
            &DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some("wrong".into()),
                    resource_version: None,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 409);
    assert!(
        s.message
            .contains("Precondition failed: UID in precondition: wrong"),
        "{}",
        s.message
    );
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let dep = Secret {
        metadata: ObjectMeta {
            name: Some("dep".into()),
            owner_references: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: "owner".into(),
                    uid: owner.metadata.uid.clone().unwrap(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        },
        string_data: Some([("p".to_string(), "q".to_string())].into()),
        ..Default::default()
    };
    let made = secrets.create(&PostParams::default(), &dep).await.unwrap();
    assert_eq!(
        made.data.unwrap()["p"].0,
        b"q".to_vec(),
        "stringData is folded into data"
    );
    let mut orphan = dep.clone();
    orphan.metadata.name = Some("orphan".into());
    secrets
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    // Background propagation (default) garbage-collects dependents.
    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("owner").await.unwrap().is_none());
    assert!(secrets.get_opt("dep").await.unwrap().is_none());
    assert!(secrets.get_opt("orphan").await.unwrap().is_none());
    // Orphan propagation keeps dependents and strips the owner reference.
    let owner2 = cms
        .create(&PostParams::default(), &cm("owner2"))
        .await
        .unwrap();
    let mut d2 = dep.clone();
    d2.metadata.owner_references.as_mut().unwrap()[0].uid = owner2.metadata.uid.unwrap();
    d2.metadata.owner_references.as_mut().unwrap()[0].name = "owner2".into();
    secrets.create(&PostParams::default(), &d2).await.unwrap();
    cms.delete("owner2", &DeleteParams::orphan()).await.unwrap();
    let kept = secrets.get("dep").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn crd_is_established_and_served_at_once() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let crd = crds.get("widgets.example.com").await.unwrap();
    let conds = crd.status.unwrap().conditions.unwrap();
    for t in ["Established", "NamesAccepted"] {
        assert!(
            conds.iter().any(|c| c.type_ == t && c.status == "True"),
            "{t}"
        );
    }
    let ws: Api<Widget> = Api::default_namespaced(client.clone());
    ws.create(
        &PostParams::default(),
        &Widget::new(
            "w",
            WidgetSpec {
                size: 3,
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        ws.get("w").await.unwrap().spec.color.as_deref(),
        Some("red"),
        "defaulted"
    );
    // Deleting the CRD removes the resource and its objects.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let e = ws.list(&Default::default()).await.unwrap_err();
    assert_eq!(api_err(e).code, 404);
}

#[tokio::test]
async fn namespace_deletion_removes_contents() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some("tmp".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "tmp");
    cms.create(&PostParams::default(), &cm("x")).await.unwrap();
    nss.delete("tmp", &DeleteParams::default()).await.unwrap();
    assert!(nss.get_opt("tmp").await.unwrap().is_none());
    assert_eq!(api_err(cms.get("x").await.unwrap_err()).code, 404);
}
