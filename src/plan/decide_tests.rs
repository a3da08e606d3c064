//! Table tests of the policy (`decide`, `decide_delete`, `decide_account`): one row per rule,
//! a walk through whole passes, and invariants checked over every combination of the snapshot's
//! parts (no write without the slot and a fresh read, no Azure call behind a closed gate, ...).

use super::account::*;
use super::delete::decide_delete;
use super::*;
use crate::azure::inventory::{Busy, Seen};
use crate::crd::{CognitiveSpec, Condition};
use serde_json::{Value, json};

const OWNER: &str = "team-a/chat";

fn spec(extra: Value) -> CognitiveSpec {
    let mut base = json!({
        "accountRef": {"name": "shared"},
        "model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"},
        "sku": {"name": "GlobalStandard", "capacity": 10},
    });
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(base).unwrap()
}

fn deployment(extra: Value) -> Deployment {
    let mut base = json!({
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a/deployments/team-a.chat",
        "name": "team-a.chat",
        "tags": {OWNER_TAG: OWNER, CLUSTER_TAG: "default"},
        "sku": {"name": "GlobalStandard", "capacity": 10},
        "properties": {
            "model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18", "publisher": "OpenAI"},
            "provisioningState": "Succeeded",
            "capacitySettings": {"designatedCapacity": 10},
        }
    });
    merge(&mut base, extra);
    Deployment::from_json(base).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(&k);
                } else {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (a, b) => *a = b,
    }
}

fn listed(d: Option<Deployment>) -> Observed {
    Observed::Listed(Seen {
        age: Duration::from_millis(10),
        pages: 1,
        deployment: d.map(|d| Arc::new(d.slim())),
    })
}

fn ready_account() -> AccountInfo {
    AccountInfo {
        facts: AccountFacts {
            exists: true,
            deleting: false,
            namespace_allowed: true,
            ready: true,
            ready_message: String::new(),
        },
        generation: 1,
        endpoint: Some("https://acct.example/".into()),
        key_vault_secret: Some(KeyVaultSecretRef {
            vault_uri: "https://kv.example/".into(),
            name: "k".into(),
            version: Some("v1".into()),
        }),
        location: Some("eastus".into()),
    }
}

fn condition(reason: &str, ok: bool, generation: i64) -> Condition {
    Condition {
        type_: "Ready".into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: Some(generation),
        last_transition_time: Some("t0".into()),
    }
}

/// A ModelDeployment seen before at generation 2, its account ready, nothing pending.
fn snap() -> Snapshot {
    Snapshot {
        md: Resource {
            owner: OWNER.into(),
            namespace: "team-a".into(),
            deployment_name: "team-a.chat".into(),
            spec: spec(json!({})),
            generation: 2,
            status: ModelDeploymentStatus {
                observed_generation: Some(2),
                ..Default::default()
            },
        },
        account: Some(ready_account()),
        credential_error: None,
        op: OpState::Idle,
        slot: Slot::Free,
        holder_exists: None,
        observed: Observed::Unknown,
        activity: idle(),
        prevalidation: Prevalidation::default(),
        write: None,
        cluster: "default".into(),
        timing: Timing::default(),
        now: "2026-12-02T00:00:00Z".into(),
        since_last_error: None,
    }
}

/// The account's listing shows nothing else running.
fn idle() -> AccountActivity {
    AccountActivity::Listed {
        busy: None,
        age: Duration::from_millis(10),
        refreshed: false,
    }
}

/// The account's listing, `age` old, shows another deployment being updated.
fn busy(age: Duration, refreshed: bool) -> AccountActivity {
    AccountActivity::Listed {
        busy: Some(Busy {
            deployment: "team-b.other".into(),
            state: "Updating".into(),
        }),
        age,
        refreshed,
    }
}

fn pending(kind: OperationKind) -> PendingOperation {
    PendingOperation {
        kind,
        async_operation_url: Some("https://arm/op".into()),
        location_url: None,
        started_at: "t".into(),
        generation: Some(2),
        target: None,
    }
}

fn finish(step: &Step) -> &Finish {
    match step {
        Step::Finish(f) => f,
        other => panic!("expected a finish, got {other:#?}"),
    }
}

fn reason_of(f: &Finish) -> &str {
    &status::ready_condition(&f.status.conditions)
        .expect("a Ready condition")
        .reason
}

fn catalog(capacity: Value) -> Arc<Vec<AccountModel>> {
    Arc::new(
        serde_json::from_value(json!([
            {"name": "gpt-4o-mini", "format": "OpenAI", "version": "2024-07-18", "isDefaultVersion": true,
             "skus": [{"name": "GlobalStandard", "usageName": "OpenAI.GlobalStandard.gpt-4o-mini", "capacity": capacity}]}
        ]))
        .unwrap(),
    )
}

fn usages(current: f64, limit: f64) -> Arc<Vec<Usage>> {
    Arc::new(
        serde_json::from_value(json!([
            {"name": {"value": "OpenAI.GlobalStandard.gpt-4o-mini"}, "currentValue": current, "limit": limit}
        ]))
        .unwrap(),
    )
}

fn azure_error(status: u16, code: &str) -> AzureError {
    AzureError::response(
        "deployments.put",
        status,
        code.into(),
        format!("{code} happened"),
        None,
    )
}

fn accepted_outcome(state: &str, long_running: bool) -> WriteOutcome {
    WriteOutcome {
        status: if long_running { 201 } else { 200 },
        deployment: Some(deployment(
            json!({"properties": {"provisioningState": state}}),
        )),
        async_operation_url: long_running.then(|| "https://arm/op/1".to_string()),
        location_url: None,
        retry_after: None,
    }
}

/// Ready for a write: pre-validated, the slot taken, the target read fresh.
fn at_write(observed: Option<Deployment>) -> Snapshot {
    let mut s = snap();
    s.prevalidation.passed = true;
    s.slot = Slot::Taken;
    s.observed = Observed::Fresh(observed);
    s
}

// ------------------------------------------------------------------ 1. gate

#[test]
fn the_gate_blocks_before_any_azure_call() {
    let mut not_allowed = ready_account();
    not_allowed.facts.namespace_allowed = false;
    let mut deleting = ready_account();
    deleting.facts.deleting = true;
    let mut not_ready = ready_account();
    not_ready.facts.ready = false;
    not_ready.facts.ready_message = "key not stored".into();
    for (account, want) in [
        (None, reason::ACCOUNT_NOT_FOUND),
        (Some(not_allowed), reason::NAMESPACE_NOT_ALLOWED),
        (Some(deleting), reason::ACCOUNT_DELETING),
        (Some(not_ready), reason::ACCOUNT_NOT_READY),
    ] {
        let mut s = snap();
        s.account = account;
        s.op = OpState::Pending {
            op: pending(OperationKind::Create),
            due_in: None,
        };
        let step = decide(&s);
        let f = finish(&step);
        assert_eq!(reason_of(f), want);
        assert!(f.effects.contains(&Effect::LeaveQueue), "{want}");
        assert_eq!(f.then, Then::Resync);
        assert_eq!(f.events.len(), 1, "a warning the first time: {want}");
        if want == reason::ACCOUNT_NOT_READY {
            assert!(f.status.conditions[0].message.contains("key not stored"));
        }
        // The same reason again: no new event.
        s.md.status = f.status.clone();
        assert!(finish(&decide(&s)).events.is_empty(), "{want}");
    }
    let mut s = snap();
    s.credential_error = Some("Secret x has no key y".into());
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::CREDENTIAL_ERROR);
    assert!(f.status.conditions[0].message.contains("Secret x"));
}

// ------------------------------------------------------------------ 2. pending operation

#[test]
fn a_pending_operation_goes_first() {
    let op = pending(OperationKind::Create);
    let mut s = snap();
    s.slot = Slot::HeldByMyOperation;
    s.observed = listed(None);
    s.op = OpState::Pending {
        op: op.clone(),
        due_in: Some(Duration::from_millis(700)),
    };
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(
        f.then,
        Then::Requeue(Duration::from_millis(700)),
        "not due: wait"
    );
    assert_eq!(f.status, s.md.status, "and write nothing");

    s.op = OpState::Pending {
        op: op.clone(),
        due_in: None,
    };
    assert_eq!(decide(&s), Step::Observe(Need::Poll));

    let polled = |result: Result<Poll, AzureError>, accepted: Option<Deployment>| OpState::Polled {
        op: op.clone(),
        result,
        next_poll: Duration::from_millis(250),
        accepted,
    };
    s.op = polled(Ok(Poll::InProgress { retry_after: None }), None);
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::CREATING);
    assert_eq!(f.then, Then::Requeue(Duration::from_millis(250)));
    assert!(f.effects.is_empty(), "the slot stays with the operation");
    assert_eq!(
        f.status.pending_operation.as_ref(),
        Some(&op),
        "an operation followed from memory (its save had failed) is saved again"
    );

    let d = deployment(json!({}));
    s.op = polled(Ok(Poll::Succeeded), Some(d.clone()));
    assert_eq!(
        decide(&s),
        Step::EndOperation(OpOutcome::Succeeded { accepted: Some(d) })
    );
    s.op = polled(
        Ok(Poll::Failed {
            code: "InsufficientQuota".into(),
            message: "no".into(),
        }),
        None,
    );
    assert!(matches!(
        decide(&s),
        Step::EndOperation(OpOutcome::Failed(e)) if e.code == "InsufficientQuota" && !e.is_transient()
    ));
    s.op = polled(Err(azure_error(429, "TooManyRequests")), None);
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::AZURE_THROTTLED);
    assert!(matches!(f.then, Then::Retry(_)));
    s.op = polled(Err(azure_error(404, "OperationNotFound")), None);
    assert!(matches!(decide(&s), Step::EndOperation(OpOutcome::Lost(_))));
}

#[test]
fn an_ended_operation_is_the_state_or_is_read_fresh() {
    let mut s = snap();
    s.slot = Slot::Taken;
    s.md.status.pending_operation = Some(pending(OperationKind::Create));
    s.op = OpState::Ended {
        op: Some(pending(OperationKind::Create)),
        outcome: OpOutcome::Succeeded {
            accepted: Some(deployment(json!({}))),
        },
    };
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::READY, "no read-back");
    assert!(f.status.pending_operation.is_none());
    assert_eq!(f.status.provisioning_state.as_deref(), Some("Succeeded"));

    s.op = OpState::Ended {
        op: Some(pending(OperationKind::Update)),
        outcome: OpOutcome::Succeeded { accepted: None },
    };
    assert_eq!(
        decide(&s),
        Step::Observe(Need::Fresh),
        "a spec change meanwhile: read it"
    );

    s.op = OpState::Ended {
        op: Some(pending(OperationKind::Create)),
        outcome: OpOutcome::Failed(AzureError::operation_failed(
            "deployments.Create",
            "InsufficientQuota".into(),
            "need 10".into(),
        )),
    };
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::INSUFFICIENT_QUOTA);
    assert_eq!(f.status.last_error.as_ref().unwrap().generation, Some(2));
    assert!(f.status.pending_operation.is_none());
    assert_eq!(f.then, Then::Requeue(s.timing.terminal_recheck));

    s.op = OpState::Ended {
        op: None,
        outcome: OpOutcome::Failed(AzureError::operation_failed(
            "deployments.Create",
            "InternalServerError".into(),
            "oops".into(),
        )),
    };
    assert!(matches!(finish(&decide(&s)).then, Then::Retry(_)));

    // The slot says our operation runs, the status lost it: end the hold.
    let mut s = snap();
    s.slot = Slot::HeldByMyOperation;
    assert!(matches!(decide(&s), Step::EndOperation(OpOutcome::Lost(_))));
}

// ------------------------------------------------------------------ 3. queued

#[test]
fn a_queued_write_waits_for_the_hand_off_without_reading() {
    let mut s = snap();
    s.slot = Slot::Busy {
        holder: Some("team-b/other".into()),
        position: Some(2),
    };
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::WAITING_FOR_ACCOUNT);
    // Third in the queue: re-checked every third interval (the hand-off wakes it at once).
    assert_eq!(f.then, Then::Requeue(s.timing.write_slot_retry * 3));
    // Already waiting: nothing written.
    s.md.status.conditions = vec![condition(reason::WAITING_FOR_ACCOUNT, false, 2)];
    assert_eq!(finish(&decide(&s)).status, s.md.status);
    // Far back in the queue: re-checked every 10 intervals at most, well before the queue
    // forgets a waiter it has not seen for 20.
    s.slot = Slot::Busy {
        holder: Some("team-b/other".into()),
        position: Some(60),
    };
    assert_eq!(
        finish(&decide(&s)).then,
        Then::Requeue(s.timing.write_slot_retry * 10)
    );
    // The head of the queue checks that the holder still exists.
    s.slot = Slot::Busy {
        holder: Some("team-b/other".into()),
        position: Some(0),
    };
    assert_eq!(
        decide(&s),
        Step::Observe(Need::HolderExists("team-b/other".into()))
    );
    s.holder_exists = Some(false);
    assert_eq!(decide(&s), Step::EvictHolder("team-b/other".into()));
    s.holder_exists = Some(true);
    assert_eq!(reason_of(finish(&decide(&s))), reason::WAITING_FOR_ACCOUNT);
    // A new generation is looked at again.
    s.md.generation = 3;
    assert_eq!(decide(&s), Step::Observe(Need::Listing { urgent: true }));
}

// ------------------------------------------------------------------ 4. what Azure holds

#[test]
fn what_azure_holds_comes_from_the_listing() {
    let mut s = snap();
    assert_eq!(decide(&s), Step::Observe(Need::Listing { urgent: true }));
    let stale = |d: Option<Deployment>| {
        Observed::Listed(Seen {
            age: Timing::default().resync + Duration::from_secs(1),
            pages: 1,
            deployment: d.map(Arc::new),
        })
    };
    s.observed = stale(Some(deployment(json!({}))));
    assert_eq!(
        decide(&s),
        Step::Observe(Need::Listing { urgent: false }),
        "in sync on a stale listing: refreshed first, as a resync's background work"
    );
    s.md.generation = 3;
    assert_eq!(decide(&s), Step::Observe(Need::Listing { urgent: true }));
    s.md.generation = 2;
    // A stale listing that calls for a write is enough: the write reads its target fresh.
    s.observed = stale(None);
    assert_eq!(decide(&s), Step::Observe(Need::Catalog));
    s.observed = Observed::ListFailed(azure_error(503, "ServiceUnavailable"));
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::AZURE_UNAVAILABLE);
    assert!(matches!(f.then, Then::Retry(_)));
    s.observed = Observed::ListFailed(azure_error(403, "AuthorizationFailed"));
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), "AuthorizationFailed");
    assert!(
        f.status.conditions[0]
            .message
            .contains("Cognitive Services Contributor")
    );
    assert_eq!(f.then, Then::Resync);
}

// ------------------------------------------------------------------ 5. what must change

#[test]
fn in_sync_and_the_other_outcomes_without_a_write() {
    let mut s = snap();
    s.observed = listed(Some(deployment(json!({}))));
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::READY);
    assert!(f.effects.contains(&Effect::ConfigMap));
    assert_eq!(
        f.status.last_sync_time.as_deref(),
        Some("2026-12-02T00:00:00Z")
    );
    assert_eq!(f.status.endpoint.as_deref(), Some("https://acct.example/"));
    assert_eq!(f.then, Then::Resync);
    // Unchanged on the next resync: the status is left as it is (no Kubernetes write).
    s.md.status = f.status.clone();
    s.now = "2026-12-02T00:05:00Z".into();
    assert_eq!(finish(&decide(&s)).status, s.md.status);

    let mut s = snap();
    s.observed = listed(Some(deployment(json!({"tags": {OWNER_TAG: "team-b/x"}}))));
    assert_eq!(
        reason_of(finish(&decide(&s))),
        reason::OWNED_BY_ANOTHER_RESOURCE
    );
    s.observed = listed(Some(deployment(json!({"tags": null}))));
    assert_eq!(reason_of(finish(&decide(&s))), reason::ADOPTION_REFUSED);
    s.observed = listed(Some(deployment(
        json!({"properties": {"provisioningState": "Updating"}}),
    )));
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::PROVISIONING);
    assert_eq!(f.then, Then::Requeue(s.timing.poll_interval));

    let mut s = snap();
    s.md.spec.sku.capacity = 50;
    s.observed = listed(Some(deployment(json!({}))));
    s.md.status.last_error = Some(LastError {
        code: "InsufficientQuota".into(),
        message: "need 50".into(),
        generation: Some(2),
        account_generation: Some(1),
        at: "t".into(),
    });
    s.since_last_error = Some(Duration::from_secs(60));
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), "InsufficientQuota", "held, no write");
    assert_eq!(
        f.then,
        Then::Requeue(s.timing.terminal_recheck - Duration::from_secs(60))
    );
}

// ------------------------------------------------------------------ 6. the write path

#[test]
fn a_write_is_prevalidated_once_then_queued_then_read_fresh() {
    let mut s = snap();
    s.observed = listed(None);
    assert_eq!(decide(&s), Step::Observe(Need::Catalog));
    // Capacity rules: a PTU-like minimum and increment.
    s.prevalidation.catalog = Some(Ok(catalog(
        json!({"minimum": 15, "maximum": 1000, "step": 5}),
    )));
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::INVALID_CAPACITY);
    assert!(f.status.conditions[0].message.contains("steps of 5"));
    assert_eq!(
        f.status.last_error.as_ref().unwrap().code,
        reason::INVALID_CAPACITY
    );

    s.prevalidation.catalog = Some(Ok(catalog(json!({"minimum": 1, "maximum": 1000}))));
    assert_eq!(decide(&s), Step::Observe(Need::Usages));
    s.prevalidation.usages = Some(Ok(usages(95.0, 100.0)));
    assert_eq!(reason_of(finish(&decide(&s))), reason::INSUFFICIENT_QUOTA);
    s.prevalidation.usages = Some(Ok(usages(10.0, 100.0)));
    assert_eq!(decide(&s), Step::MarkPrevalidated);
    // Reads that fail leave the check to Azure.
    s.prevalidation.catalog = Some(Err(azure_error(503, "ServiceUnavailable")));
    s.prevalidation.usages = Some(Err(azure_error(503, "ServiceUnavailable")));
    assert_eq!(decide(&s), Step::MarkPrevalidated);
    // Without the account's region there is no quota to read.
    let mut no_region = s.clone();
    no_region.account.as_mut().unwrap().location = None;
    no_region.prevalidation.usages = None;
    assert_eq!(decide(&no_region), Step::MarkPrevalidated);

    s.prevalidation.passed = true;
    assert_eq!(decide(&s), Step::TakeSlot);
    s.slot = Slot::Busy {
        holder: Some("team-b/x".into()),
        position: None,
    };
    assert_eq!(decide(&s), Step::TakeSlot, "taking it joins the queue");
    s.md.generation = 3; // (a new generation: the queued rule does not apply)
    s.slot = Slot::Busy {
        holder: Some("team-b/x".into()),
        position: Some(1),
    };
    assert_eq!(reason_of(finish(&decide(&s))), reason::WAITING_FOR_ACCOUNT);
    s.md.generation = 2;
    s.slot = Slot::Taken;
    assert_eq!(
        decide(&s),
        Step::Observe(Need::Fresh),
        "ARM has no precondition for a create"
    );
    // The fresh read says it is there and matches: no write after all.
    s.observed = Observed::Fresh(Some(deployment(json!({}))));
    assert_eq!(reason_of(finish(&decide(&s))), reason::READY);
    s.observed = Observed::Fresh(None);
    match decide(&s) {
        Step::Write(w) => {
            assert_eq!(w.kind, OperationKind::Create);
            let Request::Put(body) = w.request else {
                panic!("a PUT")
            };
            assert_eq!(body["tags"][OWNER_TAG], OWNER);
            assert_eq!(
                body["sku"],
                json!({"name": "GlobalStandard", "capacity": 10})
            );
        }
        other => panic!("{other:#?}"),
    }
}

#[test]
fn an_update_starts_from_azures_body() {
    let mut s = at_write(Some(deployment(json!({
        "properties": {"routing": {"mode": "balanced"}, "contextCacheContainerId": "c1"}
    }))));
    s.md.spec.sku.capacity = 25;
    let Step::Write(w) = decide(&s) else {
        panic!("a write")
    };
    assert_eq!(w.kind, OperationKind::Update);
    let Request::Put(body) = w.request else {
        panic!("a PUT")
    };
    assert_eq!(body["sku"]["capacity"], 25);
    assert_eq!(body["properties"]["routing"]["mode"], "balanced");
    assert_eq!(body["properties"]["contextCacheContainerId"], "c1");
    assert_eq!(body["properties"]["model"]["publisher"], "OpenAI");
    assert_eq!(
        body["properties"]["capacitySettings"]["designatedCapacity"],
        10
    );
    assert!(body["properties"].get("provisioningState").is_none());
    // Capacity and version together: capacity first, with the observed version.
    s.md.spec.model.version = Some("2024-09-01".into());
    let Step::Write(w) = decide(&s) else {
        panic!("a write")
    };
    assert_eq!(w.kind, OperationKind::UpdateCapacity);
    let Request::Put(body) = w.request else {
        panic!("a PUT")
    };
    assert_eq!(body["properties"]["model"]["version"], "2024-07-18");
    // Pause and resume are actions, not PUTs, and need no pre-validation.
    let mut p = snap();
    p.md.spec.paused = Some(true);
    p.observed = listed(Some(deployment(json!({}))));
    assert_eq!(decide(&p), Step::TakeSlot);
    p.slot = Slot::Taken;
    p.observed = Observed::Fresh(Some(deployment(json!({}))));
    let Step::Write(w) = decide(&p) else {
        panic!("a write")
    };
    assert_eq!((w.kind, w.request), (OperationKind::Pause, Request::Pause));
}

#[test]
fn azures_answer_to_a_write_is_classified() {
    let mut s = at_write(None);
    s.write = Some(Ok(accepted_outcome("Creating", true)));
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::CREATING);
    let p = f
        .status
        .pending_operation
        .as_ref()
        .expect("recorded in status");
    assert_eq!((p.kind, p.generation), (OperationKind::Create, Some(2)));
    assert_eq!(p.async_operation_url.as_deref(), Some("https://arm/op/1"));
    assert!(f.effects.iter().any(|e| matches!(e, Effect::HandSlotToOperation { what, accepted: Some(_) } if what == "Create/GlobalStandard")));
    assert_eq!(f.then, Then::FirstPoll { retry_after: None });
    assert_eq!(f.events.len(), 1);
    assert!(!f.events[0].warning);

    s.write = Some(Ok(accepted_outcome("Succeeded", false)));
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(f.then, Then::Requeue(Duration::from_millis(10)));
    assert!(
        !f.effects
            .iter()
            .any(|e| matches!(e, Effect::HandSlotToOperation { .. }))
    );

    for (status, code, want, event) in [
        (409, "RequestConflict", reason::WAITING_FOR_AZURE, false),
        (429, "TooManyRequests", reason::AZURE_THROTTLED, true),
        (503, "ServiceUnavailable", reason::AZURE_UNAVAILABLE, true),
    ] {
        s.write = Some(Err(azure_error(status, code)));
        let step = decide(&s);
        let f = finish(&step);
        assert_eq!(reason_of(f), want);
        assert!(matches!(f.then, Then::Retry(_)));
        assert_eq!(!f.events.is_empty(), event, "{code}");
        assert!(f.status.last_error.is_none(), "{code} is not terminal");
    }
    s.write = Some(Err(azure_error(400, "InsufficientQuota")));
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), "InsufficientQuota");
    assert!(
        f.status.conditions[0]
            .message
            .contains("request more quota")
    );
    assert_eq!(
        f.status.last_error.as_ref().unwrap().code,
        "InsufficientQuota"
    );
    assert!(!f.effects.contains(&Effect::ForgetCatalog));
    s.write = Some(Err(azure_error(400, "DeploymentModelNotSupported")));
    assert!(finish(&decide(&s)).effects.contains(&Effect::ForgetCatalog));
    s.write = Some(Err(azure_error(403, "AuthorizationFailed")));
    assert!(
        finish(&decide(&s)).status.conditions[0]
            .message
            .contains("Cognitive Services Contributor")
    );
}

#[test]
fn changes_made_outside_the_operator_are_reported_as_drift() {
    let mut s = at_write(Some(deployment(json!({"sku": {"capacity": 3}}))));
    s.md.status.conditions = vec![condition(reason::READY, true, 2)];
    s.write = Some(Ok(accepted_outcome("Updating", true)));
    let step = decide(&s);
    let f = finish(&step);
    assert!(f.events.iter().any(|e| e.reason == reason::DRIFT_DETECTED
        && e.warning
        && e.note.contains("changed outside")));
    let mut s = at_write(None);
    s.md.status.azure_resource_id = Some("/x".into());
    s.write = Some(Ok(accepted_outcome("Creating", true)));
    assert!(
        finish(&decide(&s))
            .events
            .iter()
            .any(|e| e.note.contains("deleted outside"))
    );
    // A spec change is not drift.
    let mut s = at_write(Some(deployment(json!({}))));
    s.md.generation = 3;
    s.md.spec.sku.capacity = 30;
    s.write = Some(Ok(accepted_outcome("Updating", true)));
    assert!(
        !finish(&decide(&s))
            .events
            .iter()
            .any(|e| e.reason == reason::DRIFT_DETECTED)
    );
}

// ------------------------------------------------------------------ whole passes

/// Plays the executor's part for a scripted Azure and Kubernetes: the steps of one pass.
fn drive(
    mut s: Snapshot,
    azure: &dyn Fn(&Need) -> Snapshot,
    delete: bool,
) -> (Vec<String>, Finish) {
    let mut steps = vec![];
    for _ in 0..20 {
        let step = if delete {
            decide_delete(&s)
        } else {
            decide(&s)
        };
        let name = match &step {
            Step::Observe(n) => format!("Observe({n:?})"),
            Step::Write(w) => format!("Write({})", w.kind.as_str()),
            Step::Finish(_) => "Finish".into(),
            other => format!("{other:?}").split('(').next().unwrap().to_string(),
        };
        steps.push(name);
        match step {
            Step::Observe(n) => {
                let got = azure(&n);
                match n {
                    Need::Listing { .. } | Need::Fresh => s.observed = got.observed,
                    Need::Catalog => s.prevalidation.catalog = got.prevalidation.catalog,
                    Need::Usages => s.prevalidation.usages = got.prevalidation.usages,
                    Need::Poll => s.op = got.op,
                    Need::HolderExists(_) => s.holder_exists = Some(true),
                    Need::Activity { .. } => {
                        s.activity = got.activity;
                        if !matches!(s.observed, Observed::Fresh(_)) {
                            s.observed = got.observed;
                        }
                    }
                }
            }
            Step::MarkPrevalidated => s.prevalidation.passed = true,
            Step::TakeSlot => s.slot = Slot::Taken,
            Step::EvictHolder(_) => s.slot = Slot::Free,
            Step::EndOperation(outcome) => {
                s.slot = Slot::Taken;
                s.op = OpState::Ended { op: None, outcome };
            }
            Step::Write(_) => s.write = azure(&Need::Fresh).write,
            Step::Finish(f) => return (steps, f),
        }
    }
    panic!("no finish: {steps:?}");
}

#[test]
fn a_create_pass_in_order() {
    let azure = |n: &Need| {
        let mut s = snap();
        match n {
            Need::Listing { .. } => s.observed = listed(None),
            Need::Fresh => {
                s.observed = Observed::Fresh(None);
                s.write = Some(Ok(accepted_outcome("Creating", true)));
            }
            Need::Catalog => s.prevalidation.catalog = Some(Ok(catalog(json!({"maximum": 1000})))),
            Need::Usages => s.prevalidation.usages = Some(Ok(usages(0.0, 100.0))),
            _ => {}
        }
        s
    };
    let mut new = snap();
    new.md.status = Default::default();
    let (steps, f) = drive(new, &azure, false);
    assert_eq!(
        steps,
        [
            "Observe(Listing { urgent: true })",
            "Observe(Catalog)",
            "Observe(Usages)",
            "MarkPrevalidated",
            "TakeSlot",
            "Observe(Fresh)",
            "Write(Create)",
            "Finish"
        ]
    );
    assert_eq!(reason_of(&f), reason::CREATING);

    // The hand-off to the next writer: pre-validated while queued, so straight to the write.
    let mut handed = snap();
    handed.observed = listed(None);
    handed.prevalidation.passed = true;
    let (steps, _) = drive(handed, &azure, false);
    assert_eq!(
        steps,
        ["TakeSlot", "Observe(Fresh)", "Write(Create)", "Finish"]
    );

    // Steady state: one shared listing, nothing else.
    let mut steady = snap();
    steady.observed = listed(Some(deployment(json!({}))));
    let (steps, f) = drive(steady, &azure, false);
    assert_eq!(steps, ["Finish"]);
    assert_eq!(reason_of(&f), reason::READY);
}

#[test]
fn another_operation_on_the_account_holds_writes() {
    // Ready to create, the slot free: what the account's listing says of the others decides.
    let mut s = snap();
    s.observed = listed(None);
    s.prevalidation.passed = true;
    s.activity = AccountActivity::Unknown;
    let t = Timing::default();
    assert_eq!(
        decide(&s),
        Step::Observe(Need::Activity { max_age: t.resync }),
        "an account never listed is listed first"
    );
    s.activity = busy(Duration::from_millis(10), false);
    let step = decide(&s);
    let f = finish(&step);
    assert_eq!(reason_of(f), reason::WAITING_FOR_AZURE);
    let msg = &f.status.conditions[0].message;
    assert!(
        msg.contains("team-b.other") && msg.contains("Updating"),
        "{msg}"
    );
    assert_eq!(f.then, Then::Requeue(t.poll_interval));
    assert!(f.events.is_empty(), "waiting on Azure is not a warning");
    assert!(
        !f.effects.contains(&Effect::LeaveQueue),
        "the head of the queue keeps its place"
    );
    // Seen longer ago than the poll interval: listed again first, then waited on.
    s.activity = busy(t.poll_interval * 2, false);
    assert_eq!(
        decide(&s),
        Step::Observe(Need::Activity {
            max_age: t.poll_interval
        })
    );
    s.activity = busy(t.poll_interval * 2, true);
    assert_eq!(reason_of(finish(&decide(&s))), reason::WAITING_FOR_AZURE);
    // Holding the slot (an operation of ours just ended) changes nothing.
    s.slot = Slot::Taken;
    assert_eq!(reason_of(finish(&decide(&s))), reason::WAITING_FOR_AZURE);
    // A listing that fails is judged like any read.
    s.activity = AccountActivity::Failed(azure_error(503, "ServiceUnavailable"));
    assert!(matches!(finish(&decide(&s)).then, Then::Retry(_)));
    s.activity = AccountActivity::Failed(azure_error(403, "AuthorizationFailed"));
    assert_eq!(reason_of(finish(&decide(&s))), "AuthorizationFailed");
    s.activity = idle();
    assert_eq!(decide(&s), Step::Observe(Need::Fresh));
    s.slot = Slot::Free;
    assert_eq!(decide(&s), Step::TakeSlot);
    // Queued behind a writer of ours: the hand-off decides, not the listing (our own running
    // operation shows in it).
    s.activity = busy(Duration::from_millis(10), false);
    s.md.generation = 3;
    s.slot = Slot::Busy {
        holder: Some("team-b/other".into()),
        position: Some(0),
    };
    assert_eq!(reason_of(finish(&decide(&s))), reason::WAITING_FOR_ACCOUNT);

    // Deletion waits the same way.
    let mut d = snap();
    d.observed = Observed::Fresh(Some(deployment(json!({}))));
    d.activity = busy(Duration::from_millis(10), false);
    let step = decide_delete(&d);
    let f = finish(&step);
    assert_eq!(f.then, Then::DeletionWait(t.poll_interval));
    assert!(reason_of(f) == reason::DELETING);
    d.activity = AccountActivity::Unknown;
    assert_eq!(
        decide_delete(&d),
        Step::Observe(Need::Activity { max_age: t.resync })
    );
    d.activity = idle();
    assert_eq!(decide_delete(&d), Step::TakeSlot);

    // Waiting for provisioning the operator does not follow: on a listing no older than the
    // poll interval.
    let mut w = snap();
    w.observed = Observed::Listed(Seen {
        age: t.poll_interval * 2,
        pages: 1,
        deployment: Some(Arc::new(deployment(
            json!({"properties": {"provisioningState": "Creating"}}),
        ))),
    });
    assert_eq!(
        decide(&w),
        Step::Observe(Need::Activity {
            max_age: t.poll_interval
        })
    );
    w.activity = idle();
    if let AccountActivity::Listed { refreshed, .. } = &mut w.activity {
        *refreshed = true;
    }
    assert_eq!(reason_of(finish(&decide(&w))), reason::PROVISIONING);
}

// ------------------------------------------------------------------ invariants

fn combinations() -> Vec<Snapshot> {
    let ops = vec![
        OpState::Idle,
        OpState::Pending {
            op: pending(OperationKind::Update),
            due_in: None,
        },
        OpState::Pending {
            op: pending(OperationKind::Update),
            due_in: Some(Duration::from_secs(1)),
        },
        OpState::Polled {
            op: pending(OperationKind::Update),
            result: Ok(Poll::InProgress { retry_after: None }),
            next_poll: Duration::from_secs(1),
            accepted: None,
        },
        OpState::Polled {
            op: pending(OperationKind::Update),
            result: Ok(Poll::Succeeded),
            next_poll: Duration::from_secs(1),
            accepted: Some(deployment(json!({}))),
        },
        OpState::Ended {
            op: None,
            outcome: OpOutcome::Succeeded { accepted: None },
        },
        OpState::Ended {
            op: None,
            outcome: OpOutcome::Lost(azure_error(404, "NotFound")),
        },
    ];
    let slots = vec![
        Slot::Free,
        Slot::Taken,
        Slot::HeldByMyOperation,
        Slot::Busy {
            holder: Some("x/y".into()),
            position: Some(0),
        },
        Slot::Busy {
            holder: Some("x/y".into()),
            position: None,
        },
    ];
    let observed = vec![
        Observed::Unknown,
        listed(None),
        listed(Some(deployment(json!({})))),
        listed(Some(deployment(json!({"sku": {"capacity": 3}})))),
        Observed::Fresh(None),
        Observed::Fresh(Some(deployment(json!({"sku": {"capacity": 3}})))),
        Observed::ListFailed(azure_error(503, "ServiceUnavailable")),
        Observed::FreshFailed(azure_error(403, "AuthorizationFailed")),
    ];
    let activities = vec![
        idle(),
        AccountActivity::Unknown,
        busy(Duration::from_millis(10), false),
        busy(Duration::from_secs(60), false),
        AccountActivity::Failed(azure_error(503, "ServiceUnavailable")),
    ];
    let accounts = vec![Some(ready_account()), None];
    let writes = vec![None, Some(Ok(accepted_outcome("Updating", true)))];
    let prevalidated = [false, true];
    let policies = [
        crate::crd::DeletionPolicy::Delete,
        crate::crd::DeletionPolicy::Retain,
    ];
    let mut out = vec![];
    for op in &ops {
        for slot in &slots {
            for o in &observed {
                for a in &accounts {
                    for w in &writes {
                        for p in prevalidated {
                            for policy in policies {
                                for activity in &activities {
                                    let mut s = snap();
                                    s.op = op.clone();
                                    s.slot = slot.clone();
                                    s.observed = o.clone();
                                    s.account = a.clone();
                                    s.write = w.clone();
                                    s.prevalidation.passed = p;
                                    s.md.spec.deletion_policy = policy;
                                    s.activity = activity.clone();
                                    out.push(s);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn calls_azure(step: &Step) -> bool {
    matches!(
        step,
        Step::Write(_)
            | Step::Observe(
                Need::Poll
                    | Need::Listing { .. }
                    | Need::Fresh
                    | Need::Catalog
                    | Need::Usages
                    | Need::Activity { .. }
            )
    )
}

#[test]
fn invariants_over_every_combination() {
    let all = combinations();
    assert!(all.len() > 20000, "{}", all.len());
    for s in &all {
        for (delete, step) in [(false, decide(s)), (true, decide_delete(s))] {
            let ctx = || format!("delete={delete} {s:#?}\n=> {step:#?}");
            // Nothing reaches Azure behind a closed gate.
            if s.account.is_none() {
                assert!(!calls_azure(&step), "{}", ctx());
            }
            // A write needs the slot, and (but for a pause, resume or delete) a fresh read.
            if let Step::Write(w) = &step {
                assert_eq!(s.slot, Slot::Taken, "{}", ctx());
                // Never while the account's listing shows another operation running.
                assert!(
                    matches!(s.activity, AccountActivity::Listed { busy: None, .. }),
                    "{}",
                    ctx()
                );
                if matches!(w.request, Request::Put(_) | Request::Delete) {
                    assert!(matches!(s.observed, Observed::Fresh(_)), "{}", ctx());
                }
                assert!(
                    !matches!(s.op, OpState::Pending { .. } | OpState::Polled { .. }),
                    "never while an operation runs: {}",
                    ctx()
                );
                if !delete && matches!(w.request, Request::Put(_)) {
                    assert!(s.prevalidation.passed, "{}", ctx());
                }
            }
            // A fresh read is made holding the slot (apply) — it is the read before a write.
            if !delete && step == Step::Observe(Need::Fresh) {
                assert!(
                    s.slot == Slot::Taken || matches!(s.op, OpState::Ended { .. }),
                    "{}",
                    ctx()
                );
            }
            // Retain never touches Azure on deletion.
            if delete && s.md.spec.deletion_policy == crate::crd::DeletionPolicy::Retain {
                assert!(!calls_azure(&step), "{}", ctx());
            }
            if let Step::Finish(f) = &step {
                // Every Ready condition is for the current generation.
                if let Some(c) = status::ready_condition(&f.status.conditions)
                    && f.status != s.md.status
                {
                    assert_eq!(c.observed_generation, Some(s.md.generation), "{}", ctx());
                }
                // A finished pass hands the slot to an operation only with one recorded.
                if f.effects
                    .iter()
                    .any(|e| matches!(e, Effect::HandSlotToOperation { .. }))
                {
                    assert!(f.status.pending_operation.is_some(), "{}", ctx());
                }
            }
        }
    }
}

// ------------------------------------------------------------------ deletion

#[test]
fn deletion_table() {
    let mut s = snap();
    s.md.spec.deletion_policy = crate::crd::DeletionPolicy::Retain;
    let step = decide_delete(&s);
    let f = finish(&step);
    assert_eq!(f.then, Then::Released);
    assert_eq!(f.events[0].reason, reason::RETAINED);

    let mut s = snap();
    s.account = None;
    let step = decide_delete(&s);
    let f = finish(&step);
    assert_eq!(f.then, Then::Released);
    assert!(f.events[0].warning && f.events[0].reason == reason::NOT_DELETED_IN_AZURE);

    let mut s = snap();
    assert_eq!(
        decide_delete(&s),
        Step::Observe(Need::Fresh),
        "a delete reads fresh"
    );
    s.observed = Observed::Fresh(None);
    s.md.status.azure_resource_id = Some("/x".into());
    let step = decide_delete(&s);
    let f = finish(&step);
    assert_eq!(f.then, Then::Released);
    assert_eq!(f.events[0].reason, reason::DELETED);

    s.observed = Observed::Fresh(Some(deployment(json!({"tags": null}))));
    let step = decide_delete(&s);
    assert_eq!(finish(&step).events[0].reason, reason::LEFT_IN_PLACE);
    s.observed = Observed::Fresh(Some(deployment(
        json!({"properties": {"provisioningState": "Deleting"}}),
    )));
    assert_eq!(
        finish(&decide_delete(&s)).then,
        Then::DeletionWait(s.timing.poll_interval)
    );

    s.observed = Observed::Fresh(Some(deployment(json!({}))));
    assert_eq!(decide_delete(&s), Step::TakeSlot);
    s.slot = Slot::Busy {
        holder: Some("x/y".into()),
        position: Some(0),
    };
    assert_eq!(
        finish(&decide_delete(&s)).then,
        Then::DeletionWait(s.timing.write_slot_retry)
    );
    s.slot = Slot::Taken;
    assert!(matches!(
        decide_delete(&s),
        Step::Write(Write {
            request: Request::Delete,
            ..
        })
    ));
    s.write = Some(Ok(WriteOutcome {
        status: 202,
        location_url: Some("https://arm/op".into()),
        ..Default::default()
    }));
    let step = decide_delete(&s);
    let f = finish(&step);
    assert_eq!(
        f.status.pending_operation.as_ref().unwrap().kind,
        OperationKind::Delete
    );
    assert!(matches!(f.then, Then::FirstPoll { .. }));
    s.write = Some(Ok(WriteOutcome {
        status: 404,
        ..Default::default()
    }));
    assert_eq!(finish(&decide_delete(&s)).then, Then::Released);
    s.write = Some(Err(azure_error(400, "CannotDelete")));
    let step = decide_delete(&s);
    let f = finish(&step);
    assert!(
        f.status.conditions[0]
            .message
            .contains("deletionPolicy: Retain")
    );
    assert!(matches!(f.then, Then::DeletionWait(_)));

    // A running operation is waited for, then the deployment is read again.
    let mut s = snap();
    s.op = OpState::Polled {
        op: pending(OperationKind::Create),
        result: Ok(Poll::InProgress { retry_after: None }),
        next_poll: Duration::from_millis(300),
        accepted: None,
    };
    assert_eq!(
        finish(&decide_delete(&s)).then,
        Then::DeletionWait(Duration::from_millis(300))
    );
}

// ------------------------------------------------------------------ AIAccount

fn account_snap() -> AccountSnapshot {
    AccountSnapshot {
        name: "shared".into(),
        generation: 1,
        spec: serde_json::from_value(json!({
            "subscriptionId": "00000000-0000-0000-0000-000000000000", "resourceGroup": "rg",
            "accountName": "acct", "keyVault": {"vaultUri": "https://kv/", "secretName": "k"}
        }))
        .unwrap(),
        status: Default::default(),
        deleting: false,
        credential_error: None,
        account: None,
        has_key: None,
        stored: None,
        written: None,
        users: None,
        timing: Timing::default(),
        now: "now".into(),
    }
}

fn account_finish(step: AccountStep) -> AccountFinish {
    match step {
        AccountStep::Finish(f) => f,
        other => panic!("{other:?}"),
    }
}

#[test]
fn account_table() {
    let mut s = account_snap();
    assert_eq!(
        decide_account(&s),
        AccountStep::Observe(AccountNeed::Account)
    );
    s.account = Some(Err(AzureError::response(
        "accounts.get",
        404,
        "ResourceNotFound".into(),
        "no".into(),
        None,
    )));
    let f = account_finish(decide_account(&s));
    assert!(
        f.status.conditions[0]
            .message
            .contains("check subscriptionId")
    );
    assert_eq!(f.events.len(), 1);
    s.account = Some(Err(AzureError::transport(
        "accounts.get",
        "Timeout",
        "slow".into(),
    )));
    assert!(matches!(
        account_finish(decide_account(&s)).then,
        Then::Retry(_)
    ));
    s.account = Some(Ok(serde_json::from_value(json!({
        "id": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/acct",
        "kind": "AIServices", "location": "eastus", "properties": {"endpoint": "https://acct/"}
    }))
    .unwrap()));
    assert_eq!(decide_account(&s), AccountStep::Observe(AccountNeed::Keys));
    s.has_key = Some(Ok(false));
    assert_eq!(
        account_finish(decide_account(&s)).status.conditions[0].reason,
        reason::NO_KEYS
    );
    s.has_key = Some(Ok(true));
    assert_eq!(
        decide_account(&s),
        AccountStep::Observe(AccountNeed::StoredKey)
    );
    s.stored = Some(Ok(StoredKey {
        matches: false,
        version: Some("old".into()),
    }));
    assert_eq!(decide_account(&s), AccountStep::StoreKey);
    s.written = Some(Ok(Some("v2".into())));
    let f = account_finish(decide_account(&s));
    assert_eq!(f.status.conditions[0].reason, reason::READY);
    assert_eq!(
        f.status
            .key_vault_secret
            .as_ref()
            .unwrap()
            .version
            .as_deref(),
        Some("v2")
    );
    assert_eq!(f.status.endpoint.as_deref(), Some("https://acct/"));
    assert_eq!(f.events[0].reason, reason::KEY_STORED);
    assert_eq!(f.status.last_sync_time.as_deref(), Some("now"));
    // The next resync finds the key stored and changes nothing.
    s.status = f.status.clone();
    s.stored = Some(Ok(StoredKey {
        matches: true,
        version: Some("v2".into()),
    }));
    s.written = None;
    s.now = "later".into();
    let f = account_finish(decide_account(&s));
    assert_eq!(f.status, s.status);
    assert!(f.events.is_empty());

    let mut d = account_snap();
    d.deleting = true;
    assert_eq!(
        decide_account_delete(&d),
        AccountStep::Observe(AccountNeed::Users)
    );
    d.users = Some(vec!["team-a/chat".into()]);
    let f = account_finish(decide_account_delete(&d));
    assert_eq!(f.status.conditions[0].reason, reason::IN_USE);
    assert!(matches!(f.then, Then::DeletionWait(_)));
    d.users = Some(vec![]);
    assert_eq!(
        account_finish(decide_account_delete(&d)).then,
        Then::Released
    );
    let mut c = account_snap();
    c.credential_error = Some("bad".into());
    assert_eq!(
        account_finish(decide_account(&c)).status.conditions[0].reason,
        reason::CREDENTIAL_ERROR
    );
}
