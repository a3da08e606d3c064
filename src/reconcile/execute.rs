//! Execute: carry out what the policy decided, and record what it changes in the snapshot —
//! end an operation (its slot hold becomes this pass's guard), take or queue for the write
//! slot, send a write, and finally save the status, publish the events, apply the effects and
//! say when to look again. Nothing is decided here.

use super::observe::Pass;
use super::publish;
use crate::context::Context;
use crate::crd::ModelDeployment;
use crate::error::{Error, Result};
use crate::plan::{Effect, Finish, OpOutcome, OpState, Request, Slot, Then, Write};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::time::{Duration, Instant};

/// Whether the pass runs for the resource (apply) or for its finalizer (deletion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Delete,
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.9..1.1))
}

impl Pass<'_> {
    /// The pending operation ended: stop timing it; its slot hold becomes this pass's guard.
    pub fn end_operation(&mut self, outcome: OpOutcome) {
        let ctx = self.ctx;
        let owner = self.snap.md.owner.clone();
        let succeeded = matches!(outcome, OpOutcome::Succeeded { .. });
        ctx.writes
            .operation_ended(&owner, succeeded, self.snap.md.generation);
        if let OpOutcome::Succeeded {
            accepted: Some(d), ..
        } = &outcome
        {
            ctx.shared.inventory.record(
                self.gate_key(),
                &self.snap.md.deployment_name,
                Some(d.clone()),
            );
        }
        if let OpOutcome::Lost(e) = &outcome {
            tracing::warn!(deployment = %owner, error = %e, "dropping an operation that cannot be followed; reading the deployment");
        }
        self.guard = ctx.writes.gate.operation_ended(self.gate_key(), &owner);
        self.snap.slot = if self.guard.is_some() {
            Slot::Taken
        } else {
            Slot::Free
        };
        let op = match std::mem::replace(&mut self.snap.op, OpState::Idle) {
            OpState::Pending { op, .. } | OpState::Polled { op, .. } => Some(op),
            OpState::Ended { op, .. } => op,
            OpState::Idle => None,
        };
        self.snap.op = OpState::Ended { op, outcome };
    }

    /// Take the account's write slot, or join its queue.
    pub fn take_slot(&mut self) {
        let key = self.gate_key().to_string();
        let owner = &self.snap.md.owner;
        let gate = &self.ctx.writes.gate;
        match gate.try_acquire(&key, owner) {
            Ok(g) => {
                self.guard = Some(g);
                self.snap.slot = Slot::Taken;
            }
            Err(position) => {
                let holder = match gate.view(&key, owner) {
                    crate::azure::lock::SlotView::Busy { holder, .. } => holder,
                    _ => None,
                };
                self.snap.slot = Slot::Busy {
                    holder,
                    position: Some(position),
                };
            }
        }
        self.ctx.update_gate_metrics();
    }

    pub fn evict_holder(&mut self, holder: &str) {
        tracing::warn!(
            holder,
            "releasing the write slot of a deleted ModelDeployment"
        );
        let key = self.gate_key().to_string();
        self.ctx.writes.gate.evict(&key, holder);
        self.snap.holder_exists = None;
        self.snap.slot = Slot::Free;
    }

    pub fn mark_prevalidated(&mut self) {
        let account_generation = self.snap.account.as_ref().map_or(0, |a| a.generation);
        self.ctx.shared.prevalidated.insert(
            self.snap.md.owner.clone(),
            (self.snap.md.generation, account_generation),
        );
        self.snap.prevalidation.passed = true;
    }

    /// Send the write; Azure's answer goes into the snapshot.
    pub async fn write(&mut self, w: Write) -> Result<()> {
        let ctx = self.ctx;
        let (Some((id, _)), Some(cred)) = (&self.account, &self.cred) else {
            return Err(Error::Unsettled(
                "a write without an account and credential".into(),
            ));
        };
        if self.guard.is_none() {
            return Err(Error::Unsettled(
                "a write without the account's write slot".into(),
            ));
        }
        let name = &self.snap.md.deployment_name;
        let arm = &ctx.azure.arm;
        let result = match &w.request {
            Request::Put(body) => arm.put_deployment(cred, id, name, body).await,
            Request::Pause => arm.set_paused(cred, id, name, true).await,
            Request::Resume => arm.set_paused(cred, id, name, false).await,
            Request::Delete => arm.delete_deployment(cred, id, name).await,
        };
        if result.is_ok() {
            self.accepted_at = Some(Instant::now());
        }
        self.snap.write = Some(result);
        Ok(())
    }

    /// Apply the effects, save the status, publish the events; then when to look again.
    pub async fn finish(mut self, mut f: Finish, mode: Mode) -> Result<Action> {
        let ctx = self.ctx;
        if mode == Mode::Apply {
            self.verify(&mut f.status).await;
        }
        let owner = self.snap.md.owner.clone();
        let key = self.gate_key().to_string();
        let mut what = String::new();
        let mut config_map = false;
        for effect in f.effects {
            match effect {
                Effect::HandSlotToOperation { what: w, accepted } => {
                    ctx.writes
                        .operation_accepted(&owner, self.snap.md.generation, accepted);
                    if let Some(op) = &f.status.pending_operation {
                        ctx.writes.operation_running(&owner, op.clone());
                    }
                    if let Some(g) = self.guard.take() {
                        g.hand_to_operation();
                    }
                    what = w;
                }
                Effect::LeaveQueue => {
                    if !key.is_empty() {
                        ctx.writes.gate.leave_queue(&key, &owner);
                    }
                }
                Effect::ConfigMap => config_map = true,
                Effect::ForgetCatalog => ctx.shared.catalogs.invalidate(&key),
                Effect::Record(d) => {
                    ctx.shared
                        .inventory
                        .record(&key, &self.snap.md.deployment_name, d)
                }
                Effect::ForgetPrevalidation => ctx.shared.prevalidated.invalidate(&owner),
            }
        }
        drop(self.guard.take());
        ctx.update_gate_metrics();
        // The status first: it records an operation Azure just accepted, which a restart before
        // it is saved would only see in the account's listing.
        let saved = if f.status != self.snap.md.status {
            super::save_md_status(ctx, self.md, &f.status).await
        } else {
            Ok(())
        };
        if config_map && saved.is_ok() {
            write_config_map(ctx, self.md, &f.status).await?;
        }
        let reference = self.md.object_ref(&());
        for e in &f.events {
            publish(ctx, &reference, e).await;
        }
        saved?;
        let wait = |d: Duration| match mode {
            Mode::Apply => Ok(Action::requeue(d)),
            Mode::Delete => Err(Error::DeletionInProgress {
                message: "waiting for Azure".into(),
                retry_in: d,
            }),
        };
        match f.then {
            Then::Requeue(d) => wait(d),
            Then::Resync => {
                ctx.succeeded(&super::deployment::key_of(self.md));
                wait(jitter(ctx.config.timing.resync))
            }
            Then::FirstPoll { retry_after } => {
                let accepted = self.accepted_at.unwrap_or_else(Instant::now);
                wait(
                    ctx.writes
                        .polls
                        .started_at(&key, &what, &owner, retry_after, accepted),
                )
            }
            Then::Retry(e) => Err(Error::Azure(e)),
            Then::Released => Ok(Action::await_change()),
            Then::DeletionWait(d) => Err(Error::DeletionInProgress {
                message: "waiting for Azure or the account's write slot".into(),
                retry_in: d,
            }),
        }
    }
}

impl Pass<'_> {
    /// The `Verified` check `plan::verify` asks for, its outcome recorded in `status`.
    async fn verify(&self, status: &mut crate::crd::ModelDeploymentStatus) {
        use crate::plan::verify;
        let ctx = self.ctx;
        let spec = &self.snap.md.spec;
        let account_default = match ctx.account(&spec.account_ref.name).await {
            Ok(Some(a)) => a.spec.verify_deployments,
            _ => false,
        };
        let wanted = verify::wanted(spec, account_default);
        verify::forget(status, wanted);
        let generation = self.snap.md.generation;
        let Some(probe) = verify::probe(spec, status, generation, wanted) else {
            return;
        };
        let (Some(cred), Some(endpoint), Some(kv)) = (
            self.cred.as_ref(),
            status.endpoint.clone(),
            status.key_vault_secret.clone(),
        ) else {
            return;
        };
        let outcome = match ctx
            .azure
            .keyvault
            .get_secret(cred, &kv.vault_uri, &kv.name)
            .await
        {
            Ok(Some(secret)) => match secret.value {
                Some(v) => {
                    crate::azure::dataplane::probe(
                        &ctx.azure.http,
                        &endpoint,
                        &self.snap.md.deployment_name,
                        &ctx.config.openai_api_version,
                        &crate::azure::auth::Secret::new(v),
                        probe,
                    )
                    .await
                }
                None => verify::ProbeOutcome::Transient,
            },
            _ => verify::ProbeOutcome::Transient,
        };
        verify::record(status, &outcome, generation, &super::now_rfc3339());
    }
}

/// Connection settings for apps (never the key).
pub(super) async fn write_config_map(
    ctx: &Context,
    md: &ModelDeployment,
    st: &crate::crd::ModelDeploymentStatus,
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
    let app: Vec<(&str, String)> = match md.spec.method() {
        crate::crd::Method::Cognitive => vec![
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
        ],
        // Azure ML: the URI to call and the endpoint; the key in Key Vault as for the others.
        _ => vec![
            (
                "AZURE_ML_SCORING_URI",
                st.scoring_uri.clone().unwrap_or_default(),
            ),
            (
                "AZURE_ML_ENDPOINT_NAME",
                st.endpoint_name.clone().unwrap_or_default(),
            ),
        ],
    };
    let data: std::collections::BTreeMap<String, String> = app
        .into_iter()
        .chain([
            ("AZURE_KEY_VAULT_URI", kv.vault_uri.clone()),
            ("AZURE_KEY_VAULT_SECRET_NAME", kv.name.clone()),
            ("AZURE_KEY_VAULT_SECRET_URI", secret_uri),
        ])
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client(), &ns);
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
