//! Table-driven tests of what must change (`action`), with the PUT body `body` builds from
//! the observed deployment, including every official example response as observed state.

use super::action::*;
use super::body::{CLUSTER_TAG, OWNER_TAG, build_body, tags_for};
use crate::azure::arm::Deployment;
use crate::crd::{CognitiveSpec, LastError, OperationKind, SkuName};
use serde_json::json;
use std::time::Duration;

const OWNER: &str = "team-a/chat";
const CLUSTER: &str = "default";

fn spec(extra: serde_json::Value) -> CognitiveSpec {
    let mut base = json!({
        "accountRef": {"name": "acct"},
        "model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"},
        "sku": {"name": "GlobalStandard", "capacity": 10},
    });
    merge(&mut base, extra);
    serde_json::from_value(base).expect("valid spec")
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(&k);
                } else {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        (a, b) => *a = b,
    }
}

/// An observed deployment as the emulator/Azure returns it, with server-filled extras.
fn observed(extra: serde_json::Value) -> Deployment {
    let mut base = json!({
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/acct/deployments/team-a.chat",
        "name": "team-a.chat",
        "type": "Microsoft.CognitiveServices/accounts/deployments",
        "tags": {OWNER_TAG: OWNER, CLUSTER_TAG: CLUSTER, "cost-center": "42"},
        "sku": {"name": "GlobalStandard", "capacity": 10},
        "properties": {
            "model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"},
            "provisioningState": "Succeeded",
            "raiPolicyName": "Microsoft.DefaultV2",
            "versionUpgradeOption": "OnceNewDefaultVersionAvailable",
            "currentCapacity": 10,
            "capabilities": {"chatCompletion": "true"},
            "rateLimits": [{"key": "request", "renewalPeriod": 10, "count": 10}],
            "deploymentState": "Running"
        },
        "systemData": {"createdBy": "x"}
    });
    merge(&mut base, extra);
    Deployment::from_json(base).expect("valid deployment")
}

struct Case {
    name: &'static str,
    spec: CognitiveSpec,
    observed: Option<Deployment>,
    last_error: Option<LastError>,
    since: Option<Duration>,
    account_generation: i64,
    expect: Expect,
}

type Check = Box<dyn Fn(&serde_json::Value) -> bool>;

enum Expect {
    Put(OperationKind, Check),
    Paused(bool),
    Wait,
    Blocked(&'static str),
    Hold,
    InSync,
}

impl std::fmt::Debug for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Put(k, _) => write!(f, "Put({k:?})"),
            Expect::Paused(p) => write!(f, "Paused({p})"),
            Expect::Wait => f.write_str("Wait"),
            Expect::Blocked(r) => write!(f, "Blocked({r})"),
            Expect::Hold => f.write_str("Hold"),
            Expect::InSync => f.write_str("InSync"),
        }
    }
}

fn err(generation: i64) -> LastError {
    LastError {
        code: "InsufficientQuota".into(),
        message: "need 10, have 5".into(),
        generation: Some(generation),
        account_generation: Some(1),
        at: "2026-01-01T00:00:00Z".into(),
    }
}

fn case(
    name: &'static str,
    spec: CognitiveSpec,
    observed: Option<Deployment>,
    expect: Expect,
) -> Case {
    Case {
        name,
        spec,
        observed,
        last_error: None,
        since: None,
        account_generation: 1,
        expect,
    }
}

fn any() -> Check {
    Box::new(|_| true)
}

fn run(c: &Case) -> Action {
    next_action(&PlanInput {
        spec: &c.spec,
        owner: OWNER,
        cluster: CLUSTER,
        observed: c.observed.as_ref(),
        generation: 3,
        account_generation: c.account_generation,
        last_error: c.last_error.as_ref(),
        since_last_error: c.since,
        terminal_recheck: Duration::from_secs(600),
    })
}

fn check(c: &Case) {
    let got = run(c);
    let ok = match (&c.expect, &got) {
        (
            Expect::Put(k, f),
            Action::Put {
                kind,
                keep_observed_version,
                ..
            },
        ) => {
            let raw = c.observed.as_ref().and_then(|d| d.raw.as_deref());
            k == kind
                && f(&build_body(
                    &c.spec,
                    raw,
                    OWNER,
                    CLUSTER,
                    *keep_observed_version,
                ))
        }
        (Expect::Paused(p), Action::SetPaused(q)) => p == q,
        (Expect::Wait, Action::WaitForProvisioning(_)) => true,
        (Expect::Blocked(r), Action::Blocked { reason, .. }) => r == reason,
        (Expect::Hold, Action::HoldTerminal { .. }) => true,
        (Expect::InSync, Action::InSync) => true,
        _ => false,
    };
    assert!(
        ok,
        "case {:?}: expected {:?}, got {:#?}",
        c.name, c.expect, got
    );
}

#[test]
fn next_action_table() {
    let v = |b: &serde_json::Value| b["properties"]["model"]["version"].clone();
    let cap = |b: &serde_json::Value| b["sku"]["capacity"].clone();
    let mut cases = vec![
        case(
            "absent -> create",
            spec(json!({})),
            None,
            Expect::Put(
                OperationKind::Create,
                Box::new(move |b| {
                    b["tags"][OWNER_TAG] == OWNER
                        && b["tags"][CLUSTER_TAG] == CLUSTER
                        && b["properties"]["model"]["version"] == "2024-07-18"
                        && b["sku"] == json!({"name": "GlobalStandard", "capacity": 10})
                        && b["properties"].get("raiPolicyName").is_none()
                        && b["properties"].get("deploymentState").is_none()
                }),
            ),
        ),
        case(
            "absent, no version -> create lets Azure pick",
            spec(json!({"model": {"version": null}})),
            None,
            Expect::Put(
                OperationKind::Create,
                Box::new(move |b| b["properties"]["model"].get("version").is_none()),
            ),
        ),
        case(
            "absent with optional fields",
            spec(
                json!({"raiPolicyName": "strict", "versionUpgradeOption": "NoAutoUpgrade", "serviceTier": "Priority", "spilloverDeploymentName": "spill"}),
            ),
            None,
            Expect::Put(
                OperationKind::Create,
                Box::new(|b| {
                    b["properties"]["raiPolicyName"] == "strict"
                        && b["properties"]["versionUpgradeOption"] == "NoAutoUpgrade"
                        && b["properties"]["serviceTier"] == "Priority"
                        && b["properties"]["spilloverDeploymentName"] == "spill"
                }),
            ),
        ),
        case(
            "in sync despite server-filled defaults",
            spec(json!({})),
            Some(observed(json!({}))),
            Expect::InSync,
        ),
        case(
            "unset version follows Azure's default",
            spec(json!({"model": {"version": null}})),
            Some(observed(json!({}))),
            Expect::InSync,
        ),
        case(
            "server-filled rai/upgrade not compared when unset",
            spec(json!({})),
            Some(observed(
                json!({"properties": {"raiPolicyName": "Other", "versionUpgradeOption": "NoAutoUpgrade", "serviceTier": "Default"}}),
            )),
            Expect::InSync,
        ),
        case(
            "currentCapacity lag does not matter",
            spec(json!({})),
            Some(observed(json!({"properties": {"currentCapacity": 7}}))),
            Expect::InSync,
        ),
        case(
            "capacity change",
            spec(json!({"sku": {"capacity": 20}})),
            Some(observed(json!({}))),
            Expect::Put(
                OperationKind::Update,
                Box::new(move |b| cap(b) == 20 && v(b) == "2024-07-18"),
            ),
        ),
        case(
            "version change",
            spec(json!({"model": {"version": "2024-09-01"}})),
            Some(observed(json!({}))),
            Expect::Put(
                OperationKind::Update,
                Box::new(move |b| cap(b) == 10 && v(b) == "2024-09-01"),
            ),
        ),
        case(
            "capacity + version -> capacity first, old version",
            spec(json!({"sku": {"capacity": 20}, "model": {"version": "2024-09-01"}})),
            Some(observed(json!({}))),
            Expect::Put(
                OperationKind::UpdateCapacity,
                Box::new(move |b| cap(b) == 20 && v(b) == "2024-07-18"),
            ),
        ),
        case(
            "second step after capacity landed -> version",
            spec(json!({"sku": {"capacity": 20}, "model": {"version": "2024-09-01"}})),
            Some(observed(json!({"sku": {"capacity": 20}}))),
            Expect::Put(
                OperationKind::Update,
                Box::new(move |b| cap(b) == 20 && v(b) == "2024-09-01"),
            ),
        ),
        case(
            "sku change + version -> sku first",
            spec(json!({"sku": {"name": "Standard"}, "model": {"version": "2024-09-01"}})),
            Some(observed(json!({}))),
            Expect::Put(
                OperationKind::UpdateCapacity,
                Box::new(move |b| b["sku"]["name"] == "Standard" && v(b) == "2024-07-18"),
            ),
        ),
        case(
            "sku name change",
            spec(json!({"sku": {"name": "Standard"}})),
            Some(observed(json!({}))),
            Expect::Put(
                OperationKind::Update,
                Box::new(|b| b["sku"]["name"] == "Standard"),
            ),
        ),
        case(
            "rai policy set and different",
            spec(json!({"raiPolicyName": "strict"})),
            Some(observed(json!({}))),
            Expect::Put(
                OperationKind::Update,
                Box::new(|b| b["properties"]["raiPolicyName"] == "strict"),
            ),
        ),
        case(
            "rai policy set and equal",
            spec(json!({"raiPolicyName": "Microsoft.DefaultV2"})),
            Some(observed(json!({}))),
            Expect::InSync,
        ),
        case(
            "upgrade option differs",
            spec(json!({"versionUpgradeOption": "NoAutoUpgrade"})),
            Some(observed(json!({}))),
            Expect::Put(
                OperationKind::Update,
                Box::new(|b| b["properties"]["versionUpgradeOption"] == "NoAutoUpgrade"),
            ),
        ),
        case(
            "service tier differs",
            spec(json!({"serviceTier": "Priority"})),
            Some(observed(json!({"properties": {"serviceTier": "Default"}}))),
            Expect::Put(
                OperationKind::Update,
                Box::new(|b| b["properties"]["serviceTier"] == "Priority"),
            ),
        ),
        case(
            "spillover differs",
            spec(json!({"spilloverDeploymentName": "b"})),
            Some(observed(json!({}))),
            Expect::Put(
                OperationKind::Update,
                Box::new(|b| b["properties"]["spilloverDeploymentName"] == "b"),
            ),
        ),
        case(
            "update keeps server values and foreign tags",
            spec(json!({"sku": {"capacity": 11}})),
            Some(observed(json!({}))),
            Expect::Put(
                OperationKind::Update,
                Box::new(|b| {
                    b["properties"]["raiPolicyName"] == "Microsoft.DefaultV2"
                        && b["properties"]["versionUpgradeOption"]
                            == "OnceNewDefaultVersionAvailable"
                        && b["tags"]["cost-center"] == "42"
                }),
            ),
        ),
        case(
            "update of a paused deployment keeps it paused",
            spec(json!({"sku": {"capacity": 11}})),
            Some(observed(
                json!({"properties": {"deploymentState": "Paused"}}),
            )),
            Expect::Put(
                OperationKind::Update,
                Box::new(|b| b["properties"]["deploymentState"] == "Paused"),
            ),
        ),
        case(
            "pause",
            spec(json!({"paused": true})),
            Some(observed(json!({}))),
            Expect::Paused(true),
        ),
        case(
            "resume",
            spec(json!({"paused": false})),
            Some(observed(
                json!({"properties": {"deploymentState": "Paused"}}),
            )),
            Expect::Paused(false),
        ),
        case(
            "paused unmanaged",
            spec(json!({})),
            Some(observed(
                json!({"properties": {"deploymentState": "Paused"}}),
            )),
            Expect::InSync,
        ),
        case(
            "paused already",
            spec(json!({"paused": true})),
            Some(observed(
                json!({"properties": {"deploymentState": "Paused"}}),
            )),
            Expect::InSync,
        ),
        case(
            "unowned without opt-in",
            spec(json!({})),
            Some(observed(json!({"tags": null}))),
            Expect::Blocked("AdoptionRefused"),
        ),
        case(
            "unowned with opt-in -> adopt",
            spec(json!({"adoptExisting": true})),
            Some(observed(json!({"tags": null}))),
            Expect::Put(
                OperationKind::Adopt,
                Box::new(|b| b["tags"][OWNER_TAG] == OWNER),
            ),
        ),
        case(
            "unowned with opt-in and changes -> adopt applies them",
            spec(json!({"adoptExisting": true, "sku": {"capacity": 5}})),
            Some(observed(
                json!({"tags": {OWNER_TAG: null, CLUSTER_TAG: null}}),
            )),
            Expect::Put(OperationKind::Adopt, Box::new(move |b| cap(b) == 5)),
        ),
        case(
            "foreign owner",
            spec(json!({"adoptExisting": true})),
            Some(observed(json!({"tags": {OWNER_TAG: "team-b/chat"}}))),
            Expect::Blocked("OwnedByAnotherResource"),
        ),
        case(
            "same owner other cluster",
            spec(json!({})),
            Some(observed(json!({"tags": {CLUSTER_TAG: "prod-2"}}))),
            Expect::Blocked("OwnedByAnotherResource"),
        ),
        case(
            "creating -> wait",
            spec(json!({"sku": {"capacity": 99}})),
            Some(observed(
                json!({"properties": {"provisioningState": "Creating"}}),
            )),
            Expect::Wait,
        ),
        case(
            "accepted -> wait",
            spec(json!({})),
            Some(observed(
                json!({"properties": {"provisioningState": "Accepted"}}),
            )),
            Expect::Wait,
        ),
        case(
            "deleting -> wait",
            spec(json!({})),
            Some(observed(
                json!({"properties": {"provisioningState": "Deleting"}}),
            )),
            Expect::Wait,
        ),
        case(
            "failed -> repair",
            spec(json!({})),
            Some(observed(
                json!({"properties": {"provisioningState": "Failed"}}),
            )),
            Expect::Put(OperationKind::Repair, any()),
        ),
        case(
            "no provisioningState treated as succeeded",
            spec(json!({})),
            Some(observed(json!({"properties": {"provisioningState": null}}))),
            Expect::InSync,
        ),
        case(
            "model name drift",
            spec(json!({})),
            Some(observed(
                json!({"properties": {"model": {"name": "gpt-4o"}}}),
            )),
            Expect::Put(
                OperationKind::Update,
                Box::new(|b| b["properties"]["model"]["name"] == "gpt-4o-mini"),
            ),
        ),
    ];
    // Terminal error holds.
    let mut c = case(
        "terminal error holds create",
        spec(json!({})),
        None,
        Expect::Hold,
    );
    c.last_error = Some(err(3));
    c.since = Some(Duration::from_secs(5));
    cases.push(c);
    let mut c = case(
        "terminal error of an older generation does not hold",
        spec(json!({})),
        None,
        Expect::Put(OperationKind::Create, any()),
    );
    c.last_error = Some(err(2));
    cases.push(c);
    let mut c = case(
        "terminal error released after recheck time",
        spec(json!({})),
        None,
        Expect::Put(OperationKind::Create, any()),
    );
    c.last_error = Some(err(3));
    c.since = Some(Duration::from_secs(601));
    cases.push(c);
    let mut c = case(
        "terminal error released when the account changed",
        spec(json!({})),
        None,
        Expect::Put(OperationKind::Create, any()),
    );
    c.last_error = Some(err(3));
    c.since = Some(Duration::from_secs(1));
    c.account_generation = 2;
    cases.push(c);
    let mut c = case(
        "terminal error holds an update",
        spec(json!({"sku": {"capacity": 50}})),
        Some(observed(json!({}))),
        Expect::Hold,
    );
    c.last_error = Some(err(3));
    c.since = Some(Duration::from_secs(1));
    cases.push(c);
    let mut c = case(
        "terminal error does not hide in-sync",
        spec(json!({})),
        Some(observed(json!({}))),
        Expect::InSync,
    );
    c.last_error = Some(err(3));
    c.since = Some(Duration::from_secs(1));
    cases.push(c);
    let mut c = case(
        "terminal error holds repair",
        spec(json!({})),
        Some(observed(
            json!({"properties": {"provisioningState": "Failed"}}),
        )),
        Expect::Hold,
    );
    c.last_error = Some(err(3));
    c.since = Some(Duration::from_secs(1));
    cases.push(c);
    let mut c = case(
        "terminal error holds pause",
        spec(json!({"paused": true})),
        Some(observed(json!({}))),
        Expect::Hold,
    );
    c.last_error = Some(err(3));
    c.since = Some(Duration::from_secs(1));
    cases.push(c);
    for c in &cases {
        check(c);
    }
}

#[test]
fn every_sku_name_round_trips() {
    for s in [
        SkuName::Standard,
        SkuName::GlobalStandard,
        SkuName::DataZoneStandard,
        SkuName::ProvisionedManaged,
        SkuName::GlobalProvisionedManaged,
        SkuName::DataZoneProvisionedManaged,
        SkuName::GlobalBatch,
        SkuName::DataZoneBatch,
        SkuName::DeveloperTier,
    ] {
        let sp = spec(json!({"sku": {"name": s.as_str()}}));
        assert_eq!(sp.sku.name, s);
        let o = observed(json!({"sku": {"name": s.as_str()}}));
        let c = case("sku", sp, Some(o), Expect::InSync);
        check(&c);
    }
}

#[test]
fn precheck_table() {
    let ok = AccountFacts {
        exists: true,
        deleting: false,
        namespace_allowed: true,
        ready: true,
        ready_message: String::new(),
    };
    let table: Vec<(AccountFacts, Option<&str>)> = vec![
        (AccountFacts::default(), Some("AccountNotFound")),
        (
            AccountFacts {
                namespace_allowed: false,
                ..ok.clone()
            },
            Some("NamespaceNotAllowed"),
        ),
        (
            AccountFacts {
                namespace_allowed: false,
                ready: false,
                ..ok.clone()
            },
            Some("NamespaceNotAllowed"),
        ),
        (
            AccountFacts {
                deleting: true,
                ..ok.clone()
            },
            Some("AccountDeleting"),
        ),
        (
            AccountFacts {
                ready: false,
                ..ok.clone()
            },
            Some("AccountNotReady"),
        ),
        (ok.clone(), None),
    ];
    for (facts, want) in table {
        let got = precheck("acct", "team-a", &facts);
        match (want, &got) {
            (None, Gate::Proceed) => {}
            (Some(r), Gate::Blocked { reason, message }) => {
                assert_eq!(*reason, r);
                assert!(message.contains("acct"), "{message}");
            }
            _ => panic!("facts {facts:?}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn deletion_table() {
    use crate::crd::DeletionPolicy::*;
    let ours = observed(json!({}));
    let unowned = observed(json!({"tags": null}));
    let foreign = observed(json!({"tags": {OWNER_TAG: "x/y"}}));
    let deleting = observed(json!({"properties": {"provisioningState": "Deleting"}}));
    let table = vec![
        (Retain, Some(&ours), DeleteAction::Retain),
        (Retain, None, DeleteAction::Retain),
        (Delete, None, DeleteAction::Gone),
        (Delete, Some(&ours), DeleteAction::Delete),
        (
            Delete,
            Some(&deleting),
            DeleteAction::Wait("Deleting".into()),
        ),
    ];
    for (policy, obs, want) in table {
        assert_eq!(deletion_action(policy, obs, OWNER, CLUSTER), want);
    }
    assert!(matches!(
        deletion_action(Delete, Some(&unowned), OWNER, CLUSTER),
        DeleteAction::LeaveNotOwned(_)
    ));
    assert!(matches!(
        deletion_action(Delete, Some(&foreign), OWNER, CLUSTER),
        DeleteAction::LeaveNotOwned(_)
    ));
}

/// Every official example response that is a deployment, as observed state.
#[test]
fn official_examples_as_observed_state() {
    let Some(dir) = std::env::var_os("AZURE_SPECS_DIR") else {
        eprintln!(
            "SKIPPED (loudly): AZURE_SPECS_DIR is not set, so the official Azure example responses were NOT used as observed state. \
             Set AZURE_SPECS_DIR=../shared/azure-specs (a copy of github.com/Azure/azure-rest-api-specs) to run this check."
        );
        return;
    };
    let root = std::path::PathBuf::from(dir);
    let mut files = vec![];
    collect(&root, &mut files);
    let mut checked = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let Ok(ex) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(responses) = ex.get("responses").and_then(|r| r.as_object()) else {
            continue;
        };
        for (code, resp) in responses {
            let Some(body) = resp.get("body") else {
                continue;
            };
            if body.get("type").and_then(|t| t.as_str())
                != Some("Microsoft.CognitiveServices/accounts/deployments")
            {
                continue;
            }
            let d: Deployment = Deployment::from_json(body.clone())
                .unwrap_or_else(|e| panic!("{} {code}: does not parse: {e}", f.display()));
            let m = d.props().model.unwrap_or_default();
            let sku = d.sku.clone().unwrap_or_default();
            let matching = serde_json::from_value::<CognitiveSpec>(json!({
                "accountRef": {"name": "acct"},
                "model": {"format": m.format.clone().unwrap_or("OpenAI".into()), "name": m.name.clone().unwrap_or_default(), "version": m.version.clone()},
                "sku": {"name": sku.name, "capacity": sku.capacity.unwrap_or(1)},
            }));
            let Ok(matching) = matching else { continue };
            let state = d.provisioning_state().unwrap_or("Succeeded").to_string();
            let settled = state == "Succeeded";
            // Untagged example: never touched without the opt-in.
            let c = case(
                "example unowned",
                matching.clone(),
                Some(d.clone()),
                Expect::Blocked("AdoptionRefused"),
            );
            check(&c);
            // Owned: in sync (or waiting while Azure provisions).
            let mut owned = d.clone();
            owned.tags = Some(tags_for(None, OWNER, CLUSTER));
            let mut raw = (*owned.raw.clone().unwrap()).clone();
            raw["tags"] = json!(owned.tags);
            owned.raw = Some(std::sync::Arc::new(raw));
            let c = case(
                "example owned",
                matching.clone(),
                Some(owned.clone()),
                if settled {
                    Expect::InSync
                } else {
                    Expect::Wait
                },
            );
            check(&c);
            if settled {
                let mut bigger = matching.clone();
                bigger.sku.capacity += 1;
                check(&case(
                    "example capacity",
                    bigger.clone(),
                    Some(owned.clone()),
                    Expect::Put(OperationKind::Update, any()),
                ));
                bigger.model.version = Some("9999-01-01".into());
                check(&case(
                    "example two-step",
                    bigger,
                    Some(owned.clone()),
                    Expect::Put(OperationKind::UpdateCapacity, any()),
                ));
                let mut adopt = matching.clone();
                adopt.adopt_existing = true;
                check(&case(
                    "example adopt",
                    adopt,
                    Some(d.clone()),
                    Expect::Put(OperationKind::Adopt, any()),
                ));
                let paused = d.props().deployment_state.as_deref() == Some("Paused");
                let mut toggle = matching.clone();
                toggle.paused = Some(!paused);
                check(&case(
                    "example pause toggle",
                    toggle,
                    Some(owned.clone()),
                    Expect::Paused(!paused),
                ));
            }
            assert_eq!(
                deletion_action(crate::crd::DeletionPolicy::Delete, Some(&d), OWNER, CLUSTER),
                DeleteAction::LeaveNotOwned("not managed by the operator".into())
            );
            checked += 1;
        }
    }
    eprintln!("official example deployment responses used as observed state: {checked}");
    assert!(
        checked >= 5,
        "expected at least 5 deployment example responses under AZURE_SPECS_DIR, found {checked}"
    );
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect(&p, out);
            } else if p.extension().is_some_and(|x| x == "json")
                && p.to_string_lossy().contains("examples")
            {
                out.push(p);
            }
        }
    }
}
