//! The deletion policy of a ModelDeployment (its finalizer's decision), on the same snapshot as
//! [`super::decide`]: Retain leaves Azure alone; a missing or disallowing account leaves the
//! deployment too (with a warning); a pending operation is polled to its end first; then the
//! deployment is read fresh and deleted only if this resource owns it, through the account's
//! write slot like any write. The finalizer goes only once Azure no longer has it.

use super::*;
use crate::crd::DeletionPolicy;

pub fn decide_delete(s: &Snapshot) -> Step {
    let name = &s.md.deployment_name;
    let done = |events: Vec<EventSpec>| {
        Step::Finish(Finish {
            status: s.md.status.clone(),
            events,
            effects: vec![Effect::LeaveQueue],
            then: Then::Released,
        })
    };
    if s.md.spec.deletion_policy == DeletionPolicy::Retain {
        return done(vec![EventSpec::normal(
            reason::RETAINED,
            "Delete",
            format!("deletionPolicy Retain: Azure deployment {name} is left in place"),
        )]);
    }
    let account = s.account.as_ref().filter(|a| a.facts.namespace_allowed);
    if account.is_none() {
        let why = if s.account.is_some() {
            "the namespace is not allowed on the AIAccount"
        } else {
            "its AIAccount no longer exists"
        };
        return done(vec![EventSpec::warning(
            reason::NOT_DELETED_IN_AZURE,
            "Delete",
            format!("Azure deployment {name} was not deleted: {why}"),
        )]);
    }
    if let Some(msg) = &s.credential_error {
        return s
            .finish(false, reason::CREDENTIAL_ERROR, msg)
            .event(s.warn_on_change(reason::CREDENTIAL_ERROR, msg))
            .then(Then::DeletionWait(s.timing.resync))
            .step();
    }
    // A pending operation runs to its end first (whatever it was).
    match &s.op {
        OpState::Idle if s.slot == Slot::HeldByMyOperation => {
            return Step::EndOperation(OpOutcome::Lost(AzureError::transport(
                "deployments.operation",
                "OperationNotRecorded",
                "the running operation was not recorded in status".into(),
            )));
        }
        OpState::Idle | OpState::Ended { .. } => {}
        OpState::Pending {
            due_in: Some(wait), ..
        } => return wait_for(s, *wait),
        OpState::Pending { due_in: None, .. } => return Step::Observe(Need::Poll),
        OpState::Polled { result: Err(e), .. } if e.is_transient() => return retry(s, e),
        OpState::Polled {
            result: Ok(Poll::InProgress { .. }),
            next_poll,
            ..
        } => return wait_for(s, *next_poll),
        OpState::Polled { result, .. } => {
            return Step::EndOperation(match result {
                Ok(Poll::Failed { code, message }) => {
                    OpOutcome::Failed(AzureError::operation_failed(
                        "deployments.operation",
                        code.clone(),
                        message.clone(),
                    ))
                }
                Err(e) => OpOutcome::Lost(e.clone()),
                _ => OpOutcome::Succeeded { accepted: None },
            });
        }
    }
    // What Azure holds, read fresh (a delete is a write).
    let observed = match &s.observed {
        Observed::Fresh(d) => d.as_ref(),
        Observed::FreshFailed(e) => return delete_failed(s, e),
        _ => return Step::Observe(Need::Fresh),
    };
    match action::deletion_action(s.md.spec.deletion_policy, observed, &s.md.owner, &s.cluster) {
        DeleteAction::Retain => done(vec![]),
        DeleteAction::Gone => {
            let events = if s.md.status.azure_resource_id.is_some() {
                vec![EventSpec::normal(
                    reason::DELETED,
                    "Delete",
                    format!("Azure deployment {name} is deleted"),
                )]
            } else {
                vec![]
            };
            match done(events) {
                Step::Finish(mut f) => {
                    f.effects.push(Effect::Record(None));
                    Step::Finish(f)
                }
                other => other,
            }
        }
        DeleteAction::LeaveNotOwned(why) => done(vec![EventSpec::normal(
            reason::LEFT_IN_PLACE,
            "Delete",
            format!("Azure deployment {name} is {why}; not deleted"),
        )]),
        DeleteAction::Wait(_) => wait_for(s, s.timing.poll_interval),
        DeleteAction::Delete => {
            match &s.slot {
                Slot::Taken => {}
                Slot::Busy {
                    position: Some(_), ..
                } => return wait_for(s, s.timing.write_slot_retry),
                Slot::Free => {}
                _ => return Step::TakeSlot,
            }
            match other_operations(s) {
                OtherOperations::Clear => {}
                OtherOperations::Observe(need) => return Step::Observe(need),
                OtherOperations::Failed(e) => return delete_failed(s, e),
                OtherOperations::Running(b) => {
                    return s
                        .finish(false, reason::DELETING, &other_operation_message(s, b))
                        .then(Then::DeletionWait(s.timing.poll_interval))
                        .step();
                }
            }
            if s.slot == Slot::Free {
                return Step::TakeSlot;
            }
            let write = Write {
                kind: OperationKind::Delete,
                request: Request::Delete,
                changes: vec!["delete".into()],
            };
            match &s.write {
                None => Step::Write(write),
                Some(Err(e)) => delete_failed(s, e),
                Some(Ok(out)) if out.status == 404 => done(vec![]),
                Some(Ok(out)) => {
                    let event = EventSpec::normal(
                        "Delete",
                        "Delete",
                        format!("Azure Delete of deployment {name}"),
                    );
                    if out.async_operation_url.is_some() || out.location_url.is_some() {
                        let pending = pending_operation_of(s, OperationKind::Delete, out);
                        let mut f = s
                            .finish(
                                false,
                                reason::DELETING,
                                &format!("Azure is deleting deployment {name}"),
                            )
                            .status(move |st| st.pending_operation = Some(pending))
                            .effect(Effect::HandSlotToOperation {
                                what: format!("Delete/{}", s.md.spec.sku.name.as_str()),
                                accepted: None,
                            })
                            .then(Then::DeletionWait(Duration::ZERO));
                        f.0.events.push(event);
                        // The first poll is timed by the poll clock, like a write's.
                        f.0.then = Then::FirstPoll {
                            retry_after: out.retry_after,
                        };
                        f.step()
                    } else {
                        // Deleted at once: verify on the next pass that it is gone.
                        Step::Finish(Finish {
                            status: s.md.status.clone(),
                            events: vec![event],
                            effects: vec![Effect::Record(None)],
                            then: Then::DeletionWait(Duration::from_millis(10)),
                        })
                    }
                }
            }
        }
    }
}

fn wait_for(s: &Snapshot, d: Duration) -> Step {
    Step::Finish(Finish {
        status: s.md.status.clone(),
        events: vec![],
        effects: vec![],
        then: Then::DeletionWait(d),
    })
}

/// A transient failure: retried with backoff, the status as it is.
fn retry(s: &Snapshot, e: &AzureError) -> Step {
    Step::Finish(Finish {
        status: s.md.status.clone(),
        events: vec![],
        effects: vec![],
        then: Then::Retry(e.clone()),
    })
}

/// A failed call on the deletion path: retried when transient; otherwise it needs a human.
fn delete_failed(s: &Snapshot, e: &AzureError) -> Step {
    if e.is_transient() {
        return retry(s, e);
    }
    let msg = format!(
        "{e} — fix the cause or set spec.deletionPolicy: Retain to delete the resource without touching Azure"
    );
    s.finish(false, &e.code, &msg)
        .event(s.warn_on_change(&e.code, &msg))
        .then(Then::DeletionWait(
            s.timing.terminal_recheck.min(s.timing.resync),
        ))
        .step()
}
