//! ModelDeployment reconciler: gathers state (AIAccount, namespace policy, pending operation,
//! the Azure deployment), asks the planner for the next action and executes it. Writes go
//! through the per-account write gate; long-running operations are persisted in status and
//! polled on requeue (a worker never blocks on them); errors are classified into
//! transient (backoff, honouring Retry-After) and terminal (held until the spec/account changes).

use super::account::account_id;
use super::{MD_FINALIZER, apply_status, now_rfc3339, publish, ready_condition, set_condition};
use crate::azure::arm::{AccountId, Deployment, Poll, WriteOutcome};
use crate::azure::auth::TokenCredential;
use crate::context::Context;
use crate::crd::{
    AIAccount, LastError, ModelDeployment, ModelDeploymentStatus, PendingOperation, RateLimit,
    ResolvedModel,
};
use crate::error::{AzureError, Error, Result};
use crate::plan::{self, AccountFacts, Action as PlanAction, DeleteAction, Gate, PlanInput};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn reconcile(md: Arc<ModelDeployment>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let ns = md.namespace().unwrap_or_else(|| "default".into());
    let api: Api<ModelDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    // The controller's cache holds no status and can lag behind our own writes (e.g. a
    // just-persisted pending operation): decisions are made on a fresh read. Only adding the
    // finalizer to a new resource needs none (that patch checks the finalizers it replaces).
    let adds_finalizer = md.metadata.deletion_timestamp.is_none()
        && !md.finalizers().iter().any(|f| f == MD_FINALIZER);
    let md = if adds_finalizer {
        md
    } else {
        match api.get_opt(&md.name_any()).await? {
            Some(fresh) => Arc::new(fresh),
            None => return Ok(Action::await_change()),
        }
    };
    let res = finalizer(&api, MD_FINALIZER, md, |ev| async {
        match ev {
            Finalizer::Apply(md) => apply(md, &ctx).await,
            Finalizer::Cleanup(md) => cleanup(md, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.update_gate_metrics();
    ctx.metrics.reconciled("ModelDeployment", start.elapsed());
    res
}

pub fn error_policy(md: Arc<ModelDeployment>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failed("ModelDeployment", &err.metric_label());
    let t = &ctx.config.timing;
    if let Error::DeletionInProgress(_) = err.inner() {
        return Action::requeue(jitter(
            t.poll_interval
                .max(err.retry_after().unwrap_or_default())
                .min(t.max_poll_interval),
        ));
    }
    let key = key_of(&md);
    let n = ctx.failed(&key);
    let d = ctx.backoff(n, err.retry_after());
    tracing::warn!(deployment = %key, error = %err, retry_in = ?d, "ModelDeployment reconcile failed");
    Action::requeue(d)
}

fn key_of(md: &ModelDeployment) -> String {
    format!("ModelDeployment/{}", md.owner_id())
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.9..1.1))
}

/// Everything about one reconcile pass.
struct Pass<'a> {
    ctx: &'a Context,
    md: &'a ModelDeployment,
    api: Api<ModelDeployment>,
    reference: ObjectReference,
    old: ModelDeploymentStatus,
    st: ModelDeploymentStatus,
    generation: Option<i64>,
    owner: String,
    name: String,
}

impl<'a> Pass<'a> {
    fn new(md: &'a ModelDeployment, ctx: &'a Context) -> Self {
        let ns = md.namespace().unwrap_or_else(|| "default".into());
        let old = md.status.clone().unwrap_or_default();
        let mut st = old.clone();
        let generation = md.metadata.generation;
        let name = md.azure_deployment_name();
        st.deployment_name = Some(name.clone());
        Pass {
            ctx,
            md,
            api: Api::namespaced(ctx.client.clone(), &ns),
            reference: md.object_ref(&()),
            old,
            st,
            generation,
            owner: md.owner_id(),
            name,
        }
    }

    fn ready(&mut self, ok: bool, reason: &str, msg: &str) {
        self.st.observed_generation = self.generation;
        set_condition(
            &mut self.st.conditions,
            "Ready",
            ok,
            reason,
            msg,
            self.generation,
        );
    }

    async fn event(&self, warning: bool, reason: &str, action: &str, note: String) {
        publish(self.ctx, &self.reference, warning, reason, action, note).await;
    }

    /// Warning event only when the Ready reason changes (no event storms on requeues).
    async fn warn_on_change(&self, reason: &str, msg: &str) {
        let prev = ready_condition(&self.old.conditions).map(|c| c.reason.as_str());
        if prev != Some(reason) {
            self.event(true, reason, "Reconcile", msg.to_string()).await;
        }
    }

    async fn save(&self) -> Result<()> {
        if self.st != self.old {
            apply_status(
                self.ctx,
                &self.api,
                self.md,
                serde_json::to_value(&self.st).expect("status serializes"),
            )
            .await?;
        }
        Ok(())
    }

    fn observe(&mut self, d: &Deployment) {
        let p = d.props();
        self.st.azure_resource_id = d.id.clone();
        self.st.provisioning_state = p.provisioning_state.clone();
        self.st.model = p.model.as_ref().map(|m| ResolvedModel {
            format: m.format.clone(),
            name: m.name.clone(),
            version: m.version.clone(),
        });
        self.st.sku_name = d.sku.as_ref().map(|s| s.name.clone());
        self.st.capacity = p
            .current_capacity
            .or(d.sku.as_ref().and_then(|s| s.capacity));
        self.st.deployment_state = p.deployment_state.clone();
        self.st.rate_limits = p
            .rate_limits
            .unwrap_or_default()
            .into_iter()
            .map(|r| RateLimit {
                key: r.key,
                count: r.count,
                renewal_period: r.renewal_period,
            })
            .collect();
    }

    /// Handle an Azure error: transient → Err (backoff honouring Retry-After); terminal → hold.
    async fn azure_error(
        &mut self,
        e: AzureError,
        was_write: bool,
        account_gen: Option<i64>,
    ) -> Result<Action> {
        let t = &self.ctx.config.timing;
        if e.is_transient() {
            let reason = match e.status {
                429 => "AzureThrottled",
                409 => "WaitingForAzure",
                0 => "AzureUnreachable",
                _ => "AzureUnavailable",
            };
            let msg = format!("{e}; retrying with backoff");
            // 409 is Azure's "another operation is in progress": not an error for the user.
            if e.status != 409 {
                self.warn_on_change(reason, &msg).await;
            }
            self.ready(false, reason, &msg);
            self.save().await?;
            return Err(Error::Azure(e));
        }
        let what_to_do = match e.code.as_str() {
            "InsufficientQuota" => {
                " — lower spec.sku.capacity, free quota on the subscription, or request more quota"
            }
            "DeploymentModelNotSupported" | "InvalidResourceProperties" | "InvalidModel" => {
                " — check spec.model and spec.sku against the models available on the account"
            }
            "AuthorizationFailed" | "Forbidden" | "AuthenticationFailed" | "Unauthorized" => {
                " — grant the AIAccount's identity Cognitive Services Contributor on the account"
            }
            _ => "",
        };
        let msg = format!("{}{what_to_do}", e.message);
        self.warn_on_change(&e.code, &msg).await;
        if was_write {
            self.st.last_error = Some(LastError {
                code: e.code.clone(),
                message: e.message.clone(),
                generation: self.generation,
                account_generation: account_gen,
                at: now_rfc3339(),
            });
        }
        self.ready(false, &e.code, &msg);
        self.save().await?;
        Ok(Action::requeue(if was_write {
            t.terminal_recheck
        } else {
            t.resync
        }))
    }
}

/// Namespace policy and account readiness, from Kubernetes only.
async fn gather_facts(ctx: &Context, acct: Option<&AIAccount>, ns: &str) -> Result<AccountFacts> {
    let Some(a) = acct else {
        return Ok(AccountFacts::default());
    };
    let allowed = match &a.spec.allowed_namespaces {
        None => false,
        Some(allow) => {
            if allow.names.iter().any(|n| n == ns) {
                true
            } else if let Some(sel) = &allow.selector {
                match Selector::try_from(sel.clone()) {
                    Ok(selector) => {
                        let nsapi: Api<Namespace> = Api::all(ctx.client.clone());
                        match nsapi.get_opt(ns).await? {
                            Some(n) => selector.matches(&n.labels().clone()),
                            None => false,
                        }
                    }
                    Err(_) => false,
                }
            } else {
                false
            }
        }
    };
    let status = a.status.clone().unwrap_or_default();
    let ready = ready_condition(&status.conditions);
    Ok(AccountFacts {
        exists: true,
        deleting: a.metadata.deletion_timestamp.is_some(),
        namespace_allowed: allowed,
        ready: ready.is_some_and(|c| c.status == "True")
            && status.key_vault_secret.is_some()
            && status.endpoint.is_some(),
        ready_message: ready.map(|c| c.message.clone()).unwrap_or_default(),
    })
}

async fn apply(md: Arc<ModelDeployment>, ctx: &Context) -> Result<Action> {
    let t = ctx.config.timing.clone();
    let mut p = Pass::new(&md, ctx);
    let ns = md.namespace().unwrap_or_default();
    let acct = ctx.account(&md.spec.account_ref.name).await?;
    let facts = gather_facts(ctx, acct.as_deref(), &ns).await?;
    if let Gate::Blocked { reason, message } =
        plan::precheck(&md.spec.account_ref.name, &ns, &facts)
    {
        if let Some(a) = &acct {
            ctx.leave_slot_queue(&account_id(a).key(), &p.owner);
        }
        p.warn_on_change(reason, &message).await;
        p.ready(false, reason, &message);
        p.save().await?;
        return Ok(Action::requeue(t.resync));
    }
    let acct = acct.expect("precheck passed");
    let acct_status = acct.status.clone().unwrap_or_default();
    let account_gen = acct.metadata.generation;
    let id = account_id(&acct);
    let gate_key = id.key();
    p.st.endpoint = acct_status.endpoint.clone();
    p.st.key_vault_secret = acct_status.key_vault_secret.clone();

    let cred = match ctx.credential_for(&acct).await {
        Ok(c) => c,
        Err(e @ Error::Config(_)) => {
            let msg = e.to_string();
            p.warn_on_change("CredentialError", &msg).await;
            p.ready(false, "CredentialError", &msg);
            p.save().await?;
            return Ok(Action::requeue(t.resync));
        }
        Err(e) => return Err(e),
    };

    // 1. A long-running operation we started: poll it, never write again meanwhile.
    let mut settled = None;
    if let Some(op) = p.st.pending_operation.clone() {
        ctx.gate.claim(&gate_key, &p.owner);
        if let Some(wait) = ctx.polls.not_due(&p.owner) {
            return Ok(Action::requeue(wait));
        }
        match ctx
            .arm
            .poll(
                &cred,
                op.async_operation_url.as_deref(),
                op.location_url.as_deref(),
            )
            .await
        {
            Err(e) if e.is_transient() => return p.azure_error(e, false, account_gen).await,
            Err(e) => {
                // The operation cannot be polled any more (expired or unknown): the deployment's
                // own state, read next, tells what happened.
                tracing::warn!(deployment = %p.owner, error = %e, "dropping an unpollable Azure operation");
                p.st.pending_operation = None;
                ctx.operation_ended(&p.owner, false, p.generation);
                ctx.release_slot(&gate_key, &p.owner);
            }
            Ok(Poll::InProgress { retry_after }) => {
                let next = ctx.polls.in_progress(&p.owner, retry_after);
                let msg = format!(
                    "Azure is running the {} operation on deployment {}",
                    op.kind, p.name
                );
                p.ready(false, &progress_reason(&op.kind), &msg);
                p.save().await?;
                ctx.metrics
                    .operations_in_flight
                    .set(ctx.gate.busy_accounts() as i64);
                return Ok(Action::requeue(next));
            }
            Ok(Poll::Succeeded) => {
                // One event per write (when Azure accepts it, with the change); the Ready
                // condition tells when it finished.
                p.st.pending_operation = None;
                settled = ctx.operation_ended(&p.owner, true, p.generation);
                ctx.release_slot(&gate_key, &p.owner);
            }
            Ok(Poll::Failed { code, message }) => {
                p.st.pending_operation = None;
                ctx.operation_ended(&p.owner, false, p.generation);
                ctx.release_slot(&gate_key, &p.owner);
                // A failed operation is terminal unless its code says "try again".
                let status = if is_transient_code(&code) { 500 } else { 400 };
                let e = AzureError {
                    operation: format!("deployments.{}", op.kind),
                    status,
                    code,
                    message,
                    retry_after: None,
                };
                return p.azure_error(e, true, account_gen).await;
            }
        }
        ctx.metrics
            .operations_in_flight
            .set(ctx.gate.busy_accounts() as i64);
    }

    // 2. Queued behind another write on this account (same generation): no reads, wait for the hand-off.
    if ctx.gate.still_waiting(&gate_key, &p.owner) && p.old.observed_generation == p.generation {
        return wait_for_slot(&mut p, &t, &gate_key).await;
    }

    // 3. Observe: Azure's accepted state of the write that just succeeded for this generation,
    //    else a read.
    let observed = match settled {
        Some(d) => Some(d),
        None => match ctx.arm.get_deployment(&cred, &id, &p.name).await {
            Ok(o) => o,
            Err(e) => return p.azure_error(e, false, account_gen).await,
        },
    };

    // 4. Plan.
    let since =
        p.st.last_error
            .as_ref()
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e.at).ok())
            .map(|at| {
                chrono::Utc::now()
                    .signed_duration_since(at)
                    .to_std()
                    .unwrap_or_default()
            });
    let action = plan::next_action(&PlanInput {
        spec: &md.spec,
        owner: &p.owner,
        cluster: &ctx.config.cluster_name,
        observed: observed.as_ref(),
        generation: p.generation.unwrap_or(0),
        account_generation: account_gen.unwrap_or(0),
        last_error: p.st.last_error.as_ref(),
        since_last_error: since,
        terminal_recheck: t.terminal_recheck,
    });
    tracing::debug!(deployment = %p.owner, ?action, "planned");
    match &action {
        a if a.is_write() => {}
        // Azure is still provisioning something we may have started: keep the slot if we hold it.
        PlanAction::WaitForProvisioning(_) => ctx.leave_slot_queue(&gate_key, &p.owner),
        _ => ctx.release_slot(&gate_key, &p.owner),
    }
    if let Some(o) = &observed {
        p.observe(o);
    } else {
        p.st.provisioning_state = None;
    }

    // 5. Act.
    match action {
        PlanAction::InSync => {
            p.st.last_error = None;
            let o = observed.as_ref().expect("in sync means observed");
            let version = o.props().model.and_then(|m| m.version).unwrap_or_default();
            let msg = format!(
                "deployment {} serves {} {} ({} x{}) at {}",
                p.name,
                md.spec.model.name,
                version,
                md.spec.sku.name.as_str(),
                md.spec.sku.capacity,
                p.st.endpoint.clone().unwrap_or_default()
            );
            p.ready(true, "Ready", &msg);
            // Stamped only when something changed: an unchanged resync writes nothing to Kubernetes.
            if p.st != p.old || p.st.last_sync_time.is_none() {
                p.st.last_sync_time = Some(now_rfc3339());
            }
            write_config_map(ctx, &md, &p.st).await?;
            p.save().await?;
            ctx.succeeded(&key_of(&md));
            Ok(Action::requeue(jitter(t.resync)))
        }
        PlanAction::WaitForProvisioning(state) => {
            let msg = format!(
                "Azure reports provisioningState {state} for deployment {}; waiting",
                p.name
            );
            p.ready(false, "Provisioning", &msg);
            p.save().await?;
            Ok(Action::requeue(t.poll_interval))
        }
        PlanAction::Blocked { reason, message } => {
            p.warn_on_change(reason, &message).await;
            p.ready(false, reason, &message);
            p.save().await?;
            Ok(Action::requeue(t.resync))
        }
        PlanAction::HoldTerminal {
            code,
            message,
            recheck_in,
        } => {
            let msg = format!(
                "{message} — not retried until the spec or the AIAccount changes (recheck in {}s)",
                recheck_in.as_secs()
            );
            p.ready(false, &code, &msg);
            p.save().await?;
            Ok(Action::requeue(recheck_in))
        }
        PlanAction::Put {
            kind,
            body,
            changes,
        } => {
            // Pre-validated before queueing for the slot (once per generation, fresh for a
            // minute), so the hand-off to this write does not wait on those reads.
            let stamp = (p.generation, account_gen);
            if ctx.prevalidated.get(&p.owner) != Some(stamp) {
                if let Err(rej) = prevalidate(
                    ctx,
                    &cred,
                    &id,
                    &md,
                    acct_status.location.as_deref(),
                    observed.as_ref(),
                )
                .await
                {
                    ctx.release_slot(&gate_key, &p.owner);
                    let e = AzureError {
                        operation: "deployments.prevalidate".into(),
                        status: 400,
                        code: rej.code.into(),
                        message: rej.message,
                        retry_after: None,
                    };
                    return p.azure_error(e, true, account_gen).await;
                }
                ctx.prevalidated.put(&p.owner, stamp);
            }
            if !ctx.gate.try_acquire(&gate_key, &p.owner) {
                return wait_for_slot(&mut p, &t, &gate_key).await;
            }
            ctx.prevalidated.remove(&p.owner);
            let drift = kind != plan::WriteKind::Create
                && p.old.observed_generation == p.generation
                && ready_condition(&p.old.conditions).is_some_and(|c| c.status == "True");
            let drift_created = kind == plan::WriteKind::Create
                && p.old.azure_resource_id.is_some()
                && p.old.observed_generation == p.generation;
            if drift || drift_created {
                let note = if drift_created {
                    format!(
                        "Azure deployment {} was deleted outside the operator; re-creating it",
                        p.name
                    )
                } else {
                    format!(
                        "Azure deployment {} was changed outside the operator ({}); correcting it",
                        p.name,
                        changes.join(", ")
                    )
                };
                p.event(true, "DriftDetected", "Reconcile", note).await;
            }
            let res = ctx.arm.put_deployment(&cred, &id, &p.name, &body).await;
            // The subscription's usage moves with this write (or was not what was cached).
            if let Some(loc) = acct_status.location.as_deref() {
                ctx.usages_cache
                    .remove(&usages_key(&id.subscription_id, loc));
            }
            after_write(
                &mut p,
                &gate_key,
                kind.as_str(),
                changes.join(", "),
                res,
                account_gen,
            )
            .await
        }
        PlanAction::SetPaused(paused) => {
            if !ctx.gate.try_acquire(&gate_key, &p.owner) {
                return wait_for_slot(&mut p, &t, &gate_key).await;
            }
            let kind = if paused { "Pause" } else { "Resume" };
            let res = ctx.arm.set_paused(&cred, &id, &p.name, paused).await;
            after_write(
                &mut p,
                &gate_key,
                kind,
                format!(
                    "deploymentState -> {}",
                    if paused { "Paused" } else { "Running" }
                ),
                res,
                account_gen,
            )
            .await
        }
    }
}

/// Check a planned write against the account's models (cached) and the quota (read each time),
/// so Azure never sees a write it would reject. Read failures skip the check (Azure still enforces).
async fn prevalidate(
    ctx: &Context,
    cred: &TokenCredential,
    id: &AccountId,
    md: &ModelDeployment,
    location: Option<&str>,
    observed: Option<&Deployment>,
) -> std::result::Result<(), crate::prevalidate::Rejection> {
    let key = id.key();
    let models = match ctx.models_cache.get(&key) {
        Some(m) => m,
        None => match ctx.arm.list_account_models(cred, id).await {
            Ok(m) => {
                ctx.models_cache.put(&key, m.clone());
                m
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot list account models; skipping pre-validation");
                vec![]
            }
        },
    };
    let usage_name = crate::prevalidate::check_catalog(&md.spec, &models)?;
    let usage_name = usage_name.unwrap_or_else(|| {
        format!(
            "{}.{}.{}",
            md.spec.model.format,
            md.spec.sku.name.as_str(),
            md.spec.model.name
        )
    });
    if let Some(loc) = location {
        let usages_key = usages_key(&id.subscription_id, loc);
        let usages = match ctx.usages_cache.get(&usages_key) {
            Some(u) => Ok(u),
            None => ctx
                .arm
                .list_usages(cred, &id.subscription_id, loc)
                .await
                .inspect(|u| ctx.usages_cache.put(&usages_key, u.clone())),
        };
        match usages {
            Ok(usages) => {
                crate::prevalidate::check_quota(&md.spec, &usage_name, &usages, observed)?
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read usages; skipping the quota pre-check")
            }
        }
    }
    Ok(())
}

fn usages_key(subscription: &str, location: &str) -> String {
    format!(
        "{}|{}",
        subscription.to_ascii_lowercase(),
        location.to_ascii_lowercase()
    )
}

/// Operation failure codes that mean "retry later" rather than "fix the request".
pub fn is_transient_code(code: &str) -> bool {
    matches!(
        code.to_ascii_lowercase().as_str(),
        "internalservererror"
            | "internalerror"
            | "serviceunavailable"
            | "servererror"
            | "requestconflict"
            | "conflict"
            | "anotheroperationinprogress"
            | "operationtimedout"
            | "timeout"
            | "toomanyrequests"
            | "gatewaytimeout"
            | "canceled"
    )
}

fn progress_reason(kind: &str) -> String {
    match kind {
        "Create" => "Creating".into(),
        "Delete" => "Deleting".into(),
        "Pause" => "Pausing".into(),
        "Resume" => "Resuming".into(),
        _ => "Updating".into(),
    }
}

async fn wait_for_slot(
    p: &mut Pass<'_>,
    t: &crate::context::Timing,
    gate_key: &str,
) -> Result<Action> {
    let position = p.ctx.gate.position(gate_key, &p.owner).unwrap_or(0);
    // A holder whose ModelDeployment no longer exists (finalizer removed by hand) cannot release.
    // The head of the queue checks; the others wait behind it.
    if position == 0
        && let Some(holder) = p.ctx.gate.holder(gate_key)
        && let Some((ns, name)) = holder.split_once('/')
    {
        let api: Api<ModelDeployment> = Api::namespaced(p.ctx.client.clone(), ns);
        if api.get_opt(name).await?.is_none() {
            tracing::warn!(holder = %holder, "releasing the write slot of a deleted ModelDeployment");
            p.ctx.release_slot(gate_key, &holder);
            return Ok(Action::requeue(Duration::from_millis(10)));
        }
    }
    let msg = format!(
        "waiting for the account's write slot (Azure accepts one deployment write at a time per account); {} queued",
        p.ctx.gate.queue_depth()
    );
    if ready_condition(&p.st.conditions).map(|c| c.reason.as_str()) != Some("WaitingForAccount")
        || p.old.observed_generation != p.generation
    {
        p.ready(false, "WaitingForAccount", &msg);
        p.save().await?;
    }
    p.ctx.update_gate_metrics();
    // The hand-off wakes the next writer at once; this requeue is only the safety net against a
    // lost wake-up, spaced out further back in the queue so a long queue does not keep the
    // operator busy re-reading waiters (at most 10× write_slot_retry, within the gate's waiter TTL).
    let spread = 1 + (position as u32 / 25).min(9);
    Ok(Action::requeue(jitter(t.write_slot_retry * spread)))
}

async fn after_write(
    p: &mut Pass<'_>,
    gate_key: &str,
    kind: &str,
    changes: String,
    res: std::result::Result<WriteOutcome, AzureError>,
    account_gen: Option<i64>,
) -> Result<Action> {
    let ctx = p.ctx;
    match res {
        Err(e) => {
            ctx.release_slot(gate_key, &p.owner);
            if e.code == "DeploymentModelNotSupported" || e.code == "InvalidResourceProperties" {
                ctx.models_cache.remove(gate_key);
            }
            p.azure_error(e, true, account_gen).await
        }
        Ok(out) => {
            p.event(
                false,
                kind,
                kind,
                format!("Azure {kind} of deployment {}: {changes}", p.name),
            )
            .await;
            p.st.last_error = None;
            if let Some(d) = &out.deployment {
                p.observe(d);
            }
            if out.is_long_running() {
                // A PUT's response is the deployment as it will be; a pause/resume action's is not.
                let accepted = out
                    .deployment
                    .as_ref()
                    .filter(|_| !matches!(kind, "Pause" | "Resume"));
                ctx.operation_accepted(&p.owner, p.generation, accepted);
                p.st.pending_operation = Some(PendingOperation {
                    kind: kind.to_string(),
                    async_operation_url: out.async_operation_url.clone(),
                    location_url: if out.async_operation_url.is_none() {
                        out.location_url.clone()
                    } else {
                        None
                    },
                    started_at: now_rfc3339(),
                    generation: p.generation,
                });
                let msg = format!(
                    "Azure accepted the {kind} of deployment {} ({changes}); polling the operation",
                    p.name
                );
                p.ready(false, &progress_reason(kind), &msg);
                p.save().await?;
                ctx.metrics
                    .operations_in_flight
                    .set(ctx.gate.busy_accounts() as i64);
                let what = format!("{kind}/{}", p.md.spec.sku.name.as_str());
                Ok(Action::requeue(ctx.polls.started(
                    gate_key,
                    &what,
                    &p.owner,
                    out.retry_after,
                )))
            } else {
                ctx.release_slot(gate_key, &p.owner);
                let msg = format!(
                    "Azure applied the {kind} of deployment {}; verifying",
                    p.name
                );
                p.ready(false, &progress_reason(kind), &msg);
                p.save().await?;
                Ok(Action::requeue(Duration::from_millis(10)))
            }
        }
    }
}

/// Connection settings for apps (never the key).
async fn write_config_map(
    ctx: &Context,
    md: &ModelDeployment,
    st: &ModelDeploymentStatus,
) -> Result<()> {
    let Some(cm_name) = &md.spec.connection_config_map else {
        return Ok(());
    };
    let ns = md.namespace().unwrap_or_default();
    let kv = st.key_vault_secret.clone().unwrap_or_default();
    let vault = crate::azure::cloud::with_slash(&kv.vault_uri);
    let secret_uri = match &kv.version {
        Some(v) => format!("{vault}secrets/{}/{v}", kv.name),
        None => format!("{vault}secrets/{}", kv.name),
    };
    let data: std::collections::BTreeMap<String, String> = [
        (
            "AZURE_OPENAI_ENDPOINT",
            st.endpoint.clone().unwrap_or_default(),
        ),
        (
            "AZURE_OPENAI_DEPLOYMENT",
            st.deployment_name.clone().unwrap_or_default(),
        ),
        (
            "AZURE_OPENAI_API_VERSION",
            ctx.config.openai_api_version.clone(),
        ),
        ("AZURE_KEY_VAULT_URI", kv.vault_uri.clone()),
        ("AZURE_KEY_VAULT_SECRET_NAME", kv.name.clone()),
        ("AZURE_KEY_VAULT_SECRET_URI", secret_uri),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(existing) = api.get_opt(cm_name).await?
        && existing.data.as_ref() == Some(&data)
    {
        return Ok(());
    }
    let owner = md
        .controller_owner_ref(&())
        .expect("namespaced object has an owner ref");
    let cm = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cm_name,
            "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "aoai-operator"},
            "ownerReferences": [owner],
        },
        "data": data,
    });
    api.patch(
        cm_name,
        &PatchParams::apply(&ctx.config.field_manager).force(),
        &Patch::Apply(&cm),
    )
    .await?;
    Ok(())
}

async fn cleanup(md: Arc<ModelDeployment>, ctx: &Context) -> Result<Action> {
    let mut p = Pass::new(&md, ctx);
    let ns = md.namespace().unwrap_or_default();
    let accounts: Api<AIAccount> = Api::all(ctx.client.clone());
    let acct = accounts.get_opt(&md.spec.account_ref.name).await?;
    let release = |a: &AIAccount, who: &str| ctx.release_slot(&account_id(a).key(), who);
    if md.spec.deletion_policy == crate::crd::DeletionPolicy::Retain {
        if let Some(a) = &acct {
            release(a, &p.owner);
        }
        p.event(
            false,
            "Retained",
            "Delete",
            format!(
                "deletionPolicy Retain: Azure deployment {} is left in place",
                p.name
            ),
        )
        .await;
        return Ok(Action::await_change());
    }
    let facts = gather_facts(ctx, acct.as_ref(), &ns).await?;
    let Some(acct) = acct.filter(|_| facts.namespace_allowed) else {
        let why = if facts.exists {
            "the namespace is not allowed on the AIAccount"
        } else {
            "its AIAccount no longer exists"
        };
        p.event(
            true,
            "NotDeletedInAzure",
            "Delete",
            format!("Azure deployment {} was not deleted: {why}", p.name),
        )
        .await;
        return Ok(Action::await_change());
    };
    let id: AccountId = account_id(&acct);
    let gate_key = id.key();
    let cred: Arc<TokenCredential> = ctx.credential_for(&acct).await?;

    if let Some(op) = p.st.pending_operation.clone() {
        ctx.gate.claim(&gate_key, &p.owner);
        match ctx
            .arm
            .poll(
                &cred,
                op.async_operation_url.as_deref(),
                op.location_url.as_deref(),
            )
            .await
        {
            Err(e) if e.is_transient() => return Err(Error::Azure(e)),
            Err(e) => {
                tracing::warn!(deployment = %p.owner, error = %e, "dropping an unpollable Azure operation");
                p.st.pending_operation = None;
                ctx.operation_ended(&p.owner, false, p.generation);
                ctx.release_slot(&gate_key, &p.owner);
                p.save().await?;
            }
            Ok(Poll::InProgress { retry_after }) => {
                return Err(Error::DeletionInProgress(format!(
                    "waiting for Azure's {} operation (retry after {:?})",
                    op.kind, retry_after
                )));
            }
            Ok(Poll::Succeeded) | Ok(Poll::Failed { .. }) => {
                p.st.pending_operation = None;
                ctx.operation_ended(&p.owner, false, p.generation);
                ctx.release_slot(&gate_key, &p.owner);
                p.save().await?;
            }
        }
    }

    let observed = ctx
        .arm
        .get_deployment(&cred, &id, &p.name)
        .await
        .map_err(Error::Azure)?;
    match plan::deletion_action(
        md.spec.deletion_policy,
        observed.as_ref(),
        &p.owner,
        &ctx.config.cluster_name,
    ) {
        DeleteAction::Retain => Ok(Action::await_change()),
        DeleteAction::Gone => {
            ctx.release_slot(&gate_key, &p.owner);
            if p.old.azure_resource_id.is_some() {
                p.event(
                    false,
                    "Deleted",
                    "Delete",
                    format!("Azure deployment {} is deleted", p.name),
                )
                .await;
            }
            Ok(Action::await_change())
        }
        DeleteAction::LeaveNotOwned(why) => {
            ctx.release_slot(&gate_key, &p.owner);
            p.event(
                false,
                "LeftInPlace",
                "Delete",
                format!("Azure deployment {} is {why}; not deleted", p.name),
            )
            .await;
            Ok(Action::await_change())
        }
        DeleteAction::Wait(state) => Err(Error::DeletionInProgress(format!(
            "Azure reports provisioningState {state}"
        ))),
        DeleteAction::Delete => {
            if !ctx.gate.try_acquire(&gate_key, &p.owner) {
                return Err(Error::DeletionInProgress(
                    "waiting for the account's write slot".into(),
                ));
            }
            match ctx.arm.delete_deployment(&cred, &id, &p.name).await {
                Err(e) => {
                    ctx.release_slot(&gate_key, &p.owner);
                    if !e.is_transient() {
                        let msg = format!(
                            "{e} — fix the cause or set spec.deletionPolicy: Retain to delete the resource without touching Azure"
                        );
                        p.warn_on_change(&e.code, &msg).await;
                        p.ready(false, &e.code, &msg);
                        p.save().await?;
                    }
                    Err(Error::Azure(e))
                }
                Ok(out) => {
                    p.event(
                        false,
                        "Delete",
                        "Delete",
                        format!("Azure Delete of deployment {}", p.name),
                    )
                    .await;
                    if out.async_operation_url.is_some() || out.location_url.is_some() {
                        p.st.pending_operation = Some(PendingOperation {
                            kind: "Delete".into(),
                            async_operation_url: out.async_operation_url.clone(),
                            location_url: if out.async_operation_url.is_none() {
                                out.location_url.clone()
                            } else {
                                None
                            },
                            started_at: now_rfc3339(),
                            generation: p.generation,
                        });
                        p.ready(
                            false,
                            "Deleting",
                            &format!("Azure is deleting deployment {}", p.name),
                        );
                        p.save().await?;
                        Err(Error::DeletionInProgress(
                            "Azure accepted the delete".into(),
                        ))
                    } else {
                        ctx.release_slot(&gate_key, &p.owner);
                        // Verify on the next pass that it is gone.
                        Err(Error::DeletionInProgress("verifying the deletion".into()))
                    }
                }
            }
        }
    }
}
