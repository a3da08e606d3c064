//! The policy of the Azure ML forms of a ModelDeployment (`managedCompute`, `serverless`), as
//! one pure function of a snapshot: `decide_ml(&MlSnapshot) -> MlStep`. Managed compute: the
//! endpoint first, then the deployment, then all traffic to it; an instance type or model change
//! creates a new deployment beside the serving one and moves the traffic once it is ready, then
//! deletes the old one (no interval in which nothing serves); an instance count change goes in
//! place. Serverless: the marketplace subscription (when the model needs one and the
//! AIWorkspace allows it), then the endpoint. Both: the model, instance type and VM quota are
//! checked before any write; one operation at a time per endpoint; the endpoint key goes to
//! Key Vault; deletion in reverse order. The executor (`reconcile::ml`) only carries steps out.

use super::status::{EventSpec, set_condition};
use crate::azure::arm::Poll;
use crate::azure::ml::{FamilyUsage, ModelRef, RegistryModel, VmSize, WorkspaceId};
use crate::crd::{
    DeletionPolicy, KeyVaultSecretRef, LastError, ManagedComputeSpec, MarketplacePolicy,
    ModelDeploymentStatus, OperationKind, PendingOperation, Probe, ResolvedModel, ServerlessSpec,
    online_deployment_name,
};
use crate::error::{AzureError, ErrorClass};
use crate::reason::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Tag naming the resource that owns an Azure resource (as on Cognitive Services deployments).
pub const OWNER_TAG: &str = "aoai.dev-owner";

// ------------------------------------------------------------------ the snapshot

/// A fact the pass has or has not read yet.
#[derive(Clone, Debug, PartialEq)]
pub enum Known<T> {
    Unknown,
    Known(T),
}

impl<T> Known<T> {
    pub fn get(&self) -> Option<&T> {
        match self {
            Known::Unknown => None,
            Known::Known(t) => Some(t),
        }
    }
}

/// Which form, with its spec.
#[derive(Clone, Debug, PartialEq)]
pub enum Form {
    ManagedCompute(ManagedComputeSpec),
    Serverless(ServerlessSpec),
}

/// The ModelDeployment as read from Kubernetes.
#[derive(Clone, Debug, PartialEq)]
pub struct MlResource {
    pub owner: String,
    pub generation: i64,
    pub form: Form,
    pub endpoint_name: String,
    pub deletion_policy: DeletionPolicy,
    pub adopt_existing: bool,
    pub status: ModelDeploymentStatus,
}

/// The AIWorkspace, as far as its ModelDeployments are concerned.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct WorkspaceFacts {
    pub exists: bool,
    pub deleting: bool,
    pub namespace_allowed: bool,
    pub id: Option<WorkspaceId>,
    /// The Azure workspace's region (None until read).
    pub location: Option<String>,
    pub marketplace: MarketplacePolicy,
    pub vault_uri: String,
    pub secret_prefix: String,
}

/// Timing the policy needs.
#[derive(Clone, Debug, PartialEq)]
pub struct MlTiming {
    pub poll_interval: Duration,
    pub resync: Duration,
    pub backoff: Duration,
}

/// What the pass knows.
#[derive(Clone, Debug, PartialEq)]
pub struct MlSnapshot {
    pub md: MlResource,
    pub workspace: WorkspaceFacts,
    pub credential_error: Option<String>,
    /// A read that failed in this pass.
    pub read_error: Option<AzureError>,
    /// A write Azure refused in this pass.
    pub write_error: Option<AzureError>,
    /// The pending operation's poll in this pass.
    pub poll: Known<Result<Poll, AzureError>>,
    /// The online or serverless endpoint (None: absent).
    pub endpoint: Known<Option<Value>>,
    /// managedCompute: the endpoint's deployments.
    pub deployments: Known<Vec<Value>>,
    /// The catalogue's entry of the model (None: no such model).
    pub model: Known<Option<RegistryModel>>,
    /// managedCompute: the instance type among the region's VM sizes (None: not offered).
    pub vm: Known<Option<VmSize>>,
    /// managedCompute: the vCPU quota of the instance type's family (None: no quota at all).
    pub quota: Known<Option<FamilyUsage>>,
    /// serverless: the workspace's marketplace subscription to the model (None: absent).
    pub marketplace: Known<Option<Value>>,
    /// The Key Vault secret now holding the endpoint's key (after `StoreKey`).
    pub stored_key: Option<KeyVaultSecretRef>,
    pub now: String,
    pub timing: MlTiming,
    pub deleting: bool,
}

// ------------------------------------------------------------------ steps

/// What to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlNeed {
    Poll,
    Endpoint,
    Deployments,
    Model,
    VmSize,
    Quota,
    Marketplace,
}

/// An Azure write.
#[derive(Clone, Debug, PartialEq)]
pub struct MlWriteStep {
    pub kind: OperationKind,
    /// ARM id of the resource written.
    pub target: String,
    /// PUT body; None = DELETE.
    pub body: Option<Value>,
    /// For events and logs: what the write does.
    pub what: String,
}

/// How the pass ends.
#[derive(Clone, Debug, PartialEq)]
pub struct MlFinish {
    pub status: ModelDeploymentStatus,
    pub requeue: Option<Duration>,
    pub events: Vec<EventSpec>,
    /// Deletion only: the finalizer may go.
    pub release: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MlStep {
    Observe(MlNeed),
    /// The pending operation succeeded: forget it and what it changed, and decide again.
    EndOperation,
    Write(MlWriteStep),
    /// listKeys of the endpoint, into Key Vault.
    StoreKey {
        endpoint_id: String,
        vault_uri: String,
        secret_name: String,
    },
    Finish(MlFinish),
}

// ------------------------------------------------------------------ helpers

fn owner_of(v: &Value) -> Option<&str> {
    v["tags"][OWNER_TAG].as_str()
}

fn state_of(v: &Value) -> &str {
    v["properties"]["provisioningState"]
        .as_str()
        .unwrap_or("Succeeded")
}

fn is_terminal(state: &str) -> bool {
    matches!(
        state.to_ascii_lowercase().as_str(),
        "succeeded" | "failed" | "canceled" | "cancelled"
    )
}

fn failed(state: &str) -> bool {
    matches!(
        state.to_ascii_lowercase().as_str(),
        "failed" | "canceled" | "cancelled"
    )
}

/// The body of a write that starts from what Azure holds: read-only fields dropped.
fn writable(observed: &Value) -> Value {
    let mut v = observed.clone();
    if let Some(o) = v.as_object_mut() {
        for ro in ["id", "name", "type", "systemData"] {
            o.remove(ro);
        }
    }
    if let Some(p) = v["properties"].as_object_mut() {
        for ro in [
            "provisioningState",
            "scoringUri",
            "swaggerUri",
            "inferenceEndpoint",
            "marketplaceSubscriptionId",
            "endpointState",
        ] {
            p.remove(ro);
        }
    }
    v
}

fn iso_seconds(s: i32) -> String {
    format!("PT{s}S")
}

fn iso_millis(ms: i32) -> String {
    if ms % 1000 == 0 {
        format!("PT{}S", ms / 1000)
    } else {
        format!("PT{}S", f64::from(ms) / 1000.0)
    }
}

/// An ISO 8601 duration of the `PT..H..M..S` form in milliseconds (what Azure returns).
fn iso_ms(s: &str) -> Option<i64> {
    let rest = s.strip_prefix("PT")?;
    let mut total = 0f64;
    let mut num = String::new();
    for c in rest.chars() {
        match c {
            'H' => total += num.parse::<f64>().ok()? * 3_600_000.0,
            'M' => total += num.parse::<f64>().ok()? * 60_000.0,
            'S' => total += num.parse::<f64>().ok()? * 1000.0,
            _ => {
                num.push(c);
                continue;
            }
        }
        num.clear();
    }
    Some(total.round() as i64)
}

fn probe_json(p: &Probe) -> Value {
    let mut m = Map::new();
    if let Some(v) = p.initial_delay_seconds {
        m.insert("initialDelay".into(), json!(iso_seconds(v)));
    }
    if let Some(v) = p.period_seconds {
        m.insert("period".into(), json!(iso_seconds(v)));
    }
    if let Some(v) = p.timeout_seconds {
        m.insert("timeout".into(), json!(iso_seconds(v)));
    }
    if let Some(v) = p.failure_threshold {
        m.insert("failureThreshold".into(), json!(v));
    }
    if let Some(v) = p.success_threshold {
        m.insert("successThreshold".into(), json!(v));
    }
    Value::Object(m)
}

/// The deployment properties the spec sets (and only those), as Azure spells them.
fn managed_properties(mc: &ManagedComputeSpec) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("endpointComputeType".into(), json!("Managed"));
    p.insert("model".into(), json!(mc.model));
    p.insert("instanceType".into(), json!(mc.instance_type));
    if let Some(pr) = &mc.liveness_probe {
        p.insert("livenessProbe".into(), probe_json(pr));
    }
    if let Some(pr) = &mc.readiness_probe {
        p.insert("readinessProbe".into(), probe_json(pr));
    }
    if let Some(r) = &mc.request_settings {
        let mut m = Map::new();
        if let Some(v) = r.max_concurrent_requests_per_instance {
            m.insert("maxConcurrentRequestsPerInstance".into(), json!(v));
        }
        if let Some(v) = r.request_timeout_ms {
            m.insert("requestTimeout".into(), json!(iso_millis(v)));
        }
        if let Some(v) = r.max_queue_wait_ms {
            m.insert("maxQueueWait".into(), json!(iso_millis(v)));
        }
        p.insert("requestSettings".into(), Value::Object(m));
    }
    if let Some(s) = &mc.scale_settings {
        let mut m = Map::new();
        m.insert(
            "scaleType".into(),
            json!(match s.scale_type {
                crate::crd::ScaleType::Default => "Default",
                crate::crd::ScaleType::TargetUtilization => "TargetUtilization",
            }),
        );
        if let Some(v) = s.min_instances {
            m.insert("minInstances".into(), json!(v));
        }
        if let Some(v) = s.max_instances {
            m.insert("maxInstances".into(), json!(v));
        }
        if let Some(v) = s.target_utilization_percentage {
            m.insert("targetUtilizationPercentage".into(), json!(v));
        }
        if let Some(v) = s.polling_interval_seconds {
            m.insert("pollingInterval".into(), json!(iso_seconds(v)));
        }
        p.insert("scaleSettings".into(), Value::Object(m));
    }
    if !mc.environment_variables.is_empty() {
        p.insert(
            "environmentVariables".into(),
            json!(mc.environment_variables),
        );
    }
    p
}

/// Whether Azure's value holds what the spec asks for (durations compared as durations,
/// objects on the keys the spec sets, names case-insensitively).
fn holds(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| holds(v, h.get(k).unwrap_or(&Value::Null))),
        (Value::String(w), Value::String(h)) => {
            w.eq_ignore_ascii_case(h)
                || matches!((iso_ms(w), iso_ms(h)), (Some(a), Some(b)) if a == b)
        }
        (Value::Number(w), Value::Number(h)) => w.as_f64() == h.as_f64(),
        _ => want == have,
    }
}

/// What of the spec the observed deployment does not hold (field names), for in-place updates.
pub fn managed_drift(mc: &ManagedComputeSpec, observed: &Value) -> Vec<String> {
    let mut out = vec![];
    if observed["sku"]["capacity"].as_i64() != Some(i64::from(mc.instance_count)) {
        out.push("instanceCount".to_string());
    }
    let props = &observed["properties"];
    for (k, v) in managed_properties(mc) {
        if !holds(&v, &props[&k]) {
            out.push(k);
        }
    }
    out
}

fn owner_tags(owner: &str, observed: Option<&Value>) -> Value {
    let mut tags = observed
        .and_then(|o| o["tags"].as_object().cloned())
        .unwrap_or_default();
    tags.insert(OWNER_TAG.into(), json!(owner));
    Value::Object(tags)
}

/// The PUT body of the deployment: Azure's own body (when it exists) with the spec applied.
pub fn deployment_body(
    s: &MlSnapshot,
    mc: &ManagedComputeSpec,
    location: &str,
    observed: Option<&Value>,
) -> Value {
    let mut body = observed.map(writable).unwrap_or_else(|| json!({}));
    body["location"] = json!(
        observed
            .and_then(|o| o["location"].as_str())
            .unwrap_or(location)
    );
    body["tags"] = owner_tags(&s.md.owner, observed);
    let sku_name = observed
        .and_then(|o| o["sku"]["name"].as_str())
        .unwrap_or("Default");
    body["sku"] = json!({"name": sku_name, "capacity": mc.instance_count});
    if !body["properties"].is_object() {
        body["properties"] = json!({});
    }
    for (k, v) in managed_properties(mc) {
        match (&mut body["properties"][&k], v) {
            (Value::Object(have), Value::Object(want)) => {
                for (kk, vv) in want {
                    have.insert(kk, vv);
                }
            }
            (slot, v) => *slot = v,
        }
    }
    body
}

fn endpoint_body(
    s: &MlSnapshot,
    location: &str,
    observed: Option<&Value>,
    traffic: Option<Value>,
) -> Value {
    let mut body = observed.map(writable).unwrap_or_else(|| json!({}));
    body["location"] = json!(
        observed
            .and_then(|o| o["location"].as_str())
            .unwrap_or(location)
    );
    body["tags"] = owner_tags(&s.md.owner, observed);
    if !body["identity"].is_object() {
        body["identity"] = json!({"type": "SystemAssigned"});
    }
    if !body["properties"].is_object() {
        body["properties"] = json!({});
    }
    if body["properties"]["authMode"].is_null() {
        body["properties"]["authMode"] = json!("Key");
    }
    if let Some(t) = traffic {
        body["properties"]["traffic"] = t;
    }
    body
}

fn traffic_of(endpoint: &Value) -> BTreeMap<String, i32> {
    endpoint["properties"]["traffic"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0) as i32))
                .collect()
        })
        .unwrap_or_default()
}

/// The marketplace subscription's name for a model: one per model and workspace, shared by
/// every serverless endpoint of it.
pub fn marketplace_subscription_name(model: &ModelRef) -> String {
    let n: String = model
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(50)
        .collect();
    n.trim_matches('-').to_string()
}

/// The Key Vault secret of an endpoint's key.
pub fn secret_name(prefix: &str, endpoint: &str) -> String {
    let p: String = prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{}-{endpoint}", p.trim_matches('-'))
}

// ------------------------------------------------------------------ finishing

struct Ending<'a> {
    s: &'a MlSnapshot,
    st: ModelDeploymentStatus,
    events: Vec<EventSpec>,
}

impl<'a> Ending<'a> {
    fn new(s: &'a MlSnapshot) -> Self {
        let mut st = s.md.status.clone();
        st.observed_generation = Some(s.md.generation);
        st.endpoint_name = Some(s.md.endpoint_name.clone());
        if let Some(k) = &s.stored_key {
            st.key_vault_secret = Some(k.clone());
        }
        Ending {
            s,
            st,
            events: vec![],
        }
    }

    fn ready(&mut self, ok: bool, reason: &str, message: &str) {
        let prev = super::status::ready_condition(&self.st.conditions).cloned();
        set_condition(
            &mut self.st.conditions,
            "Ready",
            ok,
            reason,
            message,
            Some(self.s.md.generation),
            &self.s.now,
        );
        let changed = prev
            .is_none_or(|p| p.reason != reason || p.status != (if ok { "True" } else { "False" }));
        if changed && !ok && !is_progress(reason) {
            self.events
                .push(EventSpec::warning(reason, "Reconcile", message.to_string()));
        }
        if changed && ok {
            self.st.last_sync_time = Some(self.s.now.clone());
        }
    }

    fn end(self, requeue: Option<Duration>) -> MlStep {
        MlStep::Finish(MlFinish {
            status: self.st,
            requeue,
            events: self.events,
            release: false,
        })
    }

    fn release(mut self, event: EventSpec) -> MlStep {
        self.events.push(event);
        MlStep::Finish(MlFinish {
            status: self.st,
            requeue: None,
            events: self.events,
            release: true,
        })
    }
}

fn is_progress(reason: &str) -> bool {
    [
        CREATING,
        UPDATING,
        DELETING,
        PROVISIONING,
        WAITING_FOR_AZURE,
    ]
    .contains(&reason)
}

/// The reason and requeue of a failed Azure call.
fn failure(e: &AzureError, t: &MlTiming) -> (String, Option<Duration>, bool) {
    match e.class {
        ErrorClass::Transient => {
            let reason = if e.is_throttled() {
                AZURE_THROTTLED
            } else if e.status == Some(409) || e.code.eq_ignore_ascii_case("Conflict") {
                WAITING_FOR_AZURE
            } else if e.status.is_none() {
                AZURE_UNREACHABLE
            } else {
                AZURE_UNAVAILABLE
            };
            let wait = e.retry_after.unwrap_or(t.backoff).max(t.backoff);
            (reason.to_string(), Some(wait), false)
        }
        // Not the spec's fault: retried at resync (the role may be granted meanwhile).
        ErrorClass::Auth => (AUTHORIZATION_FAILED.to_string(), Some(t.resync), false),
        _ => (e.code.clone(), None, true),
    }
}

/// A rejection before any write: Ready False with a reason, held until the spec changes (or
/// the periodic re-check, quota may free up).
fn reject(s: &MlSnapshot, reason: &str, message: String) -> MlStep {
    let mut e = Ending::new(s);
    e.ready(false, reason, &message);
    e.end(Some(s.timing.resync))
}

// ------------------------------------------------------------------ the policy

pub fn decide_ml(s: &MlSnapshot) -> MlStep {
    let w = &s.workspace;
    if !w.exists {
        return reject_or_release(s, WORKSPACE_NOT_FOUND, "the AIWorkspace named in spec.workspaceRef does not exist: ask the platform team for the workspace's name (kubectl get aiworkspaces)".into());
    }
    if !w.namespace_allowed {
        return reject_or_release(s, NAMESPACE_NOT_ALLOWED, "the AIWorkspace does not allow this namespace: ask the platform team to add it to spec.allowedNamespaces".into());
    }
    if w.deleting && !s.deleting {
        return reject(
            s,
            WORKSPACE_DELETING,
            "the AIWorkspace is being deleted: no new deployments go to it".into(),
        );
    }
    if let Some(msg) = &s.credential_error {
        return reject_or_release(s, CREDENTIAL_ERROR, msg.clone());
    }
    if w.location.is_none() && !s.deleting {
        // Its AIWorkspace turning Ready triggers this resource again.
        return reject(s, WORKSPACE_NOT_READY, "the AIWorkspace is not Ready (its Azure workspace and region are not confirmed yet): see kubectl describe aiworkspace".into());
    }
    if let Some(e) = &s.read_error {
        let (reason, requeue, _) = failure(e, &s.timing);
        let mut end = Ending::new(s);
        end.ready(false, &reason, &e.to_string());
        return end.end(requeue.or(Some(s.timing.resync)));
    }
    // An operation in flight: nothing else is written to the endpoint until it ends.
    if let Some(op) = &s.md.status.pending_operation {
        match &s.poll {
            Known::Unknown => return MlStep::Observe(MlNeed::Poll),
            Known::Known(Ok(Poll::Succeeded)) => return MlStep::EndOperation,
            Known::Known(Ok(Poll::InProgress { retry_after })) => {
                let mut end = Ending::new(s);
                end.ready(
                    false,
                    op.kind.progress_reason(),
                    &format!(
                        "Azure is running the {} of {}",
                        op.kind.as_str(),
                        op.target.as_deref().unwrap_or("the endpoint")
                    ),
                );
                // The executor's poll clock (Azure's Retry-After, the learned duration of such
                // operations) says when the next poll is due.
                let wait = retry_after
                    .unwrap_or(s.timing.poll_interval)
                    .min(s.timing.resync);
                return end.end(Some(wait));
            }
            Known::Known(Ok(Poll::Failed { code, message })) => {
                let e = AzureError::operation_failed("ml.operation", code.clone(), message.clone());
                return operation_failed(s, op, &e);
            }
            Known::Known(Err(e)) => {
                let (reason, requeue, _) = failure(e, &s.timing);
                let mut end = Ending::new(s);
                end.ready(false, &reason, &e.to_string());
                return end.end(requeue.or(Some(s.timing.poll_interval)));
            }
        }
    }
    if let Some(e) = &s.write_error {
        return write_refused(s, e);
    }
    if s.deleting {
        return decide_delete(s);
    }
    if let Some(le) = &s.md.status.last_error
        && le.generation == Some(s.md.generation)
    {
        // Azure refused this generation: a human must change the spec.
        let mut end = Ending::new(s);
        end.ready(
            false,
            &le.code,
            &format!(
                "{} — fix the spec; nothing is retried for this generation",
                le.message
            ),
        );
        return end.end(None);
    }
    let Known::Known(endpoint) = &s.endpoint else {
        return MlStep::Observe(MlNeed::Endpoint);
    };
    if let Some(ep) = endpoint
        && let Some(step) = foreign(s, ep)
    {
        return step;
    }
    match &s.md.form {
        Form::ManagedCompute(mc) => decide_managed(s, mc, endpoint.as_ref()),
        Form::Serverless(sv) => decide_serverless(s, sv, endpoint.as_ref()),
    }
}

/// In deletion, a blocked resource lets its finalizer go (nothing of it can be deleted).
fn reject_or_release(s: &MlSnapshot, reason: &str, message: String) -> MlStep {
    if s.deleting {
        return Ending::new(s).release(EventSpec::warning(
            NOT_DELETED_IN_AZURE,
            "Delete",
            format!(
                "the Azure endpoint {} was not deleted: {message}",
                s.md.endpoint_name
            ),
        ));
    }
    reject(s, reason, message)
}

/// An endpoint this resource does not own: refused (or adopted with adoptExisting).
fn foreign(s: &MlSnapshot, ep: &Value) -> Option<MlStep> {
    match owner_of(ep) {
        Some(o) if o == s.md.owner => None,
        None if s.md.adopt_existing && s.deleting => None,
        // Adopted: tagged ours first, by a write that keeps everything Azure holds.
        None if s.md.adopt_existing => Some(adopt(s, ep)),
        owner => {
            if s.deleting {
                return Some(Ending::new(s).release(EventSpec::normal(
                    LEFT_IN_PLACE,
                    "Delete",
                    format!(
                        "the Azure endpoint {} is not this resource's; left in place",
                        s.md.endpoint_name
                    ),
                )));
            }
            Some(match owner {
                Some(o) => reject(
                    s,
                    OWNED_BY_ANOTHER_RESOURCE,
                    format!(
                        "Azure endpoint {} belongs to {o}: choose another endpointName",
                        s.md.endpoint_name
                    ),
                ),
                None => reject(
                    s,
                    ADOPTION_REFUSED,
                    format!(
                        "an Azure endpoint {} exists that no resource owns: set spec.adoptExisting: true to take it over, or choose another endpointName",
                        s.md.endpoint_name
                    ),
                ),
            })
        }
    }
}

fn adopt(s: &MlSnapshot, ep: &Value) -> MlStep {
    let state = state_of(ep);
    if !is_terminal(state) {
        return wait_provisioning(s, &format!("endpoint {}", s.md.endpoint_name), state);
    }
    let ws = s
        .workspace
        .id
        .clone()
        .expect("an existing workspace has coordinates");
    let (target, body) = match &s.md.form {
        Form::ManagedCompute(_) => {
            let location = s.workspace.location.clone().unwrap_or_default();
            (
                ws.online_endpoint(&s.md.endpoint_name),
                endpoint_body(s, &location, Some(ep), None),
            )
        }
        Form::Serverless(_) => {
            let mut body = writable(ep);
            body["tags"] = owner_tags(&s.md.owner, Some(ep));
            (ws.serverless_endpoint(&s.md.endpoint_name), body)
        }
    };
    write(
        s,
        OperationKind::Adopt,
        target,
        Some(body),
        format!("adopt endpoint {} (adoptExisting)", s.md.endpoint_name),
    )
}

fn operation_failed(s: &MlSnapshot, op: &PendingOperation, e: &AzureError) -> MlStep {
    let mut end = Ending::new(s);
    end.st.pending_operation = None;
    let (reason, requeue, terminal) = failure(e, &s.timing);
    let message = format!(
        "Azure's {} of {} failed: {}: {}",
        op.kind.as_str(),
        op.target.as_deref().unwrap_or("the endpoint"),
        e.code,
        e.message
    );
    if terminal && !s.deleting {
        end.st.last_error = Some(LastError {
            code: e.code.clone(),
            message: e.message.clone(),
            generation: Some(s.md.generation),
            account_generation: None,
            at: s.now.clone(),
        });
    }
    end.ready(false, &reason, &message);
    end.end(requeue.or(Some(s.timing.resync)))
}

fn write_refused(s: &MlSnapshot, e: &AzureError) -> MlStep {
    let mut end = Ending::new(s);
    let (reason, requeue, terminal) = failure(e, &s.timing);
    if terminal && !s.deleting {
        end.st.last_error = Some(LastError {
            code: e.code.clone(),
            message: e.message.clone(),
            generation: Some(s.md.generation),
            account_generation: None,
            at: s.now.clone(),
        });
    }
    end.ready(false, &reason, &e.to_string());
    end.end(requeue.or(Some(s.timing.resync)))
}

fn write(
    s: &MlSnapshot,
    kind: OperationKind,
    target: String,
    body: Option<Value>,
    what: String,
) -> MlStep {
    let _ = s;
    MlStep::Write(MlWriteStep {
        kind,
        target,
        body,
        what,
    })
}

fn wait_provisioning(s: &MlSnapshot, what: &str, state: &str) -> MlStep {
    let mut end = Ending::new(s);
    end.ready(false, PROVISIONING, &format!("{what} is {state} in Azure"));
    end.end(Some(s.timing.poll_interval))
}

/// An existing resource that does not serve yet: wait while Azure provisions it, repair it (a PUT
/// of `repair`) when its provisioning failed; None when it has succeeded.
fn unsettled(
    s: &MlSnapshot,
    what: &str,
    id: &str,
    observed: &Value,
    repair: impl FnOnce() -> Value,
) -> Option<MlStep> {
    let state = state_of(observed);
    if !is_terminal(state) {
        return Some(wait_provisioning(s, what, state));
    }
    failed(state).then(|| {
        write(
            s,
            OperationKind::Repair,
            id.to_string(),
            Some(repair()),
            format!("repair {what}"),
        )
    })
}

/// The model, instance type and quota checks before a managed-compute write; None = pass.
fn check_managed(s: &MlSnapshot, mc: &ManagedComputeSpec, held_vcpus: u64) -> Option<MlStep> {
    let Known::Known(model) = &s.model else {
        return Some(MlStep::Observe(MlNeed::Model));
    };
    let Some(model) = model else {
        return Some(reject(
            s,
            MODEL_NOT_FOUND,
            format!(
                "model {} is not in its registry's catalogue: check spec.managedCompute.model (registry, name and version)",
                mc.model
            ),
        ));
    };
    if model.managed_compute_skus.is_empty() {
        let hint = if model.serverless {
            " It is offered as a serverless API: use spec.serverless instead."
        } else {
            ""
        };
        return Some(reject(
            s,
            MODEL_NOT_OFFERED,
            format!(
                "model {} is not offered on managed compute.{hint}",
                mc.model
            ),
        ));
    }
    if !model
        .managed_compute_skus
        .iter()
        .any(|k| k.eq_ignore_ascii_case(&mc.instance_type))
    {
        return Some(reject(
            s,
            INSTANCE_TYPE_NOT_SUPPORTED,
            format!(
                "instance type {} is not supported for model {}: it needs one of {}. Fix spec.managedCompute.instanceType",
                mc.instance_type,
                mc.model,
                model.managed_compute_skus.join(", ")
            ),
        ));
    }
    let Known::Known(vm) = &s.vm else {
        return Some(MlStep::Observe(MlNeed::VmSize));
    };
    let Some(vm) = vm else {
        return Some(reject(
            s,
            INSTANCE_TYPE_NOT_SUPPORTED,
            format!(
                "instance type {} is not a VM size managed online endpoints offer in {}: fix spec.managedCompute.instanceType",
                mc.instance_type,
                s.workspace
                    .location
                    .as_deref()
                    .unwrap_or("the workspace's region")
            ),
        ));
    };
    let Known::Known(quota) = &s.quota else {
        return Some(MlStep::Observe(MlNeed::Quota));
    };
    // Azure reserves 20 % extra instances for upgrades.
    let reserved = (u64::from(mc.instance_count as u32) * 6).div_ceil(5) * u64::from(vm.vcpus);
    let (current, limit) = quota.as_ref().map_or((0, 0), |q| (q.current, q.limit));
    let available = limit.saturating_sub(current.saturating_sub(held_vcpus));
    if reserved > available {
        return Some(reject(
            s,
            INSUFFICIENT_QUOTA,
            format!(
                "{} × {} needs {reserved} vCPUs of family {} (instances + 20 % Azure reserves for upgrades), but only {available} of the limit {limit} are free in {}: lower spec.managedCompute.instanceCount, free quota, or request more VM quota for the family",
                mc.instance_count,
                vm.name,
                vm.family,
                s.workspace.location.as_deref().unwrap_or("the region")
            ),
        ));
    }
    None
}

fn decide_managed(s: &MlSnapshot, mc: &ManagedComputeSpec, endpoint: Option<&Value>) -> MlStep {
    let ws = s
        .workspace
        .id
        .clone()
        .expect("an existing workspace has coordinates");
    let location = s.workspace.location.clone().unwrap_or_default();
    let ep_id = ws.online_endpoint(&s.md.endpoint_name);
    let desired = online_deployment_name(&mc.model, &mc.instance_type);
    let Some(ep) = endpoint else {
        if let Some(step) = check_managed(s, mc, 0) {
            return step;
        }
        return write(
            s,
            OperationKind::Create,
            ep_id,
            Some(endpoint_body(s, &location, None, None)),
            format!("create online endpoint {}", s.md.endpoint_name),
        );
    };
    if let Some(step) = unsettled(
        s,
        &format!("online endpoint {}", s.md.endpoint_name),
        &ep_id,
        ep,
        || endpoint_body(s, &location, Some(ep), None),
    ) {
        return step;
    }
    let Known::Known(deps) = &s.deployments else {
        return MlStep::Observe(MlNeed::Deployments);
    };
    let name_of = |d: &Value| d["name"].as_str().unwrap_or_default().to_string();
    let current = deps
        .iter()
        .find(|d| name_of(d).eq_ignore_ascii_case(&desired));
    let dep_id = ws.online_deployment(&s.md.endpoint_name, &desired);
    let Some(dep) = current else {
        // vCPUs of the same family already held by this endpoint's deployments stay held
        // while the new one is created beside them.
        if let Some(step) = check_managed(s, mc, 0) {
            return step;
        }
        return write(
            s,
            OperationKind::Create,
            dep_id,
            Some(deployment_body(s, mc, &location, None)),
            format!(
                "create deployment {desired} ({} × {})",
                mc.instance_count, mc.instance_type
            ),
        );
    };
    let dep_state = state_of(dep);
    if let Some(step) = unsettled(s, &format!("deployment {desired}"), &dep_id, dep, || {
        deployment_body(s, mc, &location, Some(dep))
    }) {
        return step;
    }
    let drift = managed_drift(mc, dep);
    if !drift.is_empty() {
        let have = dep["sku"]["capacity"].as_i64().unwrap_or(1);
        if i64::from(mc.instance_count) > have {
            // Only the growth needs new quota: the deployment's own reservation stays.
            let held = dep_vcpus(s, have);
            if let Some(step) = check_managed(s, mc, held) {
                return step;
            }
        }
        return write(
            s,
            OperationKind::Update,
            dep_id,
            Some(deployment_body(s, mc, &location, Some(dep))),
            format!(
                "update deployment {desired} in place ({})",
                drift.join(", ")
            ),
        );
    }
    let traffic = traffic_of(ep);
    let want: BTreeMap<String, i32> = [(desired.clone(), 100)].into();
    if traffic != want {
        return write(
            s,
            OperationKind::Update,
            ep_id,
            Some(endpoint_body(
                s,
                &location,
                Some(ep),
                Some(json!({desired.clone(): 100})),
            )),
            format!("route 100 % of traffic to deployment {desired}"),
        );
    }
    // The traffic is on the desired deployment: older ones (instance type or model changes) go.
    if let Some(old) = deps
        .iter()
        .find(|d| !name_of(d).eq_ignore_ascii_case(&desired))
    {
        let old_name = name_of(old);
        if !is_terminal(state_of(old)) {
            return wait_provisioning(s, &format!("deployment {old_name}"), state_of(old));
        }
        return write(
            s,
            OperationKind::Delete,
            ws.online_deployment(&s.md.endpoint_name, &old_name),
            None,
            format!("delete deployment {old_name}, which serves no traffic any more"),
        );
    }
    if s.md.status.key_vault_secret.is_none() && s.stored_key.is_none() {
        return MlStep::StoreKey {
            endpoint_id: ep_id,
            vault_uri: s.workspace.vault_uri.clone(),
            secret_name: secret_name(&s.workspace.secret_prefix, &s.md.endpoint_name),
        };
    }
    let mut end = Ending::new(s);
    end.st.azure_resource_id = ep["id"].as_str().map(str::to_string);
    end.st.scoring_uri = ep["properties"]["scoringUri"].as_str().map(str::to_string);
    end.st.traffic = traffic;
    end.st.deployment_name = Some(desired.clone());
    end.st.instance_type = dep["properties"]["instanceType"]
        .as_str()
        .map(str::to_string);
    end.st.instance_count = dep["sku"]["capacity"].as_i64().map(|c| c as i32);
    end.st.capacity = end.st.instance_count;
    end.st.sku_name = Some("ManagedCompute".into());
    end.st.provisioning_state = Some(dep_state.to_string());
    end.st.model = ModelRef::parse(&mc.model).map(|m| ResolvedModel {
        format: Some(m.registry),
        name: Some(m.name),
        version: m.version,
    });
    end.st.last_error = None;
    end.ready(
        true,
        READY,
        &format!(
            "deployment {desired} serves 100 % of endpoint {}",
            s.md.endpoint_name
        ),
    );
    end.end(Some(s.timing.resync))
}

/// vCPUs `instances` of the spec's instance type hold (0 when the size is not known yet).
fn dep_vcpus(s: &MlSnapshot, instances: i64) -> u64 {
    let vcpus =
        s.vm.get()
            .and_then(|v| v.as_ref())
            .map_or(0, |v| u64::from(v.vcpus));
    (instances.max(0) as u64 * 6).div_ceil(5) * vcpus
}

fn decide_serverless(s: &MlSnapshot, sv: &ServerlessSpec, endpoint: Option<&Value>) -> MlStep {
    let ws = s
        .workspace
        .id
        .clone()
        .expect("an existing workspace has coordinates");
    let location = s.workspace.location.clone().unwrap_or_default();
    let ep_id = ws.serverless_endpoint(&s.md.endpoint_name);
    let Some(ep) = endpoint else {
        let Known::Known(model) = &s.model else {
            return MlStep::Observe(MlNeed::Model);
        };
        let Some(model) = model else {
            return reject(
                s,
                MODEL_NOT_FOUND,
                format!(
                    "model {} is not in its registry's catalogue: check spec.serverless.modelId",
                    sv.model_id
                ),
            );
        };
        if !model.serverless {
            let hint = if model.managed_compute_skus.is_empty() {
                ""
            } else {
                " It can run on managed compute: use spec.managedCompute instead."
            };
            return reject(
                s,
                MODEL_NOT_OFFERED,
                format!(
                    "model {} is not offered as a serverless API.{hint}",
                    sv.model_id
                ),
            );
        }
        if let Some(offer) = &model.marketplace_offer {
            let publisher = model.marketplace_publisher().unwrap_or_default();
            if !s.workspace.marketplace.allows(publisher, &sv.model_id) {
                return reject(
                    s,
                    MARKETPLACE_NOT_ALLOWED,
                    format!(
                        "model {} is sold through the Azure Marketplace (offer {offer}) and the AIWorkspace does not allow subscribing to it: ask the platform team to add publisher {publisher} (or the model) to spec.marketplace of the AIWorkspace",
                        sv.model_id
                    ),
                );
            }
            let Known::Known(sub) = &s.marketplace else {
                return MlStep::Observe(MlNeed::Marketplace);
            };
            let mref = ModelRef::parse(&sv.model_id).expect("the CRD pattern");
            let sub_name = marketplace_subscription_name(&mref);
            match sub {
                None => {
                    return write(
                        s,
                        OperationKind::Create,
                        ws.marketplace_subscription(&sub_name),
                        Some(json!({"properties": {"modelId": sv.model_id}})),
                        format!("subscribe the workspace to marketplace offer {offer}"),
                    );
                }
                Some(sub) => {
                    let st = state_of(sub);
                    if !is_terminal(st) {
                        return wait_provisioning(
                            s,
                            &format!("marketplace subscription {sub_name}"),
                            st,
                        );
                    }
                    if failed(st) {
                        return reject(
                            s,
                            MARKETPLACE_SUBSCRIPTION_FAILED,
                            format!(
                                "the workspace's marketplace subscription {sub_name} to {offer} is {st}: check the subscription's billing and the offer's terms in the Azure portal"
                            ),
                        );
                    }
                }
            }
        }
        let body = json!({
            "location": location,
            "tags": owner_tags(&s.md.owner, None),
            "sku": {"name": "Consumption"},
            "properties": {"modelSettings": {"modelId": sv.model_id}, "authMode": "Key"},
        });
        return write(
            s,
            OperationKind::Create,
            ep_id,
            Some(body),
            format!("create serverless endpoint {}", s.md.endpoint_name),
        );
    };
    let st = state_of(ep);
    if let Some(step) = unsettled(
        s,
        &format!("serverless endpoint {}", s.md.endpoint_name),
        &ep_id,
        ep,
        || {
            let mut body = writable(ep);
            body["tags"] = owner_tags(&s.md.owner, Some(ep));
            body
        },
    ) {
        return step;
    }
    if s.md.status.key_vault_secret.is_none() && s.stored_key.is_none() {
        return MlStep::StoreKey {
            endpoint_id: ep_id,
            vault_uri: s.workspace.vault_uri.clone(),
            secret_name: secret_name(&s.workspace.secret_prefix, &s.md.endpoint_name),
        };
    }
    let mut end = Ending::new(s);
    end.st.azure_resource_id = ep["id"].as_str().map(str::to_string);
    end.st.scoring_uri = ep["properties"]["inferenceEndpoint"]["uri"]
        .as_str()
        .map(str::to_string);
    end.st.provisioning_state = Some(st.to_string());
    end.st.sku_name = Some("Serverless".into());
    end.st.model = ModelRef::parse(&sv.model_id).map(|m| ResolvedModel {
        format: Some(m.registry),
        name: Some(m.name),
        version: None,
    });
    end.st.last_error = None;
    end.ready(
        true,
        READY,
        &format!(
            "serverless endpoint {} serves {}",
            s.md.endpoint_name, sv.model_id
        ),
    );
    end.end(Some(s.timing.resync))
}

/// Deletion in reverse order: traffic off, deployments, then the endpoint.
fn decide_delete(s: &MlSnapshot) -> MlStep {
    if s.md.deletion_policy == DeletionPolicy::Retain {
        return Ending::new(s).release(EventSpec::normal(
            RETAINED,
            "Delete",
            format!(
                "deletionPolicy Retain: the Azure endpoint {} is left in place",
                s.md.endpoint_name
            ),
        ));
    }
    let Known::Known(endpoint) = &s.endpoint else {
        return MlStep::Observe(MlNeed::Endpoint);
    };
    let Some(ep) = endpoint else {
        return Ending::new(s).release(EventSpec::normal(
            DELETED,
            "Delete",
            format!("the Azure endpoint {} is deleted", s.md.endpoint_name),
        ));
    };
    if let Some(step) = foreign(s, ep) {
        return step;
    }
    let st = state_of(ep);
    let ws = s
        .workspace
        .id
        .clone()
        .expect("an existing workspace has coordinates");
    let deleting_state = |state: &str| !is_terminal(state);
    if deleting_state(st) {
        return deletion_wait(s, &format!("endpoint {} is {st}", s.md.endpoint_name));
    }
    match &s.md.form {
        Form::Serverless(_) => write(
            s,
            OperationKind::Delete,
            ws.serverless_endpoint(&s.md.endpoint_name),
            None,
            format!("delete serverless endpoint {}", s.md.endpoint_name),
        ),
        Form::ManagedCompute(_) => {
            let ep_id = ws.online_endpoint(&s.md.endpoint_name);
            let Known::Known(deps) = &s.deployments else {
                return MlStep::Observe(MlNeed::Deployments);
            };
            if traffic_of(ep).values().any(|p| *p > 0) {
                let location = s.workspace.location.clone().unwrap_or_default();
                return write(
                    s,
                    OperationKind::Update,
                    ep_id,
                    Some(endpoint_body(s, &location, Some(ep), Some(json!({})))),
                    "route no traffic before the deployments are deleted".into(),
                );
            }
            if let Some(d) = deps.first() {
                let name = d["name"].as_str().unwrap_or_default();
                if deleting_state(state_of(d)) {
                    return deletion_wait(s, &format!("deployment {name} is {}", state_of(d)));
                }
                return write(
                    s,
                    OperationKind::Delete,
                    ws.online_deployment(&s.md.endpoint_name, name),
                    None,
                    format!("delete deployment {name}"),
                );
            }
            write(
                s,
                OperationKind::Delete,
                ep_id,
                None,
                format!("delete online endpoint {}", s.md.endpoint_name),
            )
        }
    }
}

fn deletion_wait(s: &MlSnapshot, what: &str) -> MlStep {
    let mut end = Ending::new(s);
    end.ready(false, DELETING, &format!("waiting for Azure: {what}"));
    end.end(Some(s.timing.poll_interval))
}

/// The operation Azure accepted, as it is kept in status.
pub fn pending_of(
    s: &MlSnapshot,
    w: &MlWriteStep,
    out: &crate::azure::ml::MlWrite,
) -> Option<PendingOperation> {
    (out.async_operation_url.is_some() || out.location_url.is_some()).then(|| PendingOperation {
        kind: w.kind,
        async_operation_url: out.async_operation_url.clone(),
        location_url: if out.async_operation_url.is_none() {
            out.location_url.clone()
        } else {
            None
        },
        started_at: s.now.clone(),
        generation: Some(s.md.generation),
        target: Some(w.target.clone()),
    })
}

#[cfg(test)]
#[path = "ml_tests.rs"]
mod tests;
