//! Built-in kinds are stored and served (no controllers run): every kind the operator and
//! its chart use round-trips through its typed k8s-openapi struct, with the defaults
//! kube-apiserver applies; events.k8s.io/v1 Events are also visible as core/v1 Events.
mod kube_common;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event as NewEvent;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_common::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use testbed::kube::KubeEmulator;

async fn roundtrip<K>(api: Api<K>, body: Value) -> K
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(body).unwrap();
    let made = api.create(&PostParams::default(), &obj).await.unwrap();
    let name = made.meta().name.clone().unwrap();
    let got = api.get(&name).await.unwrap();
    assert_eq!(got.meta().uid, made.meta().uid);
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    got
}

#[tokio::test]
async fn builtin_kinds_round_trip() {
    let emu = KubeEmulator::new();
    let c = emu.client();
    let svc = roundtrip(Api::<Service>::default_namespaced(c.clone()), json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}})).await;
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(spec.cluster_ip.unwrap().starts_with("10.96."));
    assert_eq!(spec.ports.unwrap()[0].protocol.as_deref(), Some("TCP"));
    roundtrip(
        Api::<ServiceAccount>::default_namespaced(c.clone()),
        json!({"metadata": {"name": "sa"}}),
    )
    .await;
    let d = roundtrip(Api::<Deployment>::default_namespaced(c.clone()), json!({"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})).await;
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(1));
    assert!(d.status.is_none(), "stored, not started");
    let lease = roundtrip(Api::<Lease>::default_namespaced(c.clone()), json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}})).await;
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("me"));
    roundtrip(Api::<Role>::default_namespaced(c.clone()), json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})).await;
    roundtrip(Api::<RoleBinding>::default_namespaced(c.clone()), json!({"metadata": {"name": "rb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}, "subjects": []})).await;
    roundtrip(
        Api::<ClusterRole>::all(c.clone()),
        json!({"metadata": {"name": "cr"}, "rules": []}),
    )
    .await;
    roundtrip(Api::<ClusterRoleBinding>::all(c.clone()), json!({"metadata": {"name": "crb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr"}})).await;
    roundtrip(Api::<PodDisruptionBudget>::default_namespaced(c.clone()), json!({"metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"a": "b"}}}})).await;
    roundtrip(Api::<NetworkPolicy>::default_namespaced(c.clone()), json!({"metadata": {"name": "np"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})).await;
    // A type error is a 400 in kube-apiserver's words.
    let (code, body) = raw(&c, "POST", "/apis/apps/v1/namespaces/default/deployments", "application/json",
        Some(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"}, "spec": {"replicas": "many"}}))).await;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Deployment in version \"v1\" cannot be handled as a Deployment:"),
        "{body}"
    );
    // Lease updates (leader election) keep working through replace and patch.
    let leases: Api<Lease> = Api::default_namespaced(c.clone());
    let mut l = leases.get("l").await.unwrap();
    l.spec.as_mut().unwrap().holder_identity = Some("you".into());
    let l2 = leases
        .replace("l", &PostParams::default(), &l)
        .await
        .unwrap();
    assert_eq!(l2.spec.unwrap().holder_identity.as_deref(), Some("you"));
    let stale = leases
        .replace("l", &PostParams::default(), &l)
        .await
        .unwrap_err();
    assert!(matches!(stale, kube::Error::Api(ref s) if s.code == 409));
}

#[tokio::test]
async fn events_are_one_store_with_two_views() {
    let emu = KubeEmulator::new();
    let c = emu.client();
    let new: Api<NewEvent> = Api::default_namespaced(c.clone());
    let ev: NewEvent = serde_json::from_value(json!({
        "metadata": {"name": "e1"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "ctl", "reportingInstance": "ctl-0",
        "action": "Reconcile", "reason": "Done", "note": "all good", "type": "Normal",
        "regarding": {"kind": "ConfigMap", "name": "cm", "namespace": "default", "apiVersion": "v1"}
    }))
    .unwrap();
    new.create(&PostParams::default(), &ev).await.unwrap();
    let core: Api<CoreEvent> = Api::default_namespaced(c.clone());
    let e = core.get("e1").await.unwrap();
    assert_eq!(e.message.as_deref(), Some("all good"));
    assert_eq!(e.involved_object.name.as_deref(), Some("cm"));
    assert_eq!(e.reporting_component.as_deref(), Some("ctl"));
    // Series update through the new API (what kube-runtime's Recorder does) shows in both.
    new.patch(
        "e1",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(core.get("e1").await.unwrap().count, Some(2));
    assert_eq!(new.get("e1").await.unwrap().series.unwrap().count, 2);
    new.delete("e1", &DeleteParams::default()).await.unwrap();
    assert!(core.get_opt("e1").await.unwrap().is_none());
}

#[tokio::test]
async fn delete_collection_and_foreground_propagation() {
    let emu = KubeEmulator::new();
    let c = emu.client();
    let sas: Api<ServiceAccount> = Api::default_namespaced(c.clone());
    for (n, team) in [("a", "x"), ("b", "x"), ("c", "y")] {
        sas.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": n, "labels": {"team": team}}}))
                .unwrap(),
        )
        .await
        .unwrap();
    }
    sas.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("team=x"),
    )
    .await
    .unwrap();
    let left: Vec<String> = sas
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    assert_eq!(left, vec!["c"]);
    // Foreground: the owner waits for a dependent held by a finalizer.
    let owner = sas.get("c").await.unwrap();
    let dep: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "dep", "finalizers": ["example.com/hold"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "ServiceAccount", "name": "c", "uid": owner.metadata.uid.unwrap()}]}})).unwrap();
    sas.create(&PostParams::default(), &dep).await.unwrap();
    sas.delete("c", &DeleteParams::foreground()).await.unwrap();
    let waiting = sas.get("c").await.unwrap();
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(
        waiting
            .metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(
        sas.get("dep")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    sas.patch(
        "dep",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(sas.get_opt("dep").await.unwrap().is_none());
    assert!(
        sas.get_opt("c").await.unwrap().is_none(),
        "owner goes once its dependents are gone"
    );
}
