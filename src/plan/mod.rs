//! The operator's whole policy, pure. A reconcile is `observe` → `decide` → `execute`:
//! `reconcile::observe` gathers a [`Snapshot`] (the resource, the account facts, the pending
//! operation, the write slot, what Azure holds, the pre-validation inputs), [`decide`] makes
//! every decision and returns one [`Step`], and `reconcile::execute` carries it out. A step
//! that gathers more ([`Step::Observe`]) or changes something the next decision depends on
//! (ending an operation, taking the slot, sending a write) is recorded in the snapshot and
//! `decide` runs again, until it returns [`Step::Finish`]: the status to have, the events, the
//! effects and when to look again.
//!
//! In order, for a ModelDeployment:
//! 1. the account gate, from Kubernetes alone (no Azure call for a missing account, a namespace
//!    that is not allowed, an account being deleted or not ready), then the credential;
//! 2. a pending long-running operation goes first: poll it when due, never write meanwhile;
//!    once it ends, Azure's accepted deployment is the state (no read-back);
//! 3. a write queued behind another one on the account, for the same generation, waits for the
//!    hand-off without reading anything;
//! 4. what Azure holds comes from the account's shared listing (one paged LIST per account per
//!    resync), never older than the resync interval;
//! 5. what must change (`action::next_action`): nothing, a refusal (ownership), a wait, a held
//!    terminal error, or a write;
//! 6. a write is pre-validated once per generation (the catalog's models, SKUs and capacity rules,
//!    then quota), takes the account's write slot, reads its target fresh (ARM has no
//!    precondition for a create, and a PUT must start from Azure's whole body), is decided again
//!    on that fresh state, and is sent; its outcome is classified (accepted, transient, terminal).
//!
//! Deletion ([`delete`]) and the AIAccount ([`account`]) follow the same shape.

pub mod account;
pub mod action;
pub mod body;
pub mod catalog;
pub mod delete;
pub mod ml;
pub mod status;
pub mod verify;
pub mod workspace;

#[cfg(test)]
mod decide_tests;
#[cfg(test)]
mod tests;

pub use action::{AccountFacts, Action, DeleteAction, Gate, Ownership, PlanInput};
pub use body::{CLUSTER_TAG, OWNER_TAG};
pub use status::EventSpec;

use crate::azure::arm::{AccountModel, Deployment, Poll, Usage, WriteOutcome};
use crate::azure::inventory::{Busy, Seen};
use crate::context::Timing;
use crate::crd::{
    CognitiveSpec, KeyVaultSecretRef, LastError, ModelDeploymentStatus, OperationKind,
    PendingOperation,
};
use crate::error::{AzureError, ErrorClass};
use crate::reason;
use catalog::Rejection;
use std::sync::Arc;
use std::time::Duration;

// ------------------------------------------------------------------ the snapshot

/// The ModelDeployment as read from Kubernetes.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// `<namespace>/<name>`: the owner tag and the write slot's holder name.
    pub owner: String,
    pub namespace: String,
    /// The Azure deployment name.
    pub deployment_name: String,
    pub spec: CognitiveSpec,
    pub generation: i64,
    /// The status as stored.
    pub status: ModelDeploymentStatus,
}

/// The AIAccount, as far as its ModelDeployments are concerned.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AccountInfo {
    pub facts: AccountFacts,
    pub generation: i64,
    pub endpoint: Option<String>,
    pub key_vault_secret: Option<KeyVaultSecretRef>,
    pub location: Option<String>,
}

/// The pending long-running operation (from status), through this pass.
#[derive(Clone, Debug, PartialEq)]
pub enum OpState {
    /// None in status (or it ended earlier in this pass and was dealt with).
    Idle,
    /// In status, not polled in this pass; `due_in` when its next poll is not due yet.
    Pending {
        op: PendingOperation,
        due_in: Option<Duration>,
    },
    /// Polled in this pass; `next_poll` is when to poll again if it still runs; `accepted` is
    /// the deployment as Azure accepted the write, now provisioned, when the operator remembers
    /// it and it was for the current generation.
    Polled {
        op: PendingOperation,
        result: Result<Poll, AzureError>,
        next_poll: Duration,
        accepted: Option<Deployment>,
    },
    /// Ended in this pass (its slot hold became this pass's). `op` is None when the write
    /// slot said an operation of ours was running but the status had lost it.
    Ended {
        op: Option<PendingOperation>,
        outcome: OpOutcome,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum OpOutcome {
    /// Succeeded; Azure's accepted deployment when it was for the current generation.
    Succeeded {
        accepted: Option<Deployment>,
    },
    Failed(AzureError),
    /// Cannot be polled any more (expired, unknown): the deployment's own state tells.
    Lost(AzureError),
}

/// The account's write slot as this pass sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Slot {
    Free,
    /// This pass holds it.
    Taken,
    /// This owner's running operation holds it.
    HeldByMyOperation,
    /// Someone else holds it or is ahead; `position` in the queue when queued.
    Busy {
        holder: Option<String>,
        position: Option<usize>,
    },
}

/// What Azure holds of the deployment.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    Unknown,
    /// From the account's listing.
    Listed(Seen),
    ListFailed(AzureError),
    /// Read fresh in this pass (with Azure's whole body).
    Fresh(Option<Deployment>),
    FreshFailed(AzureError),
}

/// Operations on the account's other deployments, from its listing: Azure takes one write at a
/// time per account, and an operation the operator does not follow (started outside it, or
/// accepted just before a restart and never recorded) must end before the operator writes.
#[derive(Clone, Debug, PartialEq)]
pub enum AccountActivity {
    /// The account was never listed.
    Unknown,
    Listed {
        busy: Option<Busy>,
        age: Duration,
        /// Listed (or found young enough) in this pass.
        refreshed: bool,
    },
    Failed(AzureError),
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Prevalidation {
    /// This generation passed before (the check is not repeated on the hand-off).
    pub passed: bool,
    pub catalog: Option<Result<Arc<Vec<AccountModel>>, AzureError>>,
    pub usages: Option<Result<Arc<Vec<Usage>>, AzureError>>,
}

/// Everything `decide` looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub md: Resource,
    /// None: no such AIAccount.
    pub account: Option<AccountInfo>,
    /// The credential cannot be built (what is wrong, and what to do).
    pub credential_error: Option<String>,
    pub op: OpState,
    pub slot: Slot,
    /// Whether the slot's holder still exists (asked only by the head of the queue).
    pub holder_exists: Option<bool>,
    pub observed: Observed,
    /// Operations on the account's other deployments.
    pub activity: AccountActivity,
    pub prevalidation: Prevalidation,
    /// The write sent in this pass, and Azure's answer.
    pub write: Option<Result<WriteOutcome, AzureError>>,
    pub cluster: String,
    pub timing: Timing,
    /// Now (RFC 3339), for condition transition times and error stamps.
    pub now: String,
    /// Time since `status.lastError.at` (None when unknown).
    pub since_last_error: Option<Duration>,
}

// ------------------------------------------------------------------ the steps

#[derive(Clone, Debug, PartialEq)]
pub enum Need {
    /// Poll the pending operation.
    Poll,
    /// The account's listing (urgent when the account was never listed).
    Listing { urgent: bool },
    /// GET the deployment now.
    Fresh,
    /// The account's model catalog.
    Catalog,
    /// The subscription's quota usage in the account's region.
    Usages,
    /// Whether the slot's holder still exists.
    HolderExists(String),
    /// The account's listing no older than `max_age`, for what runs on the account (and, unless
    /// read fresh, for the deployment itself).
    Activity { max_age: Duration },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Put(serde_json::Value),
    Pause,
    Resume,
    Delete,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub kind: OperationKind,
    pub request: Request,
    /// What changes, for the event and the condition message.
    pub changes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Azure accepted a long-running write: the slot stays taken until it ends; its polls are
    /// timed by the poll clock (`what`: its kind and SKU).
    HandSlotToOperation {
        what: String,
        accepted: Option<Deployment>,
    },
    /// No write is wanted any more: leave the account's queue.
    LeaveQueue,
    /// Write the connection ConfigMap (if the spec names one).
    ConfigMap,
    /// Azure rejected the model/SKU: the cached catalog may be stale.
    ForgetCatalog,
    /// Record what Azure now holds in the account's listing (None: gone).
    Record(Option<Deployment>),
    /// Forget pre-validation (a write was sent, or the spec moved on).
    ForgetPrevalidation,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Then {
    Requeue(Duration),
    /// The drift resync, jittered.
    Resync,
    /// When the poll clock says the new operation is first due (at least Retry-After).
    FirstPoll {
        retry_after: Option<Duration>,
    },
    /// Transient failure: back off (honouring Retry-After) and retry.
    Retry(AzureError),
    /// (Deletion) done: the finalizer may go.
    Released,
    /// (Deletion) not done yet.
    DeletionWait(Duration),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finish {
    pub status: ModelDeploymentStatus,
    pub events: Vec<EventSpec>,
    pub effects: Vec<Effect>,
    pub then: Then,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Observe(Need),
    /// The pending operation ended: its slot hold becomes this pass's.
    EndOperation(OpOutcome),
    /// Take the account's write slot, or queue for it.
    TakeSlot,
    /// Free the slot of a holder that no longer exists.
    EvictHolder(String),
    /// This generation passed pre-validation.
    MarkPrevalidated,
    Write(Write),
    Finish(Finish),
}

// ------------------------------------------------------------------ helpers

impl Snapshot {
    /// The status this pass starts from: the stored one with the account's endpoint and key
    /// reference, the pending operation cleared once it ended, and what Azure holds shown.
    pub fn base_status(&self) -> ModelDeploymentStatus {
        let mut st = self.md.status.clone();
        st.deployment_name = Some(self.md.deployment_name.clone());
        if let Some(a) = &self.account {
            st.endpoint = a.endpoint.clone();
            st.key_vault_secret = a.key_vault_secret.clone();
        }
        match &self.op {
            OpState::Ended { .. } => st.pending_operation = None,
            // A running operation stays recorded (again, if saving it failed before).
            OpState::Pending { op, .. } | OpState::Polled { op, .. } => {
                st.pending_operation = Some(op.clone())
            }
            OpState::Idle => {}
        }
        match self.effective() {
            Some(Some(d)) => status::show_deployment(&mut st, d),
            Some(None) => st.provisioning_state = None,
            None => {}
        }
        st
    }

    /// What Azure holds, as far as known: Some(None) = absent.
    pub fn effective(&self) -> Option<Option<&Deployment>> {
        if let OpState::Ended {
            outcome: OpOutcome::Succeeded {
                accepted: Some(d), ..
            },
            ..
        } = &self.op
        {
            return Some(Some(d));
        }
        match &self.observed {
            Observed::Fresh(d) => Some(d.as_ref()),
            Observed::Listed(s) => Some(s.deployment.as_deref()),
            _ => None,
        }
    }

    fn is_fresh(&self) -> bool {
        matches!(self.observed, Observed::Fresh(_))
    }

    fn ready_reason(&self) -> Option<&str> {
        status::ready_condition(&self.md.status.conditions).map(|c| c.reason.as_str())
    }

    /// The status's Ready condition is for the current generation.
    fn seen_this_generation(&self) -> bool {
        self.md.status.observed_generation == Some(self.md.generation)
    }

    fn finish(&self, ok: bool, reason: &str, message: &str) -> FinishBuilder {
        let mut st = self.base_status();
        st.observed_generation = Some(self.md.generation);
        status::set_condition(
            &mut st.conditions,
            "Ready",
            ok,
            reason,
            message,
            Some(self.md.generation),
            &self.now,
        );
        FinishBuilder(Finish {
            status: st,
            events: vec![],
            effects: vec![],
            then: Then::Resync,
        })
    }

    /// A warning event, only when the Ready reason changes (no event storms on requeues).
    fn warn_on_change(&self, reason: &str, note: &str) -> Option<EventSpec> {
        (self.ready_reason() != Some(reason))
            .then(|| EventSpec::warning(reason, "Reconcile", note.to_string()))
    }
}

struct FinishBuilder(Finish);

impl FinishBuilder {
    fn then(mut self, then: Then) -> Self {
        self.0.then = then;
        self
    }
    fn event(mut self, e: Option<EventSpec>) -> Self {
        self.0.events.extend(e);
        self
    }
    fn effect(mut self, e: Effect) -> Self {
        self.0.effects.push(e);
        self
    }
    fn status(mut self, f: impl FnOnce(&mut ModelDeploymentStatus)) -> Self {
        f(&mut self.0.status);
        self
    }
    fn step(self) -> Step {
        Step::Finish(self.0)
    }
}

/// The Ready reason of a transient failure.
pub fn transient_reason(e: &AzureError) -> &'static str {
    match e.status {
        Some(429) => reason::AZURE_THROTTLED,
        Some(409) => reason::WAITING_FOR_AZURE,
        None if e.code == "RequestConflict" || e.code == "Conflict" => reason::WAITING_FOR_AZURE,
        None => reason::AZURE_UNREACHABLE,
        _ => reason::AZURE_UNAVAILABLE,
    }
}

/// What to tell a human about a terminal error.
pub fn what_to_do(code: &str) -> &'static str {
    match code {
        reason::INSUFFICIENT_QUOTA => {
            " — lower spec.sku.capacity, free quota on the subscription, or request more quota"
        }
        reason::DEPLOYMENT_MODEL_NOT_SUPPORTED
        | reason::INVALID_RESOURCE_PROPERTIES
        | "InvalidModel" => {
            " — check spec.model and spec.sku against the models available on the account"
        }
        _ => "",
    }
}

const AUTH_HINT: &str = " — grant the AIAccount's identity Cognitive Services Contributor on the account, and check spec.credential";

/// The operation Azure accepted, as it is kept in status (Azure-AsyncOperation preferred).
fn pending_operation_of(s: &Snapshot, kind: OperationKind, out: &WriteOutcome) -> PendingOperation {
    PendingOperation {
        kind,
        async_operation_url: out.async_operation_url.clone(),
        location_url: if out.async_operation_url.is_none() {
            out.location_url.clone()
        } else {
            None
        },
        started_at: s.now.clone(),
        generation: Some(s.md.generation),
        target: None,
    }
}

/// Ready=False for a transient failure, then back off.
fn transient(s: &Snapshot, e: &AzureError) -> Step {
    let reason = transient_reason(e);
    let msg = format!("{e}; retrying with backoff");
    // 409 is Azure's "another operation is in progress": not an error for the user.
    let event = (reason != reason::WAITING_FOR_AZURE)
        .then(|| s.warn_on_change(reason, &msg))
        .flatten();
    s.finish(false, reason, &msg)
        .event(event)
        .then(Then::Retry(e.clone()))
        .step()
}

/// Ready=False for a terminal (or auth) failure of a write: held until the spec or the
/// account changes, or the recheck time passes.
fn terminal_write_error(s: &Snapshot, code: &str, message: &str) -> Step {
    let msg = format!(
        "{message}{}",
        if code == reason::AUTHORIZATION_FAILED || code == reason::AUTHENTICATION_FAILED {
            AUTH_HINT
        } else {
            what_to_do(code)
        }
    );
    let generation = s.md.generation;
    let account_generation = s.account.as_ref().map(|a| a.generation);
    let at = s.now.clone();
    let (code_owned, message_owned) = (code.to_string(), message.to_string());
    s.finish(false, code, &msg)
        .event(s.warn_on_change(code, &msg))
        .status(move |st| {
            st.last_error = Some(LastError {
                code: code_owned,
                message: message_owned,
                generation: Some(generation),
                account_generation,
                at,
            })
        })
        .effect(Effect::ForgetPrevalidation)
        .then(Then::Requeue(s.timing.terminal_recheck))
        .step()
}

/// Ready=False for a read that failed in a way a human must fix (auth, ...): checked again at
/// the next resync.
fn read_error(s: &Snapshot, e: &AzureError) -> Step {
    if e.is_transient() {
        return transient(s, e);
    }
    let msg = format!(
        "{e}{}",
        if e.class == ErrorClass::Auth {
            AUTH_HINT
        } else {
            ""
        }
    );
    s.finish(false, &e.code, &msg)
        .event(s.warn_on_change(&e.code, &msg))
        .then(Then::Resync)
        .step()
}

// ------------------------------------------------------------------ decide

/// The one decision of a ModelDeployment reconcile (not being deleted).
pub fn decide(s: &Snapshot) -> Step {
    if let Some(step) = gate(s) {
        return step;
    }
    if let Some(step) = pending_operation(s) {
        return step;
    }
    if let Some(step) = queued(s) {
        return step;
    }
    let (observed, stale) = match what_azure_holds(s) {
        Ok(o) => o,
        Err(step) => return step,
    };
    let action = action::next_action(&PlanInput {
        spec: &s.md.spec,
        owner: &s.md.owner,
        cluster: &s.cluster,
        observed,
        generation: s.md.generation,
        account_generation: s.account.as_ref().map_or(0, |a| a.generation),
        last_error: s.md.status.last_error.as_ref(),
        since_last_error: s.since_last_error,
        terminal_recheck: s.timing.terminal_recheck,
    });
    // A listing older than the resync interval is refreshed before deciding that nothing, or
    // nothing now, is to be done (a resync's refresh is background work; a new or changed
    // resource's is urgent). A write it calls for reads its target fresh anyway.
    if stale && !action.is_write() {
        return Step::Observe(Need::Listing {
            urgent: !s.seen_this_generation(),
        });
    }
    // Waiting for Azure to finish an operation the operator does not follow: on a listing no
    // older than the poll interval (one LIST per account, shared by whoever waits on it).
    if matches!(action, Action::WaitForProvisioning(_))
        && matches!(&s.observed, Observed::Listed(seen) if seen.age > s.timing.poll_interval)
        && !matches!(
            s.activity,
            AccountActivity::Listed {
                refreshed: true,
                ..
            }
        )
    {
        return Step::Observe(Need::Activity {
            max_age: s.timing.poll_interval,
        });
    }
    match action {
        Action::InSync => in_sync(s, observed),
        Action::Blocked { reason, message } => s
            .finish(false, reason, &message)
            .event(s.warn_on_change(reason, &message))
            .effect(Effect::LeaveQueue)
            .then(Then::Resync)
            .step(),
        Action::WaitForProvisioning(state) => s
            .finish(
                false,
                reason::PROVISIONING,
                &format!(
                    "Azure reports provisioningState {state} for deployment {}; waiting",
                    s.md.deployment_name
                ),
            )
            .effect(Effect::LeaveQueue)
            .then(Then::Requeue(s.timing.poll_interval))
            .step(),
        Action::HoldTerminal {
            code,
            message,
            recheck_in,
        } => s
            .finish(
                false,
                &code,
                &format!(
                    "{message} — not retried until the spec or the AIAccount changes (recheck in {}s)",
                    recheck_in.as_secs()
                ),
            )
            .effect(Effect::LeaveQueue)
            .then(Then::Requeue(recheck_in))
            .step(),
        Action::Put {
            kind,
            changes,
            keep_observed_version,
        } => write_path(s, observed, WriteIntent::Put { kind, changes, keep_observed_version }),
        Action::SetPaused(paused) => write_path(s, observed, WriteIntent::Paused(paused)),
    }
}

/// 1. The account gate and the credential.
fn gate(s: &Snapshot) -> Option<Step> {
    let facts = s
        .account
        .as_ref()
        .map(|a| a.facts.clone())
        .unwrap_or_default();
    if let Gate::Blocked { reason, message } =
        action::precheck(&s.md.spec.account_ref.name, &s.md.namespace, &facts)
    {
        return Some(
            s.finish(false, reason, &message)
                .event(s.warn_on_change(reason, &message))
                .effect(Effect::LeaveQueue)
                .then(Then::Resync)
                .step(),
        );
    }
    let msg = s.credential_error.as_ref()?;
    Some(
        s.finish(false, reason::CREDENTIAL_ERROR, msg)
            .event(s.warn_on_change(reason::CREDENTIAL_ERROR, msg))
            .then(Then::Resync)
            .step(),
    )
}

/// 2. A pending operation goes first.
fn pending_operation(s: &Snapshot) -> Option<Step> {
    match &s.op {
        // The slot says an operation of ours runs, but the status lost it (its write failed
        // after Azure accepted): end that hold, and read the deployment itself.
        OpState::Idle if s.slot == Slot::HeldByMyOperation => {
            Some(Step::EndOperation(OpOutcome::Lost(AzureError::transport(
                "deployments.operation",
                "OperationNotRecorded",
                "the running operation was not recorded in status".into(),
            ))))
        }
        OpState::Idle => None,
        OpState::Pending {
            due_in: Some(wait), ..
        } => Some(Step::Finish(Finish {
            status: s.md.status.clone(),
            events: vec![],
            effects: vec![],
            then: Then::Requeue(*wait),
        })),
        OpState::Pending { due_in: None, .. } => Some(Step::Observe(Need::Poll)),
        OpState::Polled { result: Err(e), .. } if e.is_transient() => Some(transient(s, e)),
        OpState::Polled { result: Err(e), .. } => {
            Some(Step::EndOperation(OpOutcome::Lost(e.clone())))
        }
        OpState::Polled {
            op,
            result: Ok(Poll::InProgress { .. }),
            next_poll,
            ..
        } => Some(
            s.finish(
                false,
                op.kind.progress_reason(),
                &format!(
                    "Azure is running the {} operation on deployment {}",
                    op.kind.as_str(),
                    s.md.deployment_name
                ),
            )
            .then(Then::Requeue(*next_poll))
            .step(),
        ),
        OpState::Polled {
            result: Ok(Poll::Succeeded),
            accepted,
            ..
        } => Some(Step::EndOperation(OpOutcome::Succeeded {
            accepted: accepted.clone(),
        })),
        OpState::Polled {
            op,
            result: Ok(Poll::Failed { code, message }),
            ..
        } => Some(Step::EndOperation(OpOutcome::Failed(
            AzureError::operation_failed(
                &format!("deployments.{}", op.kind.as_str()),
                code.clone(),
                message.clone(),
            ),
        ))),
        OpState::Ended {
            outcome: OpOutcome::Failed(e),
            ..
        } => Some(if e.is_transient() {
            transient(s, e)
        } else {
            terminal_write_error(s, &e.code, &e.message)
        }),
        OpState::Ended { .. } => None,
    }
}

/// 3. Queued behind another write, for the same generation: wait for the hand-off, read nothing.
fn queued(s: &Snapshot) -> Option<Step> {
    let Slot::Busy {
        holder,
        position: Some(position),
    } = &s.slot
    else {
        return None;
    };
    if !s.seen_this_generation() {
        return None;
    }
    // A holder whose ModelDeployment no longer exists (finalizer removed by hand) cannot
    // release. The head of the queue checks; the others wait behind it.
    if *position == 0
        && let Some(h) = holder
    {
        match s.holder_exists {
            None => return Some(Step::Observe(Need::HolderExists(h.clone()))),
            Some(false) => return Some(Step::EvictHolder(h.clone())),
            Some(true) => {}
        }
    }
    Some(wait_for_slot(s, *position))
}

fn wait_for_slot(s: &Snapshot, position: usize) -> Step {
    let msg = format!(
        "waiting for the account's write slot (Azure accepts one deployment write at a time per account); {} ahead",
        position + 1
    );
    // The hand-off wakes the next writer at once; this requeue is only the safety net against
    // a lost wake-up, spaced out by the place in the queue (the head every interval, the n-th
    // every n intervals, at most 10) so that a long queue does not keep the operator re-reading
    // waiters (each re-check is a read of the resource from the apiserver). The queue forgets a
    // waiter not seen for 20 intervals, so every waiter is seen well within that.
    let spread = (1 + position as u32).min(10);
    let again = s.timing.write_slot_retry * spread;
    if s.ready_reason() == Some(reason::WAITING_FOR_ACCOUNT) && s.seen_this_generation() {
        return Step::Finish(Finish {
            status: s.md.status.clone(),
            events: vec![],
            effects: vec![],
            then: Then::Requeue(again),
        });
    }
    s.finish(false, reason::WAITING_FOR_ACCOUNT, &msg)
        .then(Then::Requeue(again))
        .step()
}

/// 4. What Azure holds: the operation's accepted state, a fresh read, or the account's listing.
/// Also whether that is a listing older than the resync interval: a stale listing may still
/// decide a write (the write reads its target fresh first), but not that nothing is to be done.
fn what_azure_holds(s: &Snapshot) -> Result<(Option<&Deployment>, bool), Step> {
    if let OpState::Ended {
        outcome: OpOutcome::Succeeded {
            accepted: Some(d), ..
        },
        ..
    } = &s.op
    {
        return Ok((Some(d), false));
    }
    match &s.observed {
        Observed::Fresh(d) => Ok((d.as_ref(), false)),
        Observed::Listed(seen) => Ok((seen.deployment.as_deref(), seen.age > s.timing.resync)),
        // An operation ended without an accepted state: read the deployment itself.
        Observed::Unknown if matches!(s.op, OpState::Ended { .. }) => {
            Err(Step::Observe(Need::Fresh))
        }
        Observed::Unknown => Err(Step::Observe(Need::Listing { urgent: true })),
        Observed::ListFailed(e) | Observed::FreshFailed(e) => Err(read_error(s, e)),
    }
}

fn in_sync(s: &Snapshot, observed: Option<&Deployment>) -> Step {
    let o = observed.expect("in sync means observed");
    let version = o.props().model.and_then(|m| m.version).unwrap_or_default();
    let spec = &s.md.spec;
    let msg = format!(
        "deployment {} serves {} {} ({} x{}) at {}",
        s.md.deployment_name,
        spec.model.name,
        version,
        spec.sku.name.as_str(),
        spec.sku.capacity,
        s.account
            .as_ref()
            .and_then(|a| a.endpoint.clone())
            .unwrap_or_default()
    );
    let mut f = s
        .finish(true, reason::READY, &msg)
        .status(|st| st.last_error = None)
        .effect(Effect::ConfigMap)
        .effect(Effect::LeaveQueue)
        .then(Then::Resync);
    // Stamped only when something changed: an unchanged resync writes nothing to Kubernetes.
    let changed = f.0.status != s.md.status || s.md.status.last_sync_time.is_none();
    if changed {
        let now = s.now.clone();
        f = f.status(|st| st.last_sync_time = Some(now));
    }
    f.step()
}

enum WriteIntent {
    Put {
        kind: OperationKind,
        changes: Vec<String>,
        keep_observed_version: bool,
    },
    Paused(bool),
}

/// 6. Pre-validate, take the slot, read fresh, write, and classify the outcome.
fn write_path(s: &Snapshot, observed: Option<&Deployment>, intent: WriteIntent) -> Step {
    // a. Pre-validation, once per generation, before queueing for the slot.
    if let WriteIntent::Put { .. } = intent
        && !s.prevalidation.passed
    {
        if let Some(step) = prevalidate(s, observed) {
            return step;
        }
        return Step::MarkPrevalidated;
    }
    // b. The account's write slot (taking it queues when it is busy), once no operation the
    // operator does not follow runs on the account.
    match &s.slot {
        Slot::Taken | Slot::Free => {}
        Slot::Busy {
            position: Some(p), ..
        } => return wait_for_slot(s, *p),
        Slot::HeldByMyOperation | Slot::Busy { position: None, .. } => return Step::TakeSlot,
    }
    match other_operations(s) {
        OtherOperations::Clear => {}
        OtherOperations::Observe(need) => return Step::Observe(need),
        OtherOperations::Failed(e) => return read_error(s, e),
        OtherOperations::Running(b) => {
            return s
                .finish(
                    false,
                    reason::WAITING_FOR_AZURE,
                    &other_operation_message(s, b),
                )
                .then(Then::Requeue(s.timing.poll_interval))
                .step();
        }
    }
    if s.slot == Slot::Free {
        return Step::TakeSlot;
    }
    // c. The target read fresh (the decision above was then made on it).
    if !s.is_fresh() {
        return Step::Observe(Need::Fresh);
    }
    let write = match intent {
        WriteIntent::Put {
            kind,
            changes,
            keep_observed_version,
        } => {
            let raw = observed.and_then(|d| d.raw.as_deref());
            Write {
                kind,
                request: Request::Put(body::build_body(
                    &s.md.spec,
                    raw,
                    &s.md.owner,
                    &s.cluster,
                    keep_observed_version,
                )),
                changes,
            }
        }
        WriteIntent::Paused(p) => Write {
            kind: if p {
                OperationKind::Pause
            } else {
                OperationKind::Resume
            },
            request: if p { Request::Pause } else { Request::Resume },
            changes: vec![format!(
                "deploymentState -> {}",
                if p { "Paused" } else { "Running" }
            )],
        },
    };
    // d. Send it, then classify Azure's answer.
    match &s.write {
        None => Step::Write(write),
        Some(result) => after_write(s, write, result),
    }
}

/// What runs on the account's other deployments, before a write (deletion too).
pub(crate) enum OtherOperations<'a> {
    /// Nothing the operator does not follow.
    Clear,
    /// The account's listing is needed (never listed), or a younger one (a busy deployment was
    /// seen longer ago than the poll interval).
    Observe(Need),
    Failed(&'a AzureError),
    /// Wait for it to end (no write meanwhile: Azure would answer 409).
    Running(&'a Busy),
}

pub(crate) fn other_operations(s: &Snapshot) -> OtherOperations<'_> {
    match &s.activity {
        AccountActivity::Unknown => OtherOperations::Observe(Need::Activity {
            max_age: s.timing.resync,
        }),
        AccountActivity::Failed(e) => OtherOperations::Failed(e),
        AccountActivity::Listed { busy: None, .. } => OtherOperations::Clear,
        AccountActivity::Listed {
            busy: Some(_),
            age,
            refreshed: false,
        } if *age > s.timing.poll_interval => OtherOperations::Observe(Need::Activity {
            max_age: s.timing.poll_interval,
        }),
        AccountActivity::Listed { busy: Some(b), .. } => OtherOperations::Running(b),
    }
}

pub(crate) fn other_operation_message(s: &Snapshot, b: &Busy) -> String {
    format!(
        "Azure reports provisioningState {} for deployment {} of the account, an operation the operator is not following (started outside it, or before a restart); deployment {} waits for it to end (Azure accepts one write at a time per account)",
        b.state, b.deployment, s.md.deployment_name
    )
}

fn prevalidate(s: &Snapshot, observed: Option<&Deployment>) -> Option<Step> {
    let reject = |r: Rejection| Some(terminal_write_error(s, r.code, &r.message));
    let usage_name = match &s.prevalidation.catalog {
        None => return Some(Step::Observe(Need::Catalog)),
        // The catalog could not be read: Azure still enforces it.
        Some(Err(_)) => None,
        Some(Ok(models)) => match catalog::check_catalog(&s.md.spec, models) {
            Ok(u) => u,
            Err(r) => return reject(r),
        },
    };
    // Quota is per subscription and region: without the account's region it is Azure's to check.
    s.account.as_ref().and_then(|a| a.location.as_ref())?;
    match &s.prevalidation.usages {
        None => Some(Step::Observe(Need::Usages)),
        Some(Err(_)) => None,
        Some(Ok(usages)) => {
            let spec = &s.md.spec;
            let usage_name = usage_name.unwrap_or_else(|| {
                format!(
                    "{}.{}.{}",
                    spec.model.format,
                    spec.sku.name.as_str(),
                    spec.model.name
                )
            });
            catalog::check_quota(spec, &usage_name, usages, observed)
                .err()
                .and_then(reject)
        }
    }
}

fn after_write(s: &Snapshot, write: Write, result: &Result<WriteOutcome, AzureError>) -> Step {
    let name = &s.md.deployment_name;
    let kind = write.kind;
    let changes = write.changes.join(", ");
    match result {
        Err(e) if e.is_transient() => transient(s, e),
        Err(e) => {
            let step = terminal_write_error(s, &e.code, &e.message);
            match step {
                Step::Finish(mut f)
                    if e.code == reason::DEPLOYMENT_MODEL_NOT_SUPPORTED
                        || e.code == reason::INVALID_RESOURCE_PROPERTIES =>
                {
                    f.effects.push(Effect::ForgetCatalog);
                    Step::Finish(f)
                }
                other => other,
            }
        }
        Ok(out) => {
            let mut events = vec![];
            // A change Azure made outside the operator is reported as drift.
            let drift_created = kind == OperationKind::Create
                && s.md.status.azure_resource_id.is_some()
                && s.seen_this_generation();
            let drift = kind != OperationKind::Create
                && s.seen_this_generation()
                && status::ready_condition(&s.md.status.conditions)
                    .is_some_and(|c| c.status == "True");
            if drift_created {
                events.push(EventSpec::warning(
                    reason::DRIFT_DETECTED,
                    "Reconcile",
                    format!(
                        "Azure deployment {name} was deleted outside the operator; re-creating it"
                    ),
                ));
            } else if drift {
                events.push(EventSpec::warning(
                    reason::DRIFT_DETECTED,
                    "Reconcile",
                    format!("Azure deployment {name} was changed outside the operator ({changes}); correcting it"),
                ));
            }
            events.push(EventSpec::normal(
                kind.as_str(),
                kind.as_str(),
                format!("Azure {} of deployment {name}: {changes}", kind.as_str()),
            ));
            // A PUT's response is the deployment as it will be; a pause/resume action's is not.
            let accepted = out
                .deployment
                .clone()
                .filter(|_| matches!(write.request, Request::Put(_)));
            if out.is_long_running() {
                let pending = pending_operation_of(s, kind, out);
                let shown = out.deployment.clone();
                let mut f = s
                    .finish(
                        false,
                        kind.progress_reason(),
                        &format!(
                            "Azure accepted the {} of deployment {name} ({changes}); polling the operation",
                            kind.as_str()
                        ),
                    )
                    .status(move |st| {
                        st.pending_operation = Some(pending);
                        st.last_error = None;
                        if let Some(d) = &shown {
                            status::show_deployment(st, d);
                        }
                    })
                    .effect(Effect::ForgetPrevalidation)
                    .effect(Effect::Record(out.deployment.clone()))
                    .effect(Effect::HandSlotToOperation {
                        what: format!("{}/{}", kind.as_str(), s.md.spec.sku.name.as_str()),
                        accepted,
                    })
                    .then(Then::FirstPoll {
                        retry_after: out.retry_after,
                    });
                f.0.events = events;
                f.step()
            } else {
                let shown = out.deployment.clone();
                let mut f = s
                    .finish(
                        false,
                        kind.progress_reason(),
                        &format!(
                            "Azure applied the {} of deployment {name}; verifying",
                            kind.as_str()
                        ),
                    )
                    .status(move |st| {
                        st.last_error = None;
                        if let Some(d) = &shown {
                            status::show_deployment(st, d);
                        }
                    })
                    .effect(Effect::ForgetPrevalidation)
                    .effect(Effect::Record(out.deployment.clone()))
                    .then(Then::Requeue(Duration::from_millis(10)));
                f.0.events = events;
                f.step()
            }
        }
    }
}
