//! Observe: gather a ModelDeployment's [`Snapshot`] — cheaply from what the operator already
//! holds (the resource, the account cache, the pending operation and the poll clock, the write
//! slot, the account's listing, the pre-validation stamp) — and fetch more when the policy
//! asks ([`Need`]): a poll, the account's listing, a fresh GET, the catalog, quota usage.
//! A failed read is recorded in the snapshot for the policy to judge, never decided here.

use super::account::account_id;
use crate::azure::arm::AccountId;
use crate::azure::auth::TokenCredential;
use crate::azure::budget::Priority;
use crate::azure::lock::{SlotGuard, SlotView};
use crate::context::Context;
use crate::crd::{AIAccount, ModelDeployment};
use crate::error::{Error, Result};
use crate::plan::{
    AccountActivity, AccountFacts, AccountInfo, Need, Observed, OpState, Prevalidation, Resource,
    Slot, Snapshot,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::{Selector, SelectorExt};
use std::sync::Arc;
use std::time::Duration;

/// One reconcile pass: the snapshot, and what execution needs beside it.
pub struct Pass<'a> {
    pub ctx: &'a Context,
    pub md: &'a ModelDeployment,
    pub snap: Snapshot,
    /// The account's coordinates and write-slot key (when the AIAccount exists).
    pub account: Option<(AccountId, String)>,
    pub cred: Option<Arc<TokenCredential>>,
    /// The account's write slot, while this pass holds it (released on drop).
    pub guard: Option<SlotGuard>,
    /// When Azure accepted this pass's write (its operation runs from then).
    pub accepted_at: Option<std::time::Instant>,
}

/// Whether the AIAccount allows `ns` (by name, or its labels by selector).
pub async fn namespace_allowed(ctx: &Context, acct: &AIAccount, ns: &str) -> Result<bool> {
    allows_namespace(ctx, acct.spec.allowed_namespaces.as_ref(), ns).await
}

/// Whether an allow-list (of an AIAccount or an AIWorkspace) allows `ns`.
pub async fn allows_namespace(
    ctx: &Context,
    allowed: Option<&crate::crd::AllowedNamespaces>,
    ns: &str,
) -> Result<bool> {
    let Some(allow) = allowed else {
        return Ok(false);
    };
    if allow.names.iter().any(|n| n == ns) {
        return Ok(true);
    }
    let Some(sel) = &allow.selector else {
        return Ok(false);
    };
    let Ok(selector) = Selector::try_from(sel.clone()) else {
        return Ok(false);
    };
    let nsapi: Api<Namespace> = Api::all(ctx.client());
    Ok(match nsapi.get_opt(ns).await? {
        Some(n) => selector.matches(n.labels()),
        None => false,
    })
}

async fn account_info(ctx: &Context, acct: &AIAccount, ns: &str) -> Result<AccountInfo> {
    let status = acct.status.clone().unwrap_or_default();
    let ready = crate::plan::status::ready_condition(&status.conditions);
    Ok(AccountInfo {
        facts: AccountFacts {
            exists: true,
            deleting: acct.metadata.deletion_timestamp.is_some(),
            namespace_allowed: namespace_allowed(ctx, acct, ns).await?,
            ready: ready.is_some_and(|c| c.status == "True")
                && status.key_vault_secret.is_some()
                && status.endpoint.is_some(),
            ready_message: ready.map(|c| c.message.clone()).unwrap_or_default(),
        },
        generation: acct.metadata.generation.unwrap_or(0),
        endpoint: status.endpoint,
        key_vault_secret: status.key_vault_secret,
        location: status.location,
    })
}

fn slot(view: SlotView) -> Slot {
    match view {
        SlotView::Free => Slot::Free,
        SlotView::HeldByMyOperation => Slot::HeldByMyOperation,
        SlotView::Busy { holder, position } => Slot::Busy { holder, position },
    }
}

/// `<subscription>|<location>`: the key of quota usage.
pub fn usages_key(subscription: &str, location: &str) -> String {
    format!(
        "{}|{}",
        subscription.to_ascii_lowercase(),
        location.to_ascii_lowercase()
    )
}

/// What the inventory says of operations on the account's other deployments.
fn activity(ctx: &Context, key: &str, deployment_name: &str, refreshed: bool) -> AccountActivity {
    match ctx.shared.inventory.activity(key, deployment_name) {
        None => AccountActivity::Unknown,
        Some(a) => AccountActivity::Listed {
            busy: a.busy,
            age: a.age,
            refreshed,
        },
    }
}

impl<'a> Pass<'a> {
    /// The cheap part of observing: nothing here calls Azure.
    pub async fn start(ctx: &'a Context, md: &'a ModelDeployment) -> Result<Pass<'a>> {
        let ns = md.namespace().unwrap_or_else(|| "default".into());
        let owner = md.owner_id();
        let deployment_name = md.azure_deployment_name();
        let generation = md.metadata.generation.unwrap_or(0);
        let status = md.status.clone().unwrap_or_default();
        // An operation Azure accepted whose record in status was not saved (the save failed):
        // followed all the same, and saved again with the next status.
        let remembered = ctx.writes.running(&owner);
        let pending = status.pending_operation.clone().or(remembered);
        let spec = md.spec.cognitive().ok_or_else(|| {
            Error::Config(format!(
                "{owner}: spec.sku, spec.accountRef and spec.model must be set together (the CRD's rules require it)"
            ))
        })?;
        let acct = ctx.account(&spec.account_ref.name).await?;
        let (account, info, cred, credential_error) = match &acct {
            None => (None, None, None, None),
            Some(a) => {
                let info = account_info(ctx, a, &ns).await?;
                let id = account_id(a);
                let key = id.key();
                let (cred, err) = if info.facts.namespace_allowed {
                    match ctx.credential_for(a).await {
                        Ok(c) => (Some(c), None),
                        Err(Error::Config(m)) => (None, Some(m)),
                        Err(e) => return Err(e),
                    }
                } else {
                    (None, None)
                };
                (Some((id, key)), Some(info), cred, err)
            }
        };
        let gate = &ctx.writes.gate;
        let mut view = account
            .as_ref()
            .map_or(SlotView::Free, |(_, key)| gate.view(key, &owner));
        // An operation recorded in status holds its account's slot (after a restart, too).
        if let (Some(_), Some((_, key))) = (&pending, &account)
            && view != SlotView::HeldByMyOperation
        {
            gate.resume_operation(key, &owner);
            view = SlotView::HeldByMyOperation;
        }
        let op = match &pending {
            None => OpState::Idle,
            Some(op) => OpState::Pending {
                op: op.clone(),
                due_in: ctx.writes.polls.not_due(&owner),
            },
        };
        let observed = account
            .as_ref()
            .and_then(|(_, key)| ctx.shared.inventory.seen(key, &deployment_name))
            .map_or(Observed::Unknown, Observed::Listed);
        let activity = account
            .as_ref()
            .map_or(AccountActivity::Unknown, |(_, key)| {
                activity(ctx, key, &deployment_name, false)
            });
        let account_generation = info.as_ref().map_or(0, |i| i.generation);
        let passed = ctx.shared.prevalidated.get(&owner) == Some((generation, account_generation));
        let since_last_error = status
            .last_error
            .as_ref()
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e.at).ok())
            .map(|at| {
                chrono::Utc::now()
                    .signed_duration_since(at)
                    .to_std()
                    .unwrap_or_default()
            });
        let snap = Snapshot {
            md: Resource {
                owner,
                namespace: ns,
                deployment_name,
                spec,
                generation,
                status,
            },
            account: info,
            credential_error,
            op,
            slot: slot(view),
            holder_exists: None,
            observed,
            activity,
            prevalidation: Prevalidation {
                passed,
                ..Default::default()
            },
            write: None,
            cluster: ctx.config.cluster_name.clone(),
            timing: ctx.config.timing.clone(),
            now: super::now_rfc3339(),
            since_last_error,
        };
        Ok(Pass {
            ctx,
            md,
            snap,
            account,
            cred,
            guard: None,
            accepted_at: None,
        })
    }

    pub fn gate_key(&self) -> &str {
        self.account.as_ref().map_or("", |(_, k)| k.as_str())
    }

    fn azure(&self) -> Result<(&AccountId, &TokenCredential)> {
        match (&self.account, &self.cred) {
            (Some((id, _)), Some(c)) => Ok((id, c)),
            _ => Err(Error::Unsettled(
                "the policy asked for an Azure read without an account and credential".into(),
            )),
        }
    }

    /// The account's listing no older than `max_age` into the snapshot's account activity (and
    /// its observed deployment, when `observed`).
    async fn list(&mut self, max_age: Duration, priority: Priority, observed: bool) -> Result<()> {
        let ctx = self.ctx;
        let name = self.snap.md.deployment_name.clone();
        let (id, cred) = self.azure()?;
        let arm = &ctx.azure.arm;
        let key = self.gate_key().to_string();
        let seen = ctx
            .shared
            .inventory
            .refresh(&key, &name, max_age, || {
                arm.list_deployments(cred, id, priority)
            })
            .await;
        self.snap.activity = match &seen {
            Ok(_) => activity(ctx, &key, &name, true),
            Err(e) => AccountActivity::Failed(e.clone()),
        };
        if observed {
            self.snap.observed = match seen {
                Ok(s) => Observed::Listed(s),
                Err(e) => Observed::ListFailed(e),
            };
        }
        Ok(())
    }

    /// Fetch what the policy asked for, into the snapshot.
    pub async fn fetch(&mut self, need: Need) -> Result<()> {
        let ctx = self.ctx;
        let owner = self.snap.md.owner.clone();
        let name = self.snap.md.deployment_name.clone();
        match need {
            Need::HolderExists(holder) => {
                let exists = match holder.split_once('/') {
                    Some((ns, n)) => Api::<ModelDeployment>::namespaced(ctx.client(), ns)
                        .get_opt(n)
                        .await?
                        .is_some(),
                    None => false,
                };
                self.snap.holder_exists = Some(exists);
            }
            Need::Poll => {
                let OpState::Pending { op, .. } = &self.snap.op else {
                    return Err(Error::Unsettled(
                        "poll asked without a pending operation".into(),
                    ));
                };
                let op = op.clone();
                let (_, cred) = self.azure()?;
                let result = ctx
                    .azure
                    .arm
                    .poll(
                        cred,
                        op.async_operation_url.as_deref(),
                        op.location_url.as_deref(),
                    )
                    .await;
                // Only a running operation moves the poll clock (a finished one teaches it at its end).
                let next_poll = match &result {
                    Ok(crate::azure::arm::Poll::InProgress { retry_after }) => {
                        ctx.writes.polls.in_progress(&owner, *retry_after)
                    }
                    _ => Duration::ZERO,
                };
                let accepted = ctx.writes.peek_accepted(&owner, self.snap.md.generation);
                self.snap.op = OpState::Polled {
                    op,
                    result,
                    next_poll,
                    accepted,
                };
            }
            Need::Listing { urgent } => {
                let priority = if urgent {
                    Priority::Urgent
                } else {
                    Priority::Background
                };
                self.list(ctx.config.timing.resync, priority, true).await?;
            }
            Need::Activity { max_age } => {
                // Only a write waits on it: urgent. A fresh read of the deployment stays.
                let fresh = matches!(self.snap.observed, Observed::Fresh(_));
                self.list(max_age, Priority::Urgent, !fresh).await?;
            }
            Need::Fresh => {
                let (id, cred) = self.azure()?;
                self.snap.observed = match ctx.azure.arm.get_deployment(cred, id, &name).await {
                    Ok(d) => {
                        ctx.shared
                            .inventory
                            .record(self.gate_key(), &name, d.clone());
                        Observed::Fresh(d)
                    }
                    Err(e) => Observed::FreshFailed(e),
                };
            }
            Need::Catalog => {
                let (id, cred) = self.azure()?;
                let key = self.gate_key().to_string();
                let catalog = match ctx.shared.catalogs.get(&key) {
                    Some(m) => Ok(m),
                    None => ctx
                        .azure
                        .arm
                        .list_account_models(cred, id)
                        .await
                        .map(Arc::new)
                        .inspect(|m| ctx.shared.catalogs.insert(key, m.clone())),
                };
                if let Err(e) = &catalog {
                    tracing::debug!(error = %e, "cannot list account models; Azure will check the model");
                }
                self.snap.prevalidation.catalog = Some(catalog);
            }
            Need::Usages => {
                let (id, cred) = self.azure()?;
                let location = self
                    .snap
                    .account
                    .as_ref()
                    .and_then(|a| a.location.clone())
                    .unwrap_or_default();
                let key = usages_key(&id.subscription_id, &location);
                let usages = match ctx.shared.usages.get(&key) {
                    Some(u) => Ok(u),
                    None => ctx
                        .azure
                        .arm
                        .list_usages(cred, &id.subscription_id, &location)
                        .await
                        .map(Arc::new)
                        .inspect(|u| ctx.shared.usages.insert(key, u.clone())),
                };
                if let Err(e) = &usages {
                    tracing::debug!(error = %e, "cannot read usages; Azure will check the quota");
                }
                self.snap.prevalidation.usages = Some(usages);
            }
        }
        Ok(())
    }
}
