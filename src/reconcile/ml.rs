//! The Azure ML forms of a ModelDeployment (`managedCompute`, `serverless`): observe (the
//! AIWorkspace, then what `plan::ml::decide_ml` asks to read: the endpoint, its deployments,
//! the registry model, the region's VM sizes and quota, the marketplace subscription, the
//! pending operation's progress) → decide → execute (the write, the key into Key Vault, the
//! status by server-side apply, the events). Nothing is decided here.

use super::execute::Mode;
use super::observe::allows_namespace;
use super::{now_rfc3339, publish};
use crate::azure::arm::Poll;
use crate::azure::auth::TokenCredential;
use crate::azure::ml::{MlClient, ModelRef, WorkspaceId};
use crate::context::Context;
use crate::crd::{AIWorkspace, KeyVaultSecretRef, Method, ModelDeployment, default_endpoint_name};
use crate::error::{AzureError, Error, Result};
use crate::plan::ml::{
    Form, Known, MlNeed, MlResource, MlSnapshot, MlStep, MlTiming, MlWriteStep, WorkspaceFacts,
    decide_ml, marketplace_subscription_name, pending_of,
};
use crate::plan::status::EventSpec;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::sync::Arc;

/// A pass that has not settled after this many steps is a bug in the policy.
const MAX_STEPS: usize = 24;

/// The Azure coordinates of an AIWorkspace.
pub fn workspace_id(w: &AIWorkspace) -> WorkspaceId {
    WorkspaceId {
        subscription_id: w.spec.subscription_id.clone(),
        resource_group: w.spec.resource_group.clone(),
        name: w.spec.workspace_name.clone(),
    }
}

/// The Azure endpoint name of an ML-form ModelDeployment.
pub fn endpoint_name(md: &ModelDeployment) -> String {
    let given = match md.spec.method() {
        Method::ManagedCompute => md
            .spec
            .managed_compute
            .as_ref()
            .and_then(|m| m.endpoint_name.clone()),
        Method::Serverless => md
            .spec
            .serverless
            .as_ref()
            .and_then(|s| s.endpoint_name.clone()),
        Method::Cognitive => None,
    };
    given.unwrap_or_else(|| {
        default_endpoint_name(
            md.metadata.namespace.as_deref().unwrap_or("default"),
            &md.name_any(),
        )
    })
}

struct MlPass<'a> {
    ctx: &'a Context,
    md: &'a ModelDeployment,
    snap: MlSnapshot,
    cred: Option<Arc<TokenCredential>>,
    /// Events of the writes this pass made (published with the pass's own).
    events: Vec<EventSpec>,
}

pub async fn run(md: &ModelDeployment, ctx: &Context, mode: Mode) -> Result<Action> {
    let mut pass = MlPass::start(ctx, md, mode).await?;
    for _ in 0..MAX_STEPS {
        let step = decide_ml(&pass.snap);
        tracing::trace!(deployment = %pass.snap.md.owner, ?step, "decided");
        match step {
            MlStep::Observe(need) => pass.fetch(need).await,
            MlStep::EndOperation => pass.end_operation(),
            MlStep::Write(w) => pass.write(w).await,
            MlStep::StoreKey {
                endpoint_id,
                vault_uri,
                secret_name,
            } => pass.store_key(&endpoint_id, &vault_uri, &secret_name).await,
            MlStep::Finish(f) => return pass.finish(f, mode).await,
        }
    }
    Err(Error::Unsettled(format!(
        "{} did not settle in {MAX_STEPS} steps",
        pass.snap.md.owner
    )))
}

impl<'a> MlPass<'a> {
    async fn start(ctx: &'a Context, md: &'a ModelDeployment, mode: Mode) -> Result<MlPass<'a>> {
        let ns = md.namespace().unwrap_or_else(|| "default".into());
        let form = match (&md.spec.managed_compute, &md.spec.serverless) {
            (Some(mc), _) => Form::ManagedCompute(mc.clone()),
            (None, Some(sv)) => Form::Serverless(sv.clone()),
            (None, None) => {
                return Err(Error::Config(format!(
                    "{}: neither spec.managedCompute nor spec.serverless is set",
                    md.owner_id()
                )));
            }
        };
        let name = md.spec.workspace_name().unwrap_or_default().to_string();
        let ws = Api::<AIWorkspace>::all(ctx.client()).get_opt(&name).await?;
        let mut facts = WorkspaceFacts::default();
        let (mut cred, mut credential_error) = (None, None);
        if let Some(w) = &ws {
            let status = w.status.clone().unwrap_or_default();
            let ready = crate::plan::status::ready_condition(&status.conditions)
                .is_some_and(|c| c.status == "True");
            facts = WorkspaceFacts {
                exists: true,
                deleting: w.metadata.deletion_timestamp.is_some(),
                namespace_allowed: allows_namespace(ctx, w.spec.allowed_namespaces.as_ref(), &ns)
                    .await?,
                id: Some(workspace_id(w)),
                // Not Ready: the workspace's location is unknown and the policy waits.
                location: status.location.filter(|_| ready),
                marketplace: w.spec.marketplace.clone().unwrap_or_default(),
                vault_uri: w.spec.key_vault.vault_uri.clone(),
                secret_prefix: w.secret_prefix(),
            };
            if facts.namespace_allowed {
                match ctx.credential_of(w.spec.credential.as_ref()).await {
                    Ok(c) => cred = Some(c),
                    Err(Error::Config(m)) => credential_error = Some(m),
                    Err(e) => return Err(e),
                }
            }
        }
        let t = &ctx.config.timing;
        Ok(MlPass {
            ctx,
            md,
            cred,
            events: vec![],
            snap: MlSnapshot {
                md: MlResource {
                    owner: md.owner_id(),
                    generation: md.metadata.generation.unwrap_or(0),
                    form,
                    endpoint_name: endpoint_name(md),
                    deletion_policy: md.spec.deletion_policy,
                    adopt_existing: md.spec.adopt_existing,
                    status: md.status.clone().unwrap_or_default(),
                },
                workspace: facts,
                credential_error,
                read_error: None,
                write_error: None,
                poll: Known::Unknown,
                endpoint: Known::Unknown,
                deployments: Known::Unknown,
                model: Known::Unknown,
                vm: Known::Unknown,
                quota: Known::Unknown,
                marketplace: Known::Unknown,
                stored_key: None,
                now: now_rfc3339(),
                timing: MlTiming {
                    poll_interval: t.poll_interval,
                    resync: t.resync,
                    backoff: t.backoff_base,
                },
                deleting: mode == Mode::Delete,
            },
        })
    }

    fn client(&self) -> MlClient<'_> {
        let location = self.snap.workspace.location.as_deref().unwrap_or("eastus");
        MlClient {
            arm: &self.ctx.azure.arm,
            discovery: self.ctx.azure.cloud.ml_registry_discovery_for(location),
        }
    }

    fn ws(&self) -> WorkspaceId {
        self.snap
            .workspace
            .id
            .clone()
            .expect("Azure is read for an existing workspace only")
    }

    fn endpoint_id(&self) -> String {
        let ws = self.ws();
        match &self.snap.md.form {
            Form::ManagedCompute(_) => ws.online_endpoint(&self.snap.md.endpoint_name),
            Form::Serverless(_) => ws.serverless_endpoint(&self.snap.md.endpoint_name),
        }
    }

    fn model_ref(&self) -> Option<ModelRef> {
        match &self.snap.md.form {
            Form::ManagedCompute(mc) => ModelRef::parse(&mc.model),
            Form::Serverless(sv) => ModelRef::parse(&sv.model_id),
        }
    }

    /// Read what the policy asked for; a failure is recorded for the policy to report.
    async fn fetch(&mut self, need: MlNeed) {
        if let Err(e) = self.read(need).await {
            self.snap.read_error = Some(e);
        }
    }

    async fn read(&mut self, need: MlNeed) -> std::result::Result<(), AzureError> {
        let cred = self.cred.clone().ok_or_else(|| {
            AzureError::transport(
                "ml.read",
                "NoCredential",
                "no credential for the workspace".into(),
            )
        })?;
        let ml = self.client();
        match need {
            MlNeed::Poll => {
                let polls = &self.ctx.writes.polls;
                let owner = self.snap.md.owner.clone();
                // Triggered before the poll is due (a watch event): wait instead of polling.
                if let Some(left) = polls.not_due(&owner) {
                    self.snap.poll = Known::Known(Ok(Poll::InProgress {
                        retry_after: Some(left),
                    }));
                    return Ok(());
                }
                let op = self
                    .snap
                    .md
                    .status
                    .pending_operation
                    .clone()
                    .unwrap_or_default();
                let r = self
                    .ctx
                    .azure
                    .arm
                    .poll(
                        &cred,
                        op.async_operation_url.as_deref(),
                        op.location_url.as_deref(),
                    )
                    .await;
                let r = match r {
                    Ok(Poll::InProgress { retry_after }) => Ok(Poll::InProgress {
                        retry_after: Some(polls.in_progress(&owner, retry_after)),
                    }),
                    Ok(done) => {
                        polls.finished(&owner, done == Poll::Succeeded);
                        Ok(done)
                    }
                    Err(e) => Err(e),
                };
                self.snap.poll = Known::Known(r);
            }
            MlNeed::Endpoint => {
                let op = match self.snap.md.form {
                    Form::ManagedCompute(_) => "ml.onlineEndpoints.get",
                    Form::Serverless(_) => "ml.serverlessEndpoints.get",
                };
                let v = ml.get(&cred, op, &self.endpoint_id()).await?;
                self.snap.endpoint = Known::Known(v);
            }
            MlNeed::Deployments => {
                let path = format!("{}/deployments", self.endpoint_id());
                let v = ml.list(&cred, "ml.onlineDeployments.list", &path).await?;
                self.snap.deployments = Known::Known(v);
            }
            MlNeed::Model => {
                let Some(r) = self.model_ref() else {
                    self.snap.model = Known::Known(None);
                    return Ok(());
                };
                let key = format!("{}/{}/{:?}", r.registry, r.name, r.version).to_ascii_lowercase();
                let m = match self.ctx.shared.ml_models.get(&key) {
                    Some(m) => m,
                    None => {
                        let m = Arc::new(ml.registry_model(&cred, &r).await?);
                        self.ctx.shared.ml_models.insert(key, m.clone());
                        m
                    }
                };
                self.snap.model = Known::Known((*m).clone());
            }
            MlNeed::VmSize => {
                let ws = self.ws();
                let location = self.snap.workspace.location.clone().unwrap_or_default();
                let key = format!("{}|{location}", ws.subscription_id).to_ascii_lowercase();
                let sizes = match self.ctx.shared.ml_vm_sizes.get(&key) {
                    Some(s) => s,
                    None => {
                        let s = Arc::new(ml.vm_sizes(&cred, &ws.subscription_id, &location).await?);
                        self.ctx.shared.ml_vm_sizes.insert(key, s.clone());
                        s
                    }
                };
                let want = match &self.snap.md.form {
                    Form::ManagedCompute(mc) => mc.instance_type.clone(),
                    Form::Serverless(_) => String::new(),
                };
                let vm = sizes
                    .iter()
                    .find(|v| v.name.eq_ignore_ascii_case(&want))
                    .cloned();
                self.snap.vm = Known::Known(vm);
            }
            MlNeed::Quota => {
                let ws = self.ws();
                let location = self.snap.workspace.location.clone().unwrap_or_default();
                let family = self
                    .snap
                    .vm
                    .get()
                    .and_then(|v| v.as_ref())
                    .map(|v| v.family.clone())
                    .unwrap_or_default();
                let key = format!("{}|{location}", ws.subscription_id).to_ascii_lowercase();
                let usages = match self.ctx.shared.ml_usages.get(&key) {
                    Some(u) => u,
                    None => {
                        let u = Arc::new(ml.usages(&cred, &ws.subscription_id, &location).await?);
                        self.ctx.shared.ml_usages.insert(key, u.clone());
                        u
                    }
                };
                let q = usages
                    .iter()
                    .find(|u| u.family.eq_ignore_ascii_case(&family))
                    .cloned();
                self.snap.quota = Known::Known(q);
            }
            MlNeed::Marketplace => {
                let Some(r) = self.model_ref() else {
                    self.snap.marketplace = Known::Known(None);
                    return Ok(());
                };
                let id = self
                    .ws()
                    .marketplace_subscription(&marketplace_subscription_name(&r));
                let v = ml
                    .get(&cred, "ml.marketplaceSubscriptions.get", &id)
                    .await?;
                self.snap.marketplace = Known::Known(v);
            }
        }
        Ok(())
    }

    /// Forget the finished operation and what it changed.
    fn end_operation(&mut self) {
        self.snap.md.status.pending_operation = None;
        self.snap.poll = Known::Unknown;
        self.forget_azure();
    }

    fn forget_azure(&mut self) {
        self.snap.endpoint = Known::Unknown;
        self.snap.deployments = Known::Unknown;
        self.snap.marketplace = Known::Unknown;
        self.snap.quota = Known::Unknown;
    }

    async fn write(&mut self, w: MlWriteStep) {
        let Some(cred) = self.cred.clone() else {
            self.snap.write_error = Some(AzureError::transport(
                "ml.write",
                "NoCredential",
                "no credential for the workspace".into(),
            ));
            return;
        };
        let ml = self.client();
        let op = write_operation(&w);
        let accepted = std::time::Instant::now();
        let res = match &w.body {
            Some(body) => ml.put(&cred, op, &w.target, body).await,
            None => ml.delete(&cred, op, &w.target).await,
        };
        match res {
            Err(e) => self.snap.write_error = Some(e),
            Ok(out) => {
                tracing::info!(deployment = %self.snap.md.owner, what = %w.what, status = out.status, "Azure accepted");
                self.events.push(EventSpec::normal(
                    w.kind.progress_reason(),
                    "Write",
                    format!("Azure accepted: {}", w.what),
                ));
                match pending_of(&self.snap, &w, &out) {
                    Some(p) if out.status != 404 => {
                        self.snap.md.status.pending_operation = Some(p);
                        // The first poll when such operations usually end (learned per
                        // workspace and kind of write), or when Azure's Retry-After says.
                        let first = self.ctx.writes.polls.started_at(
                            &self.ws().resource_id(),
                            &poll_kind(&w),
                            &self.snap.md.owner,
                            out.retry_after,
                            accepted,
                        );
                        self.snap.poll = Known::Known(Ok(Poll::InProgress {
                            retry_after: Some(first),
                        }));
                    }
                    _ => self.forget_azure(),
                }
            }
        }
    }

    /// listKeys into Key Vault (rewritten only when it differs).
    async fn store_key(&mut self, endpoint_id: &str, vault_uri: &str, secret_name: &str) {
        match self.put_key(endpoint_id, vault_uri, secret_name).await {
            Ok(r) => self.snap.stored_key = Some(r),
            Err(e) => self.snap.read_error = Some(e),
        }
    }

    async fn put_key(
        &self,
        endpoint_id: &str,
        vault_uri: &str,
        secret_name: &str,
    ) -> std::result::Result<KeyVaultSecretRef, AzureError> {
        let cred = self.cred.clone().ok_or_else(|| {
            AzureError::transport("ml.listKeys", "NoCredential", "no credential".into())
        })?;
        let op = match self.snap.md.form {
            Form::ManagedCompute(_) => "ml.onlineEndpoints.listKeys",
            Form::Serverless(_) => "ml.serverlessEndpoints.listKeys",
        };
        let key = self
            .client()
            .primary_key(&cred, op, endpoint_id)
            .await?
            .ok_or_else(|| AzureError {
                operation: op.into(),
                status: None,
                code: crate::reason::NO_KEYS.into(),
                message: "the endpoint returned no key: set its authMode to Key".into(),
                class: crate::error::ErrorClass::Terminal,
                retry_after: None,
            })?;
        let kv = &self.ctx.azure.keyvault;
        let current = kv.get_secret(&cred, vault_uri, secret_name).await?;
        let same = current.as_ref().and_then(|c| {
            c.value
                .as_deref()
                .filter(|v| crate::azure::keyvault::secret_eq(v, key.expose()))
                .and_then(|_| c.version())
        });
        let version = match same {
            Some(v) => Some(v),
            None => {
                let tags = [("aoai.dev-endpoint".to_string(), endpoint_id.to_string())].into();
                kv.set_secret(
                    &cred,
                    vault_uri,
                    secret_name,
                    &key,
                    Some("text/plain"),
                    &tags,
                )
                .await?
                .version()
            }
        };
        Ok(KeyVaultSecretRef {
            vault_uri: vault_uri.to_string(),
            name: secret_name.to_string(),
            version,
        })
    }

    async fn finish(self, f: crate::plan::ml::MlFinish, mode: Mode) -> Result<Action> {
        let ctx = self.ctx;
        let saved = if f.status != self.md.status.clone().unwrap_or_default() && !f.release {
            super::save_md_status(ctx, self.md, &f.status).await
        } else {
            Ok(())
        };
        let ready = crate::plan::status::ready_condition(&f.status.conditions)
            .is_some_and(|c| c.status == "True");
        if ready && saved.is_ok() && f.status != self.md.status.clone().unwrap_or_default() {
            super::execute::write_config_map(ctx, self.md, &f.status).await?;
        }
        let reference = self.md.object_ref(&());
        for e in self.events.iter().chain(&f.events) {
            publish(ctx, &reference, e).await;
        }
        saved?;
        if f.release {
            return Ok(Action::await_change());
        }
        match (mode, f.requeue) {
            (Mode::Apply, Some(d)) => Ok(Action::requeue(d)),
            (Mode::Apply, None) => Ok(Action::await_change()),
            (Mode::Delete, d) => Err(Error::DeletionInProgress {
                message: "waiting for Azure".into(),
                retry_in: d.unwrap_or(ctx.config.timing.poll_interval),
            }),
        }
    }
}

/// What the poll clock learns durations of: the kind of write and the kind of resource.
fn poll_kind(w: &MlWriteStep) -> String {
    format!("{}/{}", w.kind.as_str(), write_operation(w))
}

/// The metric name of a write.
fn write_operation(w: &MlWriteStep) -> &'static str {
    let t = w.target.to_ascii_lowercase();
    let delete = w.body.is_none();
    match (
        t.contains("/marketplacesubscriptions/"),
        t.contains("/serverlessendpoints/"),
        t.contains("/deployments/"),
        delete,
    ) {
        (true, ..) => "ml.marketplaceSubscriptions.put",
        (_, true, _, false) => "ml.serverlessEndpoints.put",
        (_, true, _, true) => "ml.serverlessEndpoints.delete",
        (_, _, true, false) => "ml.onlineDeployments.put",
        (_, _, true, true) => "ml.onlineDeployments.delete",
        (.., false) => "ml.onlineEndpoints.put",
        (.., true) => "ml.onlineEndpoints.delete",
    }
}
