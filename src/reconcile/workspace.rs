//! The AIWorkspace reconciler: read the Azure ML workspace with the AIWorkspace's credential
//! (`plan::workspace` decides the status), save the status when it changed, and check again
//! every account resync. ModelDeployments use a workspace only while it is Ready.

use super::ml::workspace_id;
use super::{apply_status, now_rfc3339, publish};
use crate::azure::ml::MlClient;
use crate::context::Context;
use crate::crd::AIWorkspace;
use crate::error::{Error, Result};
use crate::plan::workspace::{WorkspaceObserved, decide_workspace};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::sync::Arc;

pub async fn reconcile(ws: Arc<AIWorkspace>, ctx: Arc<Context>) -> Result<Action> {
    if ws.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let observed = match ctx.credential_of(ws.spec.credential.as_ref()).await {
        Err(Error::Config(m)) => WorkspaceObserved::CredentialError(m),
        Err(e) => return Err(e),
        Ok(cred) => {
            let ml = MlClient {
                arm: &ctx.azure.arm,
                discovery: String::new(),
            };
            let id = workspace_id(&ws).resource_id();
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
        publish(&ctx, &reference, e).await;
    }
    if out.status != prev {
        let api: Api<AIWorkspace> = Api::all(ctx.client());
        apply_status(
            &ctx,
            &api,
            ws.as_ref(),
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
    let key = format!("AIWorkspace/{}", ws.name_any());
    let n = ctx.failed(&key);
    let d = ctx.backoff(n, err.retry_after());
    tracing::warn!(workspace = %ws.name_any(), error = %err, retry_in = ?d, "AIWorkspace reconcile failed");
    Action::requeue(d)
}
