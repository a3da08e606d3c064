//! What Azure must change: desired spec + observed Azure deployment → the change to make (or
//! why none is made). Only fields the user set are compared, so server-filled defaults never
//! cause writes. Azure cannot change capacity and model version in one request: such a change is
//! planned as two writes (capacity first, then the model version on the next pass). Also the
//! account gate (decided from Kubernetes alone), ownership and what deletion does.

use super::body::{CLUSTER_TAG, OWNER_TAG};
use crate::azure::arm::Deployment;
use crate::crd::{CognitiveSpec, DeletionPolicy, LastError, OperationKind};
use crate::reason;
use std::time::Duration;

// ------------------------------------------------------------------ gate (before any Azure call)

/// What Kubernetes says about the account and the namespace (gathered without Azure calls).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AccountFacts {
    /// The AIAccount exists.
    pub exists: bool,
    /// The AIAccount is being deleted.
    pub deleting: bool,
    /// The ModelDeployment's namespace is allowed by the AIAccount.
    pub namespace_allowed: bool,
    /// The AIAccount is Ready (endpoint and Key Vault secret known).
    pub ready: bool,
    /// The AIAccount's Ready message, shown when it is not ready.
    pub ready_message: String,
}

/// Outcome of the pre-check: either proceed to Azure, or stop with a reason and no Azure call.
#[derive(Clone, Debug, PartialEq)]
pub enum Gate {
    Proceed,
    Blocked {
        reason: &'static str,
        message: String,
    },
}

pub fn precheck(account_name: &str, namespace: &str, facts: &AccountFacts) -> Gate {
    if !facts.exists {
        return Gate::Blocked {
            reason: reason::ACCOUNT_NOT_FOUND,
            message: format!(
                "AIAccount {account_name:?} does not exist: ask the platform team to create it, or fix spec.accountRef.name"
            ),
        };
    }
    if !facts.namespace_allowed {
        return Gate::Blocked {
            reason: reason::NAMESPACE_NOT_ALLOWED,
            message: format!(
                "namespace {namespace:?} may not use AIAccount {account_name:?}: ask the platform team to add it to spec.allowedNamespaces (names or selector)"
            ),
        };
    }
    if facts.deleting {
        return Gate::Blocked {
            reason: reason::ACCOUNT_DELETING,
            message: format!(
                "AIAccount {account_name:?} is being deleted; no new changes are made"
            ),
        };
    }
    if !facts.ready {
        return Gate::Blocked {
            reason: reason::ACCOUNT_NOT_READY,
            message: format!(
                "AIAccount {account_name:?} is not ready yet: {}",
                if facts.ready_message.is_empty() {
                    "waiting for its first sync"
                } else {
                    &facts.ready_message
                }
            ),
        };
    }
    Gate::Proceed
}

// ------------------------------------------------------------------ ownership

#[derive(Clone, Debug, PartialEq)]
pub enum Ownership {
    Ours,
    Unowned,
    Foreign(String),
}

pub fn ownership(observed: &Deployment, owner: &str, cluster: &str) -> Ownership {
    match observed.tag(OWNER_TAG) {
        None => Ownership::Unowned,
        Some(o) => {
            let same_cluster = observed.tag(CLUSTER_TAG).is_none_or(|c| c == cluster);
            if o == owner && same_cluster {
                Ownership::Ours
            } else {
                let c = observed.tag(CLUSTER_TAG).unwrap_or("?");
                Ownership::Foreign(format!("{o} (cluster {c})"))
            }
        }
    }
}

// ------------------------------------------------------------------ next action

/// Everything the planner looks at.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    pub spec: &'a CognitiveSpec,
    /// `<namespace>/<name>` of the ModelDeployment.
    pub owner: &'a str,
    pub cluster: &'a str,
    /// The Azure deployment as GET returned it (None = 404).
    pub observed: Option<&'a Deployment>,
    pub generation: i64,
    pub account_generation: i64,
    pub last_error: Option<&'a LastError>,
    /// Time since `last_error.at` (None when unknown).
    pub since_last_error: Option<Duration>,
    /// How long a terminal error holds writes for an unchanged spec/account.
    pub terminal_recheck: Duration,
}

#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// PUT the deployment (the body is built from Azure's body read fresh just before).
    Put {
        kind: OperationKind,
        changes: Vec<String>,
        /// The first of two writes: keep the observed model version.
        keep_observed_version: bool,
    },
    /// POST pause (true) or resume (false).
    SetPaused(bool),
    /// Azure is provisioning (someone's operation is running): wait, no write.
    WaitForProvisioning(String),
    /// Never touch it; Ready=False with this reason.
    Blocked {
        reason: &'static str,
        message: String,
    },
    /// A terminal error holds writes until the spec/account changes or the recheck time passes.
    HoldTerminal {
        code: String,
        message: String,
        recheck_in: Duration,
    },
    /// Azure matches every user-set field.
    InSync,
}

impl Action {
    pub fn is_write(&self) -> bool {
        matches!(self, Action::Put { .. } | Action::SetPaused(_))
    }
}

/// Differences in user-set fields between desired and observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    pub capacity: bool,
    pub sku_name: bool,
    pub model_version: bool,
    pub model_identity: bool,
    pub others: Vec<String>,
    pub paused: Option<bool>,
}

impl Diff {
    pub fn needs_put(&self) -> bool {
        self.capacity
            || self.sku_name
            || self.model_version
            || self.model_identity
            || !self.others.is_empty()
    }
    pub fn describe(&self, spec: &CognitiveSpec, observed: &Deployment) -> Vec<String> {
        let p = observed.props();
        let m = p.model.clone().unwrap_or_default();
        let sku = observed.sku.clone().unwrap_or_default();
        let mut out = vec![];
        if self.sku_name {
            out.push(format!(
                "sku.name {} -> {}",
                sku.name,
                spec.sku.name.as_str()
            ));
        }
        if self.capacity {
            out.push(format!(
                "sku.capacity {} -> {}",
                sku.capacity
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "none".into()),
                spec.sku.capacity
            ));
        }
        if self.model_identity {
            out.push(format!(
                "model {}/{} -> {}/{}",
                m.format.unwrap_or_default(),
                m.name.unwrap_or_default(),
                spec.model.format,
                spec.model.name
            ));
        }
        if self.model_version {
            out.push(format!(
                "model.version {} -> {}",
                m.version.unwrap_or_default(),
                spec.model.version.clone().unwrap_or_default()
            ));
        }
        out.extend(self.others.iter().cloned());
        out
    }
}

fn differs(desired: Option<&str>, observed: Option<&str>) -> bool {
    match desired {
        None => false,
        Some(d) => observed != Some(d),
    }
}

pub fn diff(spec: &CognitiveSpec, observed: &Deployment) -> Diff {
    let p = observed.props();
    let m = p.model.clone().unwrap_or_default();
    let sku = observed.sku.clone().unwrap_or_default();
    let mut d = Diff {
        capacity: sku.capacity != Some(spec.sku.capacity),
        sku_name: sku.name != spec.sku.name.as_str(),
        model_version: differs(spec.model.version.as_deref(), m.version.as_deref()),
        model_identity: m.name.as_deref() != Some(spec.model.name.as_str())
            || !m
                .format
                .as_deref()
                .unwrap_or("OpenAI")
                .eq_ignore_ascii_case(&spec.model.format),
        ..Default::default()
    };
    if differs(
        spec.rai_policy_name.as_deref(),
        p.rai_policy_name.as_deref(),
    ) {
        d.others.push(format!(
            "raiPolicyName {} -> {}",
            p.rai_policy_name.as_deref().unwrap_or("none"),
            spec.rai_policy_name.as_deref().unwrap_or_default()
        ));
    }
    if differs(
        spec.version_upgrade_option.map(|v| v.as_str()),
        p.version_upgrade_option.as_deref(),
    ) {
        d.others.push(format!(
            "versionUpgradeOption {} -> {}",
            p.version_upgrade_option.as_deref().unwrap_or("none"),
            spec.version_upgrade_option
                .map(|v| v.as_str())
                .unwrap_or_default()
        ));
    }
    if differs(
        spec.spillover_deployment_name.as_deref(),
        p.spillover_deployment_name.as_deref(),
    ) {
        d.others.push(format!(
            "spilloverDeploymentName {} -> {}",
            p.spillover_deployment_name.as_deref().unwrap_or("none"),
            spec.spillover_deployment_name
                .as_deref()
                .unwrap_or_default()
        ));
    }
    if differs(
        spec.service_tier.map(|v| v.as_str()),
        p.service_tier.as_deref(),
    ) {
        d.others.push(format!(
            "serviceTier {} -> {}",
            p.service_tier.as_deref().unwrap_or("none"),
            spec.service_tier.map(|v| v.as_str()).unwrap_or_default()
        ));
    }
    let observed_paused = p
        .deployment_state
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("Paused"));
    if let Some(want) = spec.paused
        && want != observed_paused
    {
        d.paused = Some(want);
    }
    d
}

fn hold(input: &PlanInput) -> Option<Action> {
    let e = input.last_error?;
    let same_spec = e.generation == Some(input.generation);
    let same_account = e
        .account_generation
        .is_none_or(|g| g == input.account_generation);
    if !(same_spec && same_account) {
        return None;
    }
    let elapsed = input.since_last_error.unwrap_or_default();
    if elapsed >= input.terminal_recheck {
        return None;
    }
    Some(Action::HoldTerminal {
        code: e.code.clone(),
        message: e.message.clone(),
        recheck_in: input.terminal_recheck - elapsed,
    })
}

pub fn next_action(input: &PlanInput) -> Action {
    let spec = input.spec;
    let Some(observed) = input.observed else {
        if let Some(h) = hold(input) {
            return h;
        }
        return Action::Put {
            kind: OperationKind::Create,
            changes: vec!["create".into()],
            keep_observed_version: false,
        };
    };
    let own = ownership(observed, input.owner, input.cluster);
    match &own {
        Ownership::Foreign(o) => {
            return Action::Blocked {
                reason: reason::OWNED_BY_ANOTHER_RESOURCE,
                message: format!(
                    "Azure deployment {:?} is managed by {o}; it is left alone. Use another spec.deploymentName",
                    observed.name.clone().unwrap_or_default()
                ),
            };
        }
        Ownership::Unowned if !spec.adopt_existing => {
            return Action::Blocked {
                reason: reason::ADOPTION_REFUSED,
                message: format!(
                    "an Azure deployment named {:?} already exists and is not managed by the operator; it is left alone. Set spec.adoptExisting: true to take it over, or use another spec.deploymentName",
                    observed.name.clone().unwrap_or_default()
                ),
            };
        }
        _ => {}
    }
    let state = observed.provisioning_state().unwrap_or("Succeeded");
    let failed = state.eq_ignore_ascii_case("Failed") || state.eq_ignore_ascii_case("Canceled");
    if !failed && !state.eq_ignore_ascii_case("Succeeded") {
        return Action::WaitForProvisioning(state.to_string());
    }
    let d = diff(spec, observed);
    let adopting = own == Ownership::Unowned;
    if d.needs_put() || adopting || failed {
        if let Some(h) = hold(input) {
            return h;
        }
        let mut changes = d.describe(spec, observed);
        let version_conflict = d.model_version && (d.capacity || d.sku_name);
        let kind = if adopting {
            OperationKind::Adopt
        } else if failed {
            changes.push(format!("provisioningState {state}"));
            OperationKind::Repair
        } else if version_conflict {
            OperationKind::UpdateCapacity
        } else {
            OperationKind::Update
        };
        if adopting {
            changes.insert(0, "adopt".into());
        }
        return Action::Put {
            kind,
            changes,
            keep_observed_version: version_conflict,
        };
    }
    if let Some(p) = d.paused {
        if let Some(h) = hold(input) {
            return h;
        }
        return Action::SetPaused(p);
    }
    Action::InSync
}

// ------------------------------------------------------------------ deletion

#[derive(Clone, Debug, PartialEq)]
pub enum DeleteAction {
    /// Policy Retain: leave it.
    Retain,
    /// Not in Azure (anymore).
    Gone,
    /// Exists but is not ours: never deleted.
    LeaveNotOwned(String),
    /// Azure is already deleting or provisioning it: wait.
    Wait(String),
    /// DELETE it.
    Delete,
}

pub fn deletion_action(
    policy: DeletionPolicy,
    observed: Option<&Deployment>,
    owner: &str,
    cluster: &str,
) -> DeleteAction {
    if policy == DeletionPolicy::Retain {
        return DeleteAction::Retain;
    }
    let Some(o) = observed else {
        return DeleteAction::Gone;
    };
    match ownership(o, owner, cluster) {
        Ownership::Ours => {}
        Ownership::Unowned => {
            return DeleteAction::LeaveNotOwned("not managed by the operator".into());
        }
        Ownership::Foreign(f) => return DeleteAction::LeaveNotOwned(format!("managed by {f}")),
    }
    match o.provisioning_state() {
        Some(s) if !crate::azure::arm::is_terminal_state(s) => DeleteAction::Wait(s.to_string()),
        _ => DeleteAction::Delete,
    }
}
