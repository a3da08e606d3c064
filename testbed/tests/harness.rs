//! The harness's own promises, on a real control plane: one control plane per test binary
//! (shared), ServiceAccount tokens from TokenRequest that RBAC judges, the proxy cutting a watch
//! mid-stream, etcd compaction expiring a watch with `410`, and an owned control plane whose
//! apiserver is killed and restarted with its data.
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use testbed::controlplane::Options;
use testbed::harness::Cluster;

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

#[tokio::test]
async fn shared_cluster_is_one_control_plane_with_unique_names() {
    let a = Cluster::shared().await.unwrap();
    let b = Cluster::shared().await.unwrap();
    assert_eq!(a.url(), b.url(), "two handles, two control planes");
    let (n1, n2) = (a.unique("team-a"), a.unique("team-a"));
    assert_ne!(n1, n2);
    assert!(n1.starts_with("team-a-") && n1.len() <= 63, "{n1}");
    let long = a.unique(&"x".repeat(80));
    assert!(long.len() <= 63, "{long}");
    let ns = a.namespace("harness", &[("k", "v")]).await.unwrap();
    let got = Api::<Namespace>::all(b.client().await.unwrap())
        .get(&ns)
        .await
        .unwrap();
    assert_eq!(got.metadata.labels.unwrap()["k"], "v");
}

#[tokio::test]
async fn service_account_tokens_are_judged_by_rbac() {
    let c = Cluster::shared().await.unwrap();
    let ns = c.namespace("rbac", &[]).await.unwrap();
    let sa = c.service_account_client(&ns, "reader").await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(sa.clone(), &ns);
    match cms.list(&ListParams::default()).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 403, "{e:?}");
            assert!(
                e.message
                    .contains(&format!("system:serviceaccount:{ns}:reader")),
                "{}",
                e.message
            );
        }
        other => panic!("a ServiceAccount without a role listed ConfigMaps: {other:?}"),
    }
    let admin = c.client().await.unwrap();
    let rb: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
    }))
    .unwrap();
    Api::namespaced(admin, &ns)
        .create(&PostParams::default(), &rb)
        .await
        .unwrap();
    let mut allowed = false;
    for _ in 0..50 {
        if cms.list(&ListParams::default()).await.is_ok() {
            allowed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(allowed, "the RoleBinding did not grant the view role");
    assert!(
        cms.create(&PostParams::default(), &config_map("x"))
            .await
            .is_err(),
        "view can write"
    );
}

#[tokio::test]
async fn proxy_cuts_a_watch_mid_stream() {
    let c = Cluster::shared().await.unwrap();
    let ns = c.namespace("proxy", &[]).await.unwrap();
    let proxy = c.proxy().await.unwrap();
    let via: Api<ConfigMap> = Api::namespaced(c.client_via(&proxy).await.unwrap(), &ns);
    let direct: Api<ConfigMap> = Api::namespaced(c.client().await.unwrap(), &ns);
    let rv = via
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = via
        .watch(&WatchParams::default().timeout(290), &rv)
        .await
        .unwrap()
        .boxed();
    direct
        .create(&PostParams::default(), &config_map("one"))
        .await
        .unwrap();
    // (kube-controller-manager adds kube-root-ca.crt to every new namespace meanwhile.)
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = stream.next().await {
            if let Ok(WatchEvent::Added(cm)) = e
                && cm.metadata.name.as_deref() == Some("one")
            {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(seen, Ok(true)),
        "no ADDED event for `one` through the proxy: {seen:?}"
    );
    // The watch has sent nothing since its request: a quiet-connection cut takes it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        proxy.cut_quiet(Duration::from_millis(200)) >= 1,
        "no quiet connection to cut"
    );
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the watch survived the cut");
}

#[tokio::test]
async fn compaction_expires_a_watch_from_an_old_resource_version() {
    let c = Cluster::shared_with(Options {
        watch_cache: false,
        ..Options::default()
    })
    .await
    .unwrap();
    let ns = c.namespace("compact", &[]).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.client().await.unwrap(), &ns);
    let old = cms
        .create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();
    let old_rv = old.metadata.resource_version.unwrap();
    // Compacting at revision R keeps R itself: two writes after `a`, so the watch from `a`
    // would have to start below R.
    cms.create(&PostParams::default(), &config_map("b"))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &config_map("c"))
        .await
        .unwrap();
    let rev = c.compact().await.unwrap();
    assert!(rev > old_rv.parse::<i64>().unwrap());
    let mut stream = cms
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(WatchEvent::Error(e)))) => assert_eq!(e.code, 410, "{e:?}"),
        Ok(Some(Err(kube::Error::Api(e)))) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected 410 Expired for a compacted resourceVersion: {other:?}"),
    }
}

#[tokio::test]
async fn owned_apiserver_is_killed_and_restarted_with_its_data() {
    let c = Cluster::owned(Options::default()).await.unwrap();
    let cp = c.control_plane().expect("owned");
    let cms: Api<ConfigMap> = Api::namespaced(c.client().await.unwrap(), "default");
    cms.create(&PostParams::default(), &config_map("kept"))
        .await
        .unwrap();
    cp.kill_apiserver();
    let fresh: Api<ConfigMap> = Api::namespaced(c.client().await.unwrap(), "default");
    assert!(
        fresh.get("kept").await.is_err(),
        "the apiserver still answers after the kill"
    );
    cp.start_apiserver().await.unwrap();
    let again: Api<ConfigMap> = Api::namespaced(c.client().await.unwrap(), "default");
    assert_eq!(again.get("kept").await.unwrap().data.unwrap()["k"], "v");
    assert!(c.url().ends_with(&cp.apiserver_port().to_string()));
}
