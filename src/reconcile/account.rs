//! AIAccount reconciler: reads the Azure account (endpoint, location, kind), keeps its key1 in
//! Key Vault (compared in memory, written only when it differs, never logged), reports Ready.
//! Deletion is held while ModelDeployments still reference the account.

use super::{ACCOUNT_FINALIZER, apply_status, now_rfc3339, publish, set_condition};
use crate::azure::arm::AccountId;
use crate::azure::auth::Secret;
use crate::azure::keyvault::secret_eq;
use crate::context::Context;
use crate::crd::{AIAccount, AIAccountStatus, KeyVaultSecretRef, ModelDeployment};
use crate::error::{AzureError, Error, Result};
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
    let api: Api<AIAccount> = Api::all(ctx.client.clone());
    let res = finalizer(&api, ACCOUNT_FINALIZER, acct, |ev| async {
        match ev {
            Finalizer::Apply(a) => apply(a, &ctx).await,
            Finalizer::Cleanup(a) => cleanup(a, &ctx).await,
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
    let key = format!("AIAccount/{}", acct.name_any());
    if let Error::AccountInUse(_) = err.inner() {
        return Action::requeue(ctx.config.timing.poll_interval * 5);
    }
    let n = ctx.failed(&key);
    let d = ctx.backoff(n, err.retry_after());
    tracing::warn!(account = %acct.name_any(), error = %err, retry_in = ?d, "AIAccount reconcile failed");
    Action::requeue(d)
}

async fn apply(acct: Arc<AIAccount>, ctx: &Context) -> Result<Action> {
    let api: Api<AIAccount> = Api::all(ctx.client.clone());
    let generation = acct.metadata.generation;
    let old = acct.status.clone().unwrap_or_default();
    let mut st = old.clone();
    st.observed_generation = generation;
    let reference = acct.object_ref(&());
    let id = account_id(&acct);

    let fail = |st: &mut AIAccountStatus, reason: &str, msg: &str| {
        set_condition(&mut st.conditions, "Ready", false, reason, msg, generation);
    };

    let cred = match ctx.credential_for(&acct).await {
        Ok(c) => c,
        Err(e @ Error::Config(_)) => {
            let msg = e.to_string();
            fail(&mut st, "CredentialError", &msg);
            finish(ctx, &api, &acct, &old, st, true, "CredentialError", &msg).await?;
            return Ok(Action::requeue(ctx.config.timing.account_resync));
        }
        Err(e) => return Err(e),
    };

    let step = async {
        let a = ctx.arm.get_account(&cred, &id).await?;
        let keys = ctx.arm.list_keys(&cred, &id).await?;
        let key = keys.key1.or(keys.key2).ok_or_else(|| AzureError {
            operation: "accounts.listKeys".into(),
            status: 200,
            code: "NoKeys".into(),
            message: "the account has no API keys (local auth disabled?): enable key access or use Entra ID".into(),
            retry_after: None,
        })?;
        let key = Secret::new(key);
        let vault = &acct.spec.key_vault.vault_uri;
        let name = &acct.spec.key_vault.secret_name;
        let current = ctx.keyvault.get_secret(&cred, vault, name).await?;
        let same = current
            .as_ref()
            .and_then(|c| c.value.as_deref())
            .is_some_and(|v| secret_eq(v, key.expose()));
        let (version, wrote) = if same {
            (current.and_then(|c| c.version()), false)
        } else {
            let tags = [("aoai.dev-account".to_string(), id.resource_id())].into();
            let b = ctx
                .keyvault
                .set_secret(&cred, vault, name, &key, Some("text/plain"), &tags)
                .await?;
            (b.version(), true)
        };
        Ok::<_, AzureError>((a, version, wrote))
    };
    match step.await {
        Ok((a, version, wrote)) => {
            let props = a.properties.clone().unwrap_or_default();
            st.azure_resource_id = a.id.clone().or(Some(id.resource_id()));
            st.endpoint = props.endpoint.clone();
            st.location = a.location.clone();
            st.kind = a.kind.clone();
            st.key_vault_secret = Some(KeyVaultSecretRef {
                vault_uri: acct.spec.key_vault.vault_uri.clone(),
                name: acct.spec.key_vault.secret_name.clone(),
                version: version.clone(),
            });
            if wrote {
                publish(
                    ctx,
                    &reference,
                    false,
                    "KeyStored",
                    "SetSecret",
                    format!(
                        "stored the account key in Key Vault secret {} (version {})",
                        acct.spec.key_vault.secret_name,
                        version.unwrap_or_default()
                    ),
                )
                .await;
            }
            let msg = format!(
                "account {} ({}, {}) is reachable; key in Key Vault secret {}",
                id.name,
                a.kind.unwrap_or_default(),
                a.location.unwrap_or_default(),
                acct.spec.key_vault.secret_name
            );
            set_condition(&mut st.conditions, "Ready", true, "Ready", &msg, generation);
            // Stamped only when something changed: an unchanged resync writes nothing.
            if st != old || st.last_sync_time.is_none() {
                st.last_sync_time = Some(now_rfc3339());
            }
            finish(ctx, &api, &acct, &old, st, false, "", "").await?;
            ctx.succeeded(&format!("AIAccount/{}", acct.name_any()));
            Ok(Action::requeue(ctx.config.timing.account_resync))
        }
        Err(e) => {
            let hint = match e.status {
                401 | 403 => {
                    " — grant the operator's identity access (Cognitive Services Contributor on the account, Key Vault Secrets Officer on the vault)"
                }
                404 => " — check subscriptionId, resourceGroup, accountName and the vault URI",
                _ => "",
            };
            let msg = format!("{e}{hint}");
            fail(&mut st, &e.code, &msg);
            finish(ctx, &api, &acct, &old, st, true, &e.code, &msg).await?;
            if e.is_transient() {
                Err(Error::Azure(e))
            } else {
                Ok(Action::requeue(
                    ctx.config
                        .timing
                        .account_resync
                        .min(ctx.config.timing.terminal_recheck),
                ))
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    ctx: &Context,
    api: &Api<AIAccount>,
    acct: &AIAccount,
    old: &AIAccountStatus,
    st: AIAccountStatus,
    warn: bool,
    reason: &str,
    msg: &str,
) -> Result<()> {
    let prev_reason = super::ready_condition(&old.conditions).map(|c| c.reason.clone());
    if warn && prev_reason.as_deref() != Some(reason) {
        publish(
            ctx,
            &acct.object_ref(&()),
            true,
            reason,
            "Sync",
            msg.to_string(),
        )
        .await;
    }
    if &st != old {
        apply_status(
            ctx,
            api,
            acct,
            serde_json::to_value(&st).expect("status serializes"),
        )
        .await?;
    }
    Ok(())
}

async fn cleanup(acct: Arc<AIAccount>, ctx: &Context) -> Result<Action> {
    let mds: Api<ModelDeployment> = Api::all(ctx.client.clone());
    let name = acct.name_any();
    let users: Vec<String> = mds
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|m| m.spec.account_ref.name == name)
        .map(|m| format!("{}/{}", m.namespace().unwrap_or_default(), m.name_any()))
        .collect();
    if users.is_empty() {
        return Ok(Action::await_change());
    }
    let api: Api<AIAccount> = Api::all(ctx.client.clone());
    let old = acct.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let shown: Vec<_> = users.iter().take(5).cloned().collect();
    let msg = format!(
        "deletion is held: {} ModelDeployment(s) still use this account ({}{}); delete them first",
        users.len(),
        shown.join(", "),
        if users.len() > 5 { ", ..." } else { "" }
    );
    set_condition(
        &mut st.conditions,
        "Ready",
        false,
        "InUse",
        &msg,
        acct.metadata.generation,
    );
    finish(ctx, &api, &acct, &old, st, true, "InUse", &msg).await?;
    Err(Error::AccountInUse(users.len()))
}
