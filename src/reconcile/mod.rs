//! Controllers: wiring (watch streams with predicates, triggers between kinds, write-slot
//! hand-offs) and the helpers the reconcilers share (events, status by server-side apply).
//! Each reconcile is observe → decide → execute: `observe` gathers the snapshot, `crate::plan`
//! decides, `execute` carries the decision out.

pub mod account;
pub mod deployment;
pub mod execute;
pub mod ml;
pub mod observe;
pub mod workspace;

use crate::context::{Context, Wiring};
use crate::crd::{AIAccount, AIWorkspace, ModelDeployment};
use crate::plan::status::truncate;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Controller;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

pub const MD_FINALIZER: &str = "aoai.dev/deployment-cleanup";
pub const ACCOUNT_FINALIZER: &str = "aoai.dev/account-in-use";
pub const WORKSPACE_FINALIZER: &str = "aoai.dev/workspace-in-use";

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Add `name` to the object's finalizers and return the object as the API server now holds it,
/// so the same pass goes on with a fresh copy. `kube::runtime::finalizer` adds it with this same
/// guarded JSON patch (it fails rather than duplicate a finalizer another writer added meanwhile)
/// but drops the response and ends the pass, leaving the work to the next pass — after a watch
/// round trip and a fresh read: the wait between creation and the first Azure call (issue 11).
/// `None` when the object is gone.
pub async fn add_finalizer<K>(api: &Api<K>, obj: &K, name: &str) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let ops = match obj.meta().finalizers.as_deref() {
        None | Some([]) => serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [name]},
        ]),
        Some(have) => serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": have},
            {"op": "add", "path": "/metadata/finalizers/-", "value": name},
        ]),
    };
    let patch: json_patch::Patch = serde_json::from_value(ops).expect("a well-formed JSON patch");
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await
    {
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
        res => res.map(Some),
    }
}

/// Whether a reconcile must first add the finalizer (a live object without it).
pub fn lacks_finalizer<K: Resource>(obj: &K, name: &str) -> bool {
    obj.meta().deletion_timestamp.is_none() && !obj.finalizers().iter().any(|f| f == name)
}

/// Publish an event the policy asked for; failures are logged, never fatal.
pub async fn publish(ctx: &Context, reference: &ObjectReference, e: &crate::plan::EventSpec) {
    let ev = Event {
        type_: if e.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: e.reason.clone(),
        note: Some(truncate(&e.note, 1000)),
        action: e.action.into(),
        secondary: None,
    };
    // A Recorder per event, as kube-runtime intends: a long-lived one caches every event it
    // published for six minutes (to count repeats into a series), which at thousands of
    // resources is most of the operator's memory. Repeats are rare here: warnings are published
    // only when the reason changes.
    let recorder = Recorder::new(ctx.client(), ctx.kube.reporter.clone());
    if let Err(err) = recorder.publish(&ev, reference).await {
        tracing::warn!(error = %err, reason = %e.reason, "cannot publish event");
    }
}

/// Server-side apply of the whole status with the fixed field manager.
pub async fn apply_status<K>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    status: serde_json::Value,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(&ctx.config.field_manager).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

/// Save a ModelDeployment's whole status (server-side apply, fixed field manager).
pub async fn save_md_status(
    ctx: &Context,
    md: &ModelDeployment,
    status: &crate::crd::ModelDeploymentStatus,
) -> Result<(), kube::Error> {
    let ns = md.namespace().unwrap_or_default();
    let api: Api<ModelDeployment> = Api::namespaced(ctx.client(), &ns);
    apply_status(
        ctx,
        &api,
        md,
        serde_json::to_value(status).expect("status serializes"),
    )
    .await
}

/// Hash of what should trigger a reconcile of a resource (spec generation, deletion, other
/// controllers' finalizers, annotations) — status-only updates do not, nor does the operator's
/// own finalizer: the pass that adds it goes on (see [`add_finalizer`]), so the watch event of
/// that patch would only start a second pass that finds nothing to do.
fn trigger_hash<K: Resource>(obj: &K) -> Option<u64> {
    let m = obj.meta();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    m.generation.hash(&mut h);
    m.deletion_timestamp.is_some().hash(&mut h);
    for f in m.finalizers.iter().flatten() {
        if f != MD_FINALIZER && f != ACCOUNT_FINALIZER && f != WORKSPACE_FINALIZER {
            f.hash(&mut h);
        }
    }
    m.annotations.hash(&mut h);
    m.uid.hash(&mut h);
    Some(h.finish())
}

/// Trim a ModelDeployment to what the controller's cache needs: every reconcile reads the
/// object fresh, and the cache only serves the trigger hash and the AIAccount/Namespace
/// mappers (metadata and spec). Dropping managedFields, status and kubectl's last-applied copy
/// keeps the operator's memory small at thousands of resources.
pub fn slim_for_cache(md: &mut ModelDeployment) {
    md.metadata.managed_fields = None;
    md.status = None;
    if let Some(a) = md.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// What of an AIAccount matters to its ModelDeployments.
fn account_trigger_hash(a: &AIAccount) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    a.metadata.generation.hash(&mut h);
    a.metadata.deletion_timestamp.is_some().hash(&mut h);
    if let Some(s) = &a.status {
        crate::plan::status::ready_condition(&s.conditions)
            .map(|c| c.status.clone())
            .hash(&mut h);
        s.endpoint.hash(&mut h);
        s.key_vault_secret
            .as_ref()
            .map(|k| (&k.vault_uri, &k.name, &k.version))
            .hash(&mut h);
    }
    Some(h.finish())
}

/// What of an AIWorkspace matters to its ModelDeployments.
fn workspace_trigger_hash(w: &AIWorkspace) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    w.metadata.generation.hash(&mut h);
    w.metadata.deletion_timestamp.is_some().hash(&mut h);
    if let Some(s) = &w.status {
        crate::plan::status::ready_condition(&s.conditions)
            .map(|c| c.status.clone())
            .hash(&mut h);
        s.location.hash(&mut h);
    }
    Some(h.finish())
}

/// After a restart, give each account's write slot back to the deployment whose long-running
/// operation (persisted in status) is still running, before any reconcile can start a new write.
async fn prime_write_gate(ctx: &Context) {
    let mds = Api::<ModelDeployment>::all(ctx.client())
        .list(&Default::default())
        .await;
    let accounts = Api::<AIAccount>::all(ctx.client())
        .list(&Default::default())
        .await;
    let (Ok(mds), Ok(accounts)) = (mds, accounts) else {
        return;
    };
    for md in mds.items {
        if md
            .status
            .as_ref()
            .is_some_and(|s| s.pending_operation.is_some())
            && let Some(a) = accounts
                .items
                .iter()
                .find(|a| md.spec.account_name() == Some(a.name_any().as_str()))
        {
            ctx.writes
                .gate
                .resume_operation(&account::account_id(a).key(), &md.owner_id());
            tracing::info!(deployment = %md.owner_id(), "resuming a pending Azure operation");
        }
    }
}

/// Run both controllers until `shutdown` resolves.
pub async fn run_controllers(
    ctx: Arc<Context>,
    wiring: Wiring,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client();
    prime_write_gate(&ctx).await;
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let cfg = kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency);

    // ModelDeployments: triggered by spec/deletion changes, by requeues, and by relevant AIAccount changes.
    let md_api: Api<ModelDeployment> = Api::all(client.clone());
    let (md_reader, md_writer) = reflector::store();
    let md_stream = watcher(md_api, watcher::Config::default())
        .default_backoff()
        .modify(slim_for_cache)
        .reflect(md_writer)
        .applied_objects()
        .predicate_filter(trigger_hash::<ModelDeployment>, Default::default());
    let acct_stream = watcher(
        Api::<AIAccount>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|a: &mut AIAccount| a.metadata.managed_fields = None);
    // Reflected before the mapper runs: a ModelDeployment triggered by an account change reads
    // that change from `Context::account`.
    let acct_stream = acct_stream
        .reflect(wiring.accounts)
        .applied_objects()
        .predicate_filter(account_trigger_hash, Default::default());
    // Namespace label changes can allow/deny namespaces selected by an AIAccount's selector.
    let ns_stream = watcher(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(kube::runtime::predicates::labels, Default::default());
    // AIWorkspace changes (readiness, allowed namespaces, marketplace policy) reach their
    // ModelDeployments.
    let ws_stream = watcher(
        Api::<AIWorkspace>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(workspace_trigger_hash, Default::default());
    let ws_reader = md_reader.clone();
    let ns_reader = md_reader.clone();
    let reader = md_reader.clone();
    // A released write slot wakes the head of its queue at once.
    let wake = futures::stream::unfold(wiring.wake, |mut rx| async move {
        rx.recv().await.map(|owner| (owner, rx))
    })
    .filter_map(|owner| async move { crate::context::object_ref(&owner) });
    let md_controller = Controller::for_stream(md_stream, md_reader)
        .with_config(cfg.clone())
        .reconcile_on(wake)
        .watches_stream(acct_stream, move |acct: AIAccount| {
            let name = acct.name_any();
            reader
                .state()
                .into_iter()
                .filter(|md| md.spec.account_name() == Some(name.as_str()))
                .map(|md| ObjectRef::from_obj(&*md))
                .collect::<Vec<_>>()
        })
        .watches_stream(ws_stream, move |ws: AIWorkspace| {
            let name = ws.name_any();
            ws_reader
                .state()
                .into_iter()
                .filter(|md| md.spec.workspace_name() == Some(name.as_str()))
                .map(|md| ObjectRef::from_obj(&*md))
                .collect::<Vec<_>>()
        })
        .watches_stream(ns_stream, move |ns: Namespace| {
            let name = ns.name_any();
            ns_reader
                .state()
                .into_iter()
                .filter(|md| md.namespace().as_deref() == Some(name.as_str()))
                .map(|md| ObjectRef::from_obj(&*md))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(deployment::reconcile, deployment::error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "ModelDeployment reconcile error");
            }
        });

    let (acct_reader, acct_writer) = reflector::store();
    let acct_own_stream = watcher(
        Api::<AIAccount>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(acct_writer)
    .applied_objects()
    .predicate_filter(trigger_hash::<AIAccount>, Default::default());
    let (cfg2, shutdown2) = (cfg.clone(), shutdown.clone());
    let acct_controller = Controller::for_stream(acct_own_stream, acct_reader)
        .with_config(cfg)
        .graceful_shutdown_on(shutdown)
        .run(account::reconcile, account::error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "AIAccount reconcile error");
            }
        });
    let (ws_reader, ws_writer) = reflector::store();
    let ws_own_stream = watcher(
        Api::<AIWorkspace>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(ws_writer)
    .applied_objects()
    .predicate_filter(trigger_hash::<AIWorkspace>, Default::default());
    let ws_controller = Controller::for_stream(ws_own_stream, ws_reader)
        .with_config(cfg2)
        .graceful_shutdown_on(shutdown2)
        .run(workspace::reconcile, workspace::error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "AIWorkspace reconcile error");
            }
        });
    futures::join!(md_controller, acct_controller, ws_controller);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_our_finalizer_triggers_no_second_pass() {
        let md = |finalizers: serde_json::Value, generation: i64| -> ModelDeployment {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "aoai.dev/v1alpha1", "kind": "ModelDeployment",
                "metadata": {"name": "chat", "namespace": "team-a", "uid": "u1",
                             "generation": generation, "finalizers": finalizers},
                "spec": {"accountRef": {"name": "shared"}, "model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"}, "sku": {"name": "GlobalStandard", "capacity": 1}},
            }))
            .unwrap()
        };
        let new = trigger_hash(&md(serde_json::json!(null), 1));
        assert_eq!(new, trigger_hash(&md(serde_json::json!([MD_FINALIZER]), 1)));
        assert_ne!(
            new,
            trigger_hash(&md(serde_json::json!(["example.com/other"]), 1)),
            "another controller's finalizer is a change"
        );
        assert_ne!(
            new,
            trigger_hash(&md(serde_json::json!([MD_FINALIZER]), 2)),
            "a spec change is"
        );
    }

    #[test]
    fn the_cache_keeps_metadata_and_spec_only() {
        let mut md: ModelDeployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "aoai.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {
                "name": "chat", "namespace": "team-a", "generation": 3,
                "finalizers": [MD_FINALIZER],
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"a whole\": \"copy\"}",
                    "team": "search",
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {"accountRef": {"name": "shared"}, "model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"}, "sku": {"name": "GlobalStandard", "capacity": 1}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"}]},
        }))
        .unwrap();
        let spec = md.spec.clone();
        slim_for_cache(&mut md);
        assert!(md.status.is_none());
        assert!(md.metadata.managed_fields.is_none());
        let ann = md.metadata.annotations.clone().unwrap();
        assert_eq!(ann.len(), 1, "{ann:?}");
        assert_eq!(ann["team"], "search");
        assert_eq!(md.spec, spec);
        assert_eq!(md.metadata.generation, Some(3));
        assert_eq!(
            md.metadata.finalizers.as_deref(),
            Some(&[MD_FINALIZER.to_string()][..])
        );
    }
}
