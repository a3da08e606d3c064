//! The AIWorkspace reconciler: read the Azure ML workspace with the AIWorkspace's credential
//! (`plan::workspace` decides the status), save the status when it changed, and check again
//! every account resync. ModelDeployments use a workspace only while it is Ready; its deletion
//! is held (finalizer) while ModelDeployments use it.

use super::ml::workspace_id;
use super::{
    WORKSPACE_FINALIZER, add_finalizer, apply_status, lacks_finalizer, now_rfc3339, publish,
};
use crate::azure::ml::MlClient;
use crate::context::Context;
use crate::crd::AIWorkspace;
use crate::crd::ModelDeployment;
use crate::error::{Error, Result};
use crate::plan::status::set_condition;
use crate::plan::workspace::{WorkspaceObserved, decide_workspace};
use crate::reason::IN_USE;
use kube::api::Api;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use std::sync::Arc;

pub async fn reconcile(ws: Arc<AIWorkspace>, ctx: Arc<Context>) -> Result<Action> {
    let api: Api<AIWorkspace> = Api::all(ctx.client());
    // A new workspace's first pass adds the finalizer and goes on with the object it returns.
    let ws = if lacks_finalizer(ws.as_ref(), WORKSPACE_FINALIZER) {
        match add_finalizer(&api, ws.as_ref(), WORKSPACE_FINALIZER).await? {
            Some(w) => Arc::new(w),
            None => return Ok(Action::await_change()),
        }
    } else {
        ws
    };
    finalizer(&api, WORKSPACE_FINALIZER, ws, |ev| async {
        match ev {
            Finalizer::Apply(w) => check(&w, &ctx).await,
            Finalizer::Cleanup(w) => release(&w, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Deletion is held while ModelDeployments use the workspace: deleting it first would leave
/// their Azure endpoints (and the VMs they bill) behind with no resource to delete them.
async fn release(ws: &AIWorkspace, ctx: &Context) -> Result<Action> {
    let name = ws.name_any();
    let users: Vec<String> = Api::<ModelDeployment>::all(ctx.client())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|m| m.spec.workspace_name() == Some(name.as_str()))
        .map(|m| m.owner_id())
        .collect();
    if users.is_empty() {
        return Ok(Action::await_change());
    }
    let mut st = ws.status.clone().unwrap_or_default();
    let message = format!(
        "deletion waits for the ModelDeployments that use this workspace: {} — delete them first",
        users.join(", ")
    );
    set_condition(
        &mut st.conditions,
        "Ready",
        false,
        IN_USE,
        &message,
        ws.metadata.generation,
        &now_rfc3339(),
    );
    if Some(&st) != ws.status.as_ref() {
        let api: Api<AIWorkspace> = Api::all(ctx.client());
        apply_status(
            ctx,
            &api,
            ws,
            serde_json::to_value(&st).expect("status serializes"),
        )
        .await?;
    }
    Err(Error::DeletionInProgress {
        message,
        retry_in: ctx.config.timing.resync,
    })
}

async fn check(ws: &AIWorkspace, ctx: &Context) -> Result<Action> {
    let observed = match ctx.credential_of(ws.spec.credential.as_ref()).await {
        Err(Error::Config(m)) => WorkspaceObserved::CredentialError(m),
        Err(e) => return Err(e),
        Ok(cred) => {
            let ml = MlClient {
                arm: &ctx.azure.arm,
                discovery: String::new(),
            };
            let id = workspace_id(ws).resource_id();
            WorkspaceObserved::Azure(ml.get(&cred, "ml.workspaces.get", &id).await)
        }
    };
    let prev = ws.status.clone().unwrap_or_default();
    let out = decide_workspace(
        &prev,
        ws.metadata.generation.unwrap_or(0),
        observed,
        &now_rfc3339(),
    );
    let reference = ws.object_ref(&());
    for e in &out.events {
        publish(ctx, &reference, e).await;
    }
    if out.status != prev {
        let api: Api<AIWorkspace> = Api::all(ctx.client());
        apply_status(
            ctx,
            &api,
            ws,
            serde_json::to_value(&out.status).expect("status serializes"),
        )
        .await?;
    }
    if let Some(e) = out.retry {
        return Err(Error::Azure(e));
    }
    ctx.succeeded(&format!("AIWorkspace/{}", ws.name_any()));
    Ok(Action::requeue(ctx.config.timing.account_resync))
}

pub fn error_policy(ws: Arc<AIWorkspace>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failed("AIWorkspace", &err.metric_label());
    if let Error::DeletionInProgress { retry_in, .. } = err.inner() {
        return Action::requeue(*retry_in);
    }
    let key = format!("AIWorkspace/{}", ws.name_any());
    let n = ctx.failed(&key);
    let d = ctx.backoff(n, err.retry_after());
    tracing::warn!(workspace = %ws.name_any(), error = %err, retry_in = ?d, "AIWorkspace reconcile failed");
    Action::requeue(d)
}
