//! WATCH semantics: replay from a resourceVersion, label selectors (leaving the selector
//! is DELETED, entering it ADDED), BOOKMARKs, `timeoutSeconds`, 410 Expired once the
//! history window has moved on (and on demand), `sendInitialEvents` with the
//! initial-events-end bookmark, and `drop_watches`.
mod kube_common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube_common::timeout;
use serde_json::json;
use testbed::kube::KubeEmulator;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn describe(e: &WatchEvent<ConfigMap>) -> String {
    match e {
        WatchEvent::Added(o) => format!("ADDED {}", o.name_any()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.name_any()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.name_any()),
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(s) => format!("ERROR {}", s.code),
    }
}

#[tokio::test]
async fn replay_from_resource_version() {
    let emu = KubeEmulator::new();
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client());
    let a = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let rv = a.resource_version().unwrap();
    api.create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    api.delete("b", &Default::default()).await.unwrap();
    let mut s = api
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut got = vec![];
    for _ in 0..3 {
        got.push(describe(&timeout(s.try_next()).await.unwrap().unwrap()));
    }
    assert_eq!(got, vec!["ADDED b", "MODIFIED a", "DELETED b"]);
    // Watching with resourceVersion "0" starts with the current state as ADDED.
    let mut s = api
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        describe(&timeout(s.try_next()).await.unwrap().unwrap()),
        "ADDED a"
    );
}

#[tokio::test]
async fn selector_transitions_are_added_and_deleted() {
    let emu = KubeEmulator::new();
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client());
    let start = api
        .create(&PostParams::default(), &cm("other", &[]))
        .await
        .unwrap()
        .resource_version()
        .unwrap();
    let mut s = api
        .watch(
            &WatchParams::default().labels("app=web").disable_bookmarks(),
            &start,
        )
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("x", &[("app", "db")]))
        .await
        .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    api.delete("x", &Default::default()).await.unwrap();
    let mut got = vec![];
    for _ in 0..3 {
        got.push(describe(&timeout(s.try_next()).await.unwrap().unwrap()));
    }
    assert_eq!(got, vec!["ADDED x", "MODIFIED x", "DELETED x"]);
    // Nothing else arrives (the final delete happened outside the selector).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), s.try_next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bookmarks_and_timeout_seconds() {
    let emu = KubeEmulator::new();
    emu.set_bookmark_interval(Duration::from_millis(100));
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client());
    let rv = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap()
        .resource_version()
        .unwrap();
    let mut s = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .boxed();
    let first = timeout(s.try_next()).await.unwrap().unwrap();
    assert_eq!(describe(&first), format!("BOOKMARK {rv}"));
    // The stream ends by itself after timeoutSeconds.
    let started = std::time::Instant::now();
    while let Some(ev) = timeout(s.try_next()).await.unwrap() {
        assert!(matches!(ev, WatchEvent::Bookmark(_)));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[tokio::test]
async fn expired_history_gives_410() {
    let emu = KubeEmulator::new();
    emu.set_watch_window(3);
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client());
    let old = api
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap()
        .resource_version()
        .unwrap();
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("n{i}"), &[]))
            .await
            .unwrap();
    }
    let mut s = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    match timeout(s.try_next()).await.unwrap().unwrap() {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message
                    .starts_with(&format!("too old resource version: {old}")),
                "{}",
                e.message
            );
        }
        other => panic!("expected 410, got {}", describe(&other)),
    }
    // Within the window it still replays.
    let recent = api
        .create(&PostParams::default(), &cm("z", &[]))
        .await
        .unwrap()
        .resource_version()
        .unwrap();
    api.create(&PostParams::default(), &cm("zz", &[]))
        .await
        .unwrap();
    let mut s = api
        .watch(&WatchParams::default().disable_bookmarks(), &recent)
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        describe(&timeout(s.try_next()).await.unwrap().unwrap()),
        "ADDED zz"
    );
    // expire_watch_history: every older version is now too old.
    emu.expire_watch_history();
    let mut s = api
        .watch(&WatchParams::default(), &recent)
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        describe(&timeout(s.try_next()).await.unwrap().unwrap()),
        "ERROR 410"
    );
}

#[tokio::test]
async fn send_initial_events_ends_with_bookmark() {
    let emu = KubeEmulator::new();
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client());
    api.create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap();
    let mut s = api
        .watch(&WatchParams::default().initial_events(), "")
        .await
        .unwrap()
        .boxed();
    let mut got = vec![];
    loop {
        let ev = timeout(s.try_next()).await.unwrap().unwrap();
        if let WatchEvent::Bookmark(b) = &ev {
            assert_eq!(
                b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(|s| s.as_str()),
                Some("true")
            );
            assert_eq!(
                b.metadata.resource_version,
                emu.resource_version().to_string()
            );
            break;
        }
        got.push(describe(&ev));
    }
    assert_eq!(got, vec!["ADDED a", "ADDED b"]);
    api.create(&PostParams::default(), &cm("c", &[]))
        .await
        .unwrap();
    loop {
        let ev = timeout(s.try_next()).await.unwrap().unwrap();
        if !matches!(ev, WatchEvent::Bookmark(_)) {
            assert_eq!(describe(&ev), "ADDED c");
            break;
        }
    }
}

#[tokio::test]
async fn drop_watches_ends_streams() {
    let emu = KubeEmulator::new();
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client());
    let rv = emu.resource_version().to_string();
    let mut s = api
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    tokio::time::sleep(Duration::from_millis(50)).await;
    emu.drop_watches();
    assert!(
        timeout(s.try_next()).await.unwrap().is_none(),
        "stream ended"
    );
}

#[tokio::test]
async fn metadata_watcher_gets_partial_objects() {
    let emu = KubeEmulator::new();
    let api: Api<ConfigMap> = Api::default_namespaced(emu.client());
    let mut c = cm("m", &[("k", "v")]);
    c.data = Some([("secret".to_string(), "payload".to_string())].into());
    api.create(&PostParams::default(), &c).await.unwrap();
    let metas: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::default_namespaced(emu.client());
    let mut s = kube::runtime::watcher(metas, kube::runtime::watcher::Config::default()).boxed();
    loop {
        match timeout(s.try_next()).await.unwrap().unwrap() {
            kube::runtime::watcher::Event::InitApply(m) => {
                assert_eq!(m.metadata.name.as_deref(), Some("m"));
                assert_eq!(m.metadata.labels.as_ref().unwrap()["k"], "v");
            }
            kube::runtime::watcher::Event::InitDone => break,
            _ => {}
        }
    }
    api.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"k": "w"}}})),
    )
    .await
    .unwrap();
    match timeout(s.try_next()).await.unwrap().unwrap() {
        kube::runtime::watcher::Event::Apply(m) => {
            assert_eq!(m.metadata.labels.as_ref().unwrap()["k"], "w")
        }
        other => panic!("unexpected {other:?}"),
    }
}
