//! Long-running operations of the ML resource provider: an operation per write (its end time
//! from `provisioning_delay`, its failure from the shared `fail_next` queue), the headers Azure
//! sends (`Azure-AsyncOperation` on PUT; `Location` + `Azure-AsyncOperation` on PATCH, DELETE and
//! key regeneration; `Retry-After`; `x-ms-async-operation-timeout`), and the
//! `mfeOperationsStatus` / `mfeOperationResults` polling URLs.
use std::time::Instant;

use chrono::Utc;
use serde_json::json;

use super::errors::{arm_error, rp_error};
use super::routes::Ctx;
use super::state::{MlWorld, Operation, Target};
use crate::azure::server::{Resp, empty_response, json_response, with_header};
use crate::azure::world::{normalize_location, timestamp};

/// How the client follows an operation.
pub(crate) enum Poll {
    /// A PUT: `Azure-AsyncOperation`, then the resource's own URL.
    AsyncOperation,
    /// A PATCH, DELETE or action: `Location` (final state) and `Azure-AsyncOperation`.
    Location,
}

/// Starts an operation on `target` and answers with `resp` and the polling headers of `poll`.
pub(crate) fn begin(
    ctx: &Ctx,
    w: &mut MlWorld,
    sub: &str,
    location: &str,
    target: Target,
    poll: Poll,
    resp: Resp,
) -> Resp {
    let id = start(ctx, w, sub, location, target);
    match poll {
        Poll::AsyncOperation => async_operation(ctx, resp, sub, location, &id),
        Poll::Location => location_headers(ctx, resp, sub, location, &id),
    }
}

/// Starts an operation on `target`; returns its id.
fn start(ctx: &Ctx, w: &mut MlWorld, sub: &str, location: &str, target: Target) -> String {
    let delay = ctx.inner.config.lock().provisioning_delay;
    let failure = ctx.inner.world.lock().fail_next.pop_front();
    let id = uuid::Uuid::new_v4().to_string();
    w.pending.insert(id.clone());
    w.operations.insert(
        id.clone(),
        Operation {
            id: id.clone(),
            subscription: sub.to_string(),
            location: location.to_string(),
            target,
            started: Utc::now(),
            done_at: Instant::now() + delay,
            failure,
            finished: None,
        },
    );
    id
}

fn urls(ctx: &Ctx, sub: &str, location: &str, id: &str) -> (String, String) {
    let base = format!(
        "{}subscriptions/{sub}/providers/Microsoft.MachineLearningServices/locations/{}",
        ctx.inner.main_url(),
        normalize_location(location)
    );
    let v = &ctx.api_version;
    (
        format!("{base}/mfeOperationsStatus/{id}?api-version={v}"),
        format!("{base}/mfeOperationResults/{id}?api-version={v}"),
    )
}

fn retry_after(ctx: &Ctx, resp: Resp) -> Resp {
    let secs = ctx.inner.config.lock().lro_retry_after_secs;
    with_header(resp, "retry-after", &secs.to_string())
}

/// A PUT's answer: `Azure-AsyncOperation` (the client polls it, then GETs the resource).
fn async_operation(ctx: &Ctx, resp: Resp, sub: &str, location: &str, id: &str) -> Resp {
    let (status, _) = urls(ctx, sub, location, id);
    let resp = with_header(resp, "azure-asyncoperation", &status);
    let resp = with_header(resp, "x-ms-async-operation-timeout", "PT1H");
    retry_after(ctx, resp)
}

/// A PATCH / DELETE / action answer: `Location` (final state) and `Azure-AsyncOperation`.
fn location_headers(ctx: &Ctx, resp: Resp, sub: &str, location: &str, id: &str) -> Resp {
    let (_, result) = urls(ctx, sub, location, id);
    let resp = with_header(resp, "location", &result);
    async_operation(ctx, resp, sub, location, id)
}

fn find(ctx: &Ctx, id: &str) -> Result<Operation, Resp> {
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    w.operations.get(id).cloned().ok_or_else(|| {
        arm_error(
            404,
            "OperationNotFound",
            &format!("The operation '{id}' could not be found."),
        )
    })
}

/// `GET .../mfeOperationsStatus/{id}`.
pub(crate) fn status(ctx: &Ctx, id: &str) -> Resp {
    let op = match find(ctx, id) {
        Ok(op) => op,
        Err(r) => return r,
    };
    let mut body = json!({
        "id": format!("/subscriptions/{}/providers/Microsoft.MachineLearningServices/locations/{}/mfeOperationsStatus/{}", op.subscription, normalize_location(&op.location), op.id),
        "name": op.id,
        "status": op.status(),
        "startTime": timestamp(op.started),
    });
    if let Some(end) = op.finished {
        body["endTime"] = json!(timestamp(end));
        body["percentComplete"] = json!(100);
        if let Some((code, message)) = &op.failure {
            body["error"] = json!({"code": code, "message": message});
        }
        return json_response(200, body);
    }
    retry_after(ctx, json_response(200, body))
}

/// `GET .../mfeOperationResults/{id}`: 202 while running, then the final state (the resource
/// after a PATCH, nothing after a delete), or the failure.
pub(crate) fn result(ctx: &Ctx, id: &str) -> Resp {
    let op = match find(ctx, id) {
        Ok(op) => op,
        Err(r) => return r,
    };
    if op.finished.is_none() {
        let (_, result) = urls(ctx, &op.subscription, &op.location, &op.id);
        return retry_after(ctx, with_header(empty_response(202), "location", &result));
    }
    if let Some((code, message)) = &op.failure {
        return rp_error(400, code, code, message);
    }
    let w = ctx.inner.ml.world.lock();
    let body = match &op.target {
        Target::Endpoint { key, delete: false } => w.endpoints.get(key).map(|e| e.body.clone()),
        Target::Deployment {
            endpoint,
            name,
            delete: false,
        } => w
            .endpoints
            .get(endpoint)
            .and_then(|e| e.deployments.get(name))
            .map(|d| d.body.clone()),
        Target::Serverless { key, delete: false } => w.serverless.get(key).map(|s| s.body.clone()),
        Target::Marketplace { key, delete: false } => {
            w.subscriptions.get(key).map(|s| s.body.clone())
        }
        _ => None,
    };
    match body {
        Some(b) => json_response(200, b),
        None => empty_response(204),
    }
}
