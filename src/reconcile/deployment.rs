//! The ModelDeployment reconciler: the finalizer (added in the resource's first pass, which goes
//! on), then a pass of observe → decide → execute
//! (`observe::Pass`, `plan::decide` or `plan::delete::decide_delete`, `Pass::finish`), and the
//! error policy (backoff that honours Retry-After).

use super::execute::Mode;
use super::observe::Pass;
use super::{MD_FINALIZER, add_finalizer, lacks_finalizer};
use crate::context::Context;
use crate::crd::ModelDeployment;
use crate::error::{Error, Result};
use crate::plan::{self, Step};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A pass that has not settled after this many steps is a bug in the policy.
const MAX_STEPS: usize = 16;

pub async fn reconcile(md: Arc<ModelDeployment>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let ns = md.namespace().unwrap_or_else(|| "default".into());
    let api: Api<ModelDeployment> = Api::namespaced(ctx.client(), &ns);
    // The controller's cache holds no status and can lag behind our own writes (e.g. a
    // just-persisted pending operation): decisions are made on a fresh read — for a new
    // resource, the object the finalizer patch returns, so its first pass goes straight on.
    let fresh = if lacks_finalizer(md.as_ref(), MD_FINALIZER) {
        add_finalizer(&api, md.as_ref(), MD_FINALIZER).await?
    } else {
        api.get_opt(&md.name_any()).await?
    };
    let Some(md) = fresh.map(Arc::new) else {
        return Ok(Action::await_change());
    };
    let res = finalizer(&api, MD_FINALIZER, md, |ev| async {
        match ev {
            Finalizer::Apply(md) => run(&md, &ctx, Mode::Apply).await,
            Finalizer::Cleanup(md) => run(&md, &ctx, Mode::Delete).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.update_gate_metrics();
    ctx.metrics.reconciled("ModelDeployment", start.elapsed());
    res
}

/// One pass: decide, carry out, and decide again on what that changed, until it finishes.
pub async fn run(md: &ModelDeployment, ctx: &Context, mode: Mode) -> Result<Action> {
    if md.spec.method() != crate::crd::Method::Cognitive {
        return super::ml::run(md, ctx, mode).await;
    }
    let mut pass = Pass::start(ctx, md).await?;
    for _ in 0..MAX_STEPS {
        let step = match mode {
            Mode::Apply => plan::decide(&pass.snap),
            Mode::Delete => plan::delete::decide_delete(&pass.snap),
        };
        tracing::trace!(deployment = %pass.snap.md.owner, ?step, "decided");
        match step {
            Step::Observe(need) => pass.fetch(need).await?,
            Step::EndOperation(outcome) => pass.end_operation(outcome),
            Step::TakeSlot => pass.take_slot(),
            Step::EvictHolder(h) => pass.evict_holder(&h),
            Step::MarkPrevalidated => pass.mark_prevalidated(),
            Step::Write(w) => pass.write(w).await?,
            Step::Finish(f) => return pass.finish(f, mode).await,
        }
    }
    Err(Error::Unsettled(format!(
        "{} did not settle in {MAX_STEPS} steps",
        pass.snap.md.owner
    )))
}

pub fn error_policy(md: Arc<ModelDeployment>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failed("ModelDeployment", &err.metric_label());
    let t = &ctx.config.timing;
    if let Error::DeletionInProgress { retry_in, .. } = err.inner() {
        let d = (*retry_in)
            .max(Duration::from_millis(10))
            .min(t.max_poll_interval.max(t.resync));
        return Action::requeue(d.mul_f64(rand::random_range(0.95..1.05)));
    }
    let key = key_of(&md);
    let n = ctx.failed(&key);
    let d = ctx.backoff(n, err.retry_after());
    tracing::warn!(deployment = %key, error = %err, retry_in = ?d, "ModelDeployment reconcile failed");
    Action::requeue(d)
}

pub fn key_of(md: &ModelDeployment) -> String {
    format!("ModelDeployment/{}", md.owner_id())
}
