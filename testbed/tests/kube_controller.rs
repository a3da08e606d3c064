//! kube-runtime against the emulator, in-process: a `Controller` with the `finalizer()`
//! helper, status by server-side apply, `Recorder` events, relist after a forced 410;
//! and a `watcher` that sees every change exactly once and in order.
mod kube_common;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use kube_common::*;
use serde_json::json;
use testbed::kube::KubeEmulator;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

struct Ctx {
    api: Api<Widget>,
    recorder: Recorder,
    log: Mutex<Vec<String>>,
}

async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, Failure> {
    let api = ctx.api.clone();
    finalizer(&api, "example.com/cleanup", w, |ev| async {
        match ev {
            FinalizerEvent::Apply(w) => {
                let generation = w.metadata.generation.unwrap_or(0);
                let status = json!({
                    "apiVersion": "example.com/v1", "kind": "Widget",
                    "status": {"phase": "Ready", "observedGeneration": generation}
                });
                ctx.api
                    .patch_status(
                        &w.name_any(),
                        &PatchParams::apply("widget-ctl").force(),
                        &Patch::Apply(status),
                    )
                    .await
                    .map_err(|e| Failure(e.to_string()))?;
                ctx.recorder
                    .publish(
                        &Event {
                            type_: EventType::Normal,
                            reason: "Reconciled".into(),
                            note: Some(format!("generation {generation}")),
                            action: "Reconcile".into(),
                            secondary: None,
                        },
                        &w.object_ref(&()),
                    )
                    .await
                    .map_err(|e| Failure(e.to_string()))?;
                ctx.log.lock().await.push(format!("apply {}", generation));
                Ok::<_, Failure>(Action::await_change())
            }
            FinalizerEvent::Cleanup(w) => {
                ctx.log
                    .lock()
                    .await
                    .push(format!("cleanup {}", w.name_any()));
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e: kube::runtime::finalizer::Error<Failure>| Failure(e.to_string()))
}

fn error_policy(_: Arc<Widget>, _: &Failure, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn controller_finalizer_status_events_and_relist_after_410() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::default_namespaced(client.clone());
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        recorder: Recorder::new(client.clone(), "widget-ctl".into()),
        log: Mutex::new(vec![]),
    });
    let ctl = Controller::new(api.clone(), watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let handle = tokio::spawn(ctl);

    api.create(
        &PostParams::default(),
        &Widget::new(
            "w1",
            WidgetSpec {
                size: 1,
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    eventually("finalizer added and status Ready", || async {
        let w = api.get("w1").await.unwrap();
        w.finalizers().contains(&"example.com/cleanup".to_string())
            && w.status.as_ref().and_then(|s| s.phase.clone()).as_deref() == Some("Ready")
            && w.status.as_ref().and_then(|s| s.observed_generation) == Some(1)
    })
    .await;
    let w = api.get("w1").await.unwrap();
    let mf = w.metadata.managed_fields.clone().unwrap();
    assert!(
        mf.iter().any(|m| m.manager.as_deref() == Some("widget-ctl")
            && m.operation.as_deref() == Some("Apply")
            && m.subresource.as_deref() == Some("status")),
        "status owned by the SSA manager: {mf:?}"
    );
    // Recorder events, visible in both the events.k8s.io/v1 and the core/v1 views.
    eventually("event recorded", || async {
        let evs: Api<NewEvent> = Api::default_namespaced(client.clone());
        evs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("Reconciled")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("w1")
            })
    })
    .await;
    let core: Api<CoreEvent> = Api::default_namespaced(client.clone());
    let ce = core.list(&ListParams::default()).await.unwrap();
    assert!(
        ce.items
            .iter()
            .any(|e| e.involved_object.name.as_deref() == Some("w1")
                && e.message.as_deref() == Some("generation 1"))
    );

    // Force a relist: history expired and all watches dropped; the controller re-lists and
    // still sees the next change.
    emu.expire_watch_history();
    emu.drop_watches();
    api.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .unwrap();
    eventually("observedGeneration 2 after relist", || async {
        api.get("w1")
            .await
            .unwrap()
            .status
            .and_then(|s| s.observed_generation)
            == Some(2)
    })
    .await;

    // Deletion runs the cleanup branch, then the finalizer is removed and the object goes.
    api.delete("w1", &DeleteParams::default()).await.unwrap();
    eventually("object gone after cleanup", || async {
        api.get_opt("w1").await.unwrap().is_none()
    })
    .await;
    assert!(ctx.log.lock().await.contains(&"cleanup w1".to_string()));
    handle.abort();
}

#[tokio::test]
async fn watcher_sees_every_change_exactly_once_in_order() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::default_namespaced(client.clone());
    api.create(
        &PostParams::default(),
        &Widget::new(
            "seq",
            WidgetSpec {
                size: 1,
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    // Initial list: InitApply(size 1), then InitDone.
    let mut seen: Vec<i64> = vec![];
    loop {
        match timeout(stream.try_next()).await.unwrap().unwrap() {
            watcher::Event::InitApply(w) => seen.push(w.spec.size),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, vec![1]);
    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            for size in 2..=10 {
                api.patch(
                    "seq",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"size": size}})),
                )
                .await
                .unwrap();
            }
            api.delete("seq", &DeleteParams::default()).await.unwrap();
        })
    };
    let mut applied = vec![];
    loop {
        match timeout(stream.try_next()).await.unwrap().unwrap() {
            watcher::Event::Apply(w) => applied.push(w.spec.size),
            watcher::Event::Delete(w) => {
                assert_eq!(w.spec.size, 10);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    writer.await.unwrap();
    assert_eq!(
        applied,
        (2..=10).collect::<Vec<_>>(),
        "every change once, in order"
    );
}

#[tokio::test]
async fn streaming_list_watcher_uses_send_initial_events() {
    let emu = KubeEmulator::new();
    let client = emu.client();
    install_widget_crd(&client).await;
    let api: Api<Widget> = Api::default_namespaced(client.clone());
    for i in 0..3 {
        api.create(
            &PostParams::default(),
            &Widget::new(
                &format!("s{i}"),
                WidgetSpec {
                    size: 1,
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    }
    let cfg = watcher::Config::default().streaming_lists();
    let mut stream = watcher::watcher(api.clone(), cfg).boxed();
    let mut names = vec![];
    loop {
        match timeout(stream.try_next()).await.unwrap().unwrap() {
            watcher::Event::InitApply(w) => names.push(w.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    names.sort();
    assert_eq!(names, vec!["s0", "s1", "s2"]);
    api.create(
        &PostParams::default(),
        &Widget::new(
            "s3",
            WidgetSpec {
                size: 1,
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    match timeout(stream.try_next()).await.unwrap().unwrap() {
        watcher::Event::Apply(w) => assert_eq!(w.name_any(), "s3"),
        other => panic!("unexpected {other:?}"),
    }
}
