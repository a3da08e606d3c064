//! The AIAccount reconciler, observe → decide → execute like the ModelDeployment's: observe the
//! Azure account, its key (compared with the Key Vault secret here, so the key never reaches the
//! snapshot or a log) and, on deletion, the ModelDeployments still using it; `plan::account`
//! decides; the key is stored only when the secret differs.

use super::{
    ACCOUNT_FINALIZER, add_finalizer, apply_status, lacks_finalizer, now_rfc3339, publish,
};
use crate::azure::arm::AccountId;
use crate::azure::auth::{Secret, TokenCredential};
use crate::azure::keyvault::secret_eq;
use crate::context::Context;
use crate::crd::{AIAccount, ModelDeployment};
use crate::error::{Error, Result};
use crate::plan::Then;
use crate::plan::account::{
    AccountNeed, AccountSnapshot, AccountStep, StoredKey, decide_account, decide_account_delete,
};
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::Instant;

pub fn account_id(a: &AIAccount) -> AccountId {
    AccountId {
        subscription_id: a.spec.subscription_id.clone(),
        resource_group: a.spec.resource_group.clone(),
        name: a.spec.account_name.clone(),
    }
}

pub async fn reconcile(acct: Arc<AIAccount>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let api: Api<AIAccount> = Api::all(ctx.client());
    // A new account's first pass adds the finalizer and goes on with the object it returns.
    let acct = if lacks_finalizer(acct.as_ref(), ACCOUNT_FINALIZER) {
        match add_finalizer(&api, acct.as_ref(), ACCOUNT_FINALIZER).await? {
            Some(a) => Arc::new(a),
            None => return Ok(Action::await_change()),
        }
    } else {
        acct
    };
    let res = finalizer(&api, ACCOUNT_FINALIZER, acct, |ev| async {
        match ev {
            Finalizer::Apply(a) => run(&a, &ctx, false).await,
            Finalizer::Cleanup(a) => run(&a, &ctx, true).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.reconciled("AIAccount", start.elapsed());
    res
}

pub fn error_policy(acct: Arc<AIAccount>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failed("AIAccount", &err.metric_label());
    if let Error::DeletionInProgress { retry_in, .. } = err.inner() {
        return Action::requeue(*retry_in);
    }
    let key = format!("AIAccount/{}", acct.name_any());
    let n = ctx.failed(&key);
    let d = ctx.backoff(n, err.retry_after());
    tracing::warn!(account = %acct.name_any(), error = %err, retry_in = ?d, "AIAccount reconcile failed");
    Action::requeue(d)
}

async fn run(acct: &AIAccount, ctx: &Context, deleting: bool) -> Result<Action> {
    let id = account_id(acct);
    let (cred, credential_error) = if deleting {
        (None, None)
    } else {
        match ctx.credential_for(acct).await {
            Ok(c) => (Some(c), None),
            Err(Error::Config(m)) => (None, Some(m)),
            Err(e) => return Err(e),
        }
    };
    let mut snap = AccountSnapshot {
        name: acct.name_any(),
        generation: acct.metadata.generation.unwrap_or(0),
        spec: acct.spec.clone(),
        status: acct.status.clone().unwrap_or_default(),
        deleting,
        credential_error,
        account: None,
        has_key: None,
        stored: None,
        written: None,
        users: None,
        timing: ctx.config.timing.clone(),
        now: now_rfc3339(),
    };
    // The key, once read, stays here (never in the snapshot).
    let mut key: Option<Secret> = None;
    for _ in 0..8 {
        let step = if deleting {
            decide_account_delete(&snap)
        } else {
            decide_account(&snap)
        };
        match step {
            AccountStep::Observe(need) => {
                observe(ctx, acct, &id, cred.as_deref(), need, &mut snap, &mut key).await?
            }
            AccountStep::StoreKey => {
                let (Some(cred), Some(k)) = (&cred, &key) else {
                    return Err(Error::Unsettled("storing a key that was not read".into()));
                };
                let tags = [("aoai.dev-account".to_string(), id.resource_id())].into();
                snap.written = Some(
                    ctx.azure
                        .keyvault
                        .set_secret(
                            cred,
                            &acct.spec.key_vault.vault_uri,
                            &acct.spec.key_vault.secret_name,
                            k,
                            Some("text/plain"),
                            &tags,
                        )
                        .await
                        .map(|b| b.version()),
                );
            }
            AccountStep::Finish(f) => {
                let reference = acct.object_ref(&());
                for e in &f.events {
                    publish(ctx, &reference, e).await;
                }
                if f.status != snap.status {
                    let api: Api<AIAccount> = Api::all(ctx.client());
                    apply_status(
                        ctx,
                        &api,
                        acct,
                        serde_json::to_value(&f.status).expect("status serializes"),
                    )
                    .await?;
                }
                let key = format!("AIAccount/{}", acct.name_any());
                return match f.then {
                    Then::Retry(e) => Err(Error::Azure(e)),
                    Then::Released => Ok(Action::await_change()),
                    Then::DeletionWait(d) => Err(Error::DeletionInProgress {
                        message: "ModelDeployments still use the account".into(),
                        retry_in: d,
                    }),
                    Then::Requeue(d) => {
                        ctx.succeeded(&key);
                        Ok(Action::requeue(d))
                    }
                    Then::Resync | Then::FirstPoll { .. } => {
                        Ok(Action::requeue(ctx.config.timing.account_resync))
                    }
                };
            }
        }
    }
    Err(Error::Unsettled(format!(
        "AIAccount {} did not settle",
        acct.name_any()
    )))
}

async fn observe(
    ctx: &Context,
    acct: &AIAccount,
    id: &AccountId,
    cred: Option<&TokenCredential>,
    need: AccountNeed,
    snap: &mut AccountSnapshot,
    key: &mut Option<Secret>,
) -> Result<()> {
    if let AccountNeed::Users = need {
        let name = acct.name_any();
        let users = Api::<ModelDeployment>::all(ctx.client())
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|m| m.spec.account_name() == Some(name.as_str()))
            .map(|m| m.owner_id())
            .collect();
        snap.users = Some(users);
        return Ok(());
    }
    let Some(cred) = cred else {
        return Err(Error::Unsettled(
            "an Azure read without a credential".into(),
        ));
    };
    match need {
        AccountNeed::Account => snap.account = Some(ctx.azure.arm.get_account(cred, id).await),
        AccountNeed::Keys => {
            snap.has_key = Some(ctx.azure.arm.list_keys(cred, id).await.map(|k| {
                *key = k.key1.or(k.key2).map(Secret::new);
                key.is_some()
            }))
        }
        AccountNeed::StoredKey => {
            let current = ctx
                .azure
                .keyvault
                .get_secret(
                    cred,
                    &acct.spec.key_vault.vault_uri,
                    &acct.spec.key_vault.secret_name,
                )
                .await;
            snap.stored = Some(current.map(|c| {
                StoredKey {
                    matches: c
                        .as_ref()
                        .and_then(|c| c.value.as_deref())
                        .zip(key.as_ref())
                        .is_some_and(|(v, k)| secret_eq(v, k.expose())),
                    version: c.and_then(|c| c.version()),
                }
            }));
        }
        AccountNeed::Users => unreachable!("handled above"),
    }
    Ok(())
}
