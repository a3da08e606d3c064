//! The AIAccount policy, pure, in the same observe → decide → execute shape: read the Azure
//! account (endpoint, region, kind), read its key and the Key Vault secret, store the key only
//! when the secret differs (the key itself never enters the snapshot: `observe` compares it),
//! and report Ready. Deletion is held while ModelDeployments still use the account.

use super::Then;
use super::status::{EventSpec, ready_condition, set_condition};
use crate::azure::arm::Account;
use crate::context::Timing;
use crate::crd::{AIAccountSpec, AIAccountStatus, KeyVaultSecretRef};
use crate::error::{AzureError, ErrorClass};
use crate::reason;

/// The Key Vault secret compared with the account's key (by `observe`).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredKey {
    pub matches: bool,
    pub version: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AccountSnapshot {
    pub name: String,
    pub generation: i64,
    pub spec: AIAccountSpec,
    pub status: AIAccountStatus,
    pub deleting: bool,
    pub credential_error: Option<String>,
    pub account: Option<Result<Account, AzureError>>,
    /// listKeys: Ok(true) when it returned a key.
    pub has_key: Option<Result<bool, AzureError>>,
    pub stored: Option<Result<StoredKey, AzureError>>,
    /// The key written to Key Vault in this pass: its new version.
    pub written: Option<Result<Option<String>, AzureError>>,
    /// ModelDeployments (`ns/name`) that use this account (deletion only).
    pub users: Option<Vec<String>>,
    pub timing: Timing,
    pub now: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AccountNeed {
    Account,
    Keys,
    StoredKey,
    Users,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AccountFinish {
    pub status: AIAccountStatus,
    pub events: Vec<EventSpec>,
    pub then: Then,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AccountStep {
    Observe(AccountNeed),
    /// Write the account's key to the Key Vault secret.
    StoreKey,
    Finish(AccountFinish),
}

impl AccountSnapshot {
    fn finish(&self, ok: bool, reason: &str, message: &str, then: Then) -> AccountStep {
        let mut st = self.status.clone();
        st.observed_generation = Some(self.generation);
        set_condition(
            &mut st.conditions,
            "Ready",
            ok,
            reason,
            message,
            Some(self.generation),
            &self.now,
        );
        let prev = ready_condition(&self.status.conditions).map(|c| c.reason.as_str());
        let events = if !ok && prev != Some(reason) {
            vec![EventSpec::warning(reason, "Sync", message.to_string())]
        } else {
            vec![]
        };
        AccountStep::Finish(AccountFinish {
            status: st,
            events,
            then,
        })
    }

    fn failed(&self, e: &AzureError) -> AccountStep {
        let hint = match e.class {
            ErrorClass::Auth => {
                " — grant the operator's identity access (Cognitive Services Contributor on the account, Key Vault Secrets Officer on the vault)"
            }
            ErrorClass::NotFound => {
                " — check subscriptionId, resourceGroup, accountName and the vault URI"
            }
            _ => "",
        };
        let then = if e.is_transient() {
            Then::Retry(e.clone())
        } else {
            Then::Requeue(self.timing.account_resync.min(self.timing.terminal_recheck))
        };
        self.finish(false, &e.code, &format!("{e}{hint}"), then)
    }
}

pub fn decide_account(s: &AccountSnapshot) -> AccountStep {
    if let Some(msg) = &s.credential_error {
        return s.finish(
            false,
            reason::CREDENTIAL_ERROR,
            msg,
            Then::Requeue(s.timing.account_resync),
        );
    }
    let account = match &s.account {
        None => return AccountStep::Observe(AccountNeed::Account),
        Some(Err(e)) => return s.failed(e),
        Some(Ok(a)) => a,
    };
    match &s.has_key {
        None => return AccountStep::Observe(AccountNeed::Keys),
        Some(Err(e)) => return s.failed(e),
        Some(Ok(false)) => {
            return s.finish(
                false,
                reason::NO_KEYS,
                "the account has no API keys (local authentication disabled?): enable key access or use Entra ID",
                Then::Requeue(s.timing.account_resync.min(s.timing.terminal_recheck)),
            );
        }
        Some(Ok(true)) => {}
    }
    let stored = match &s.stored {
        None => return AccountStep::Observe(AccountNeed::StoredKey),
        Some(Err(e)) => return s.failed(e),
        Some(Ok(k)) => k,
    };
    let mut events = vec![];
    let version = if stored.matches {
        stored.version.clone()
    } else {
        match &s.written {
            None => return AccountStep::StoreKey,
            Some(Err(e)) => return s.failed(e),
            Some(Ok(v)) => {
                events.push(EventSpec::normal(
                    reason::KEY_STORED,
                    "SetSecret",
                    format!(
                        "stored the account key in Key Vault secret {} (version {})",
                        s.spec.key_vault.secret_name,
                        v.clone().unwrap_or_default()
                    ),
                ));
                v.clone()
            }
        }
    };
    let props = account.properties.clone().unwrap_or_default();
    let mut st = s.status.clone();
    st.azure_resource_id = account.id.clone().or(st.azure_resource_id);
    st.endpoint = props.endpoint.clone();
    st.location = account.location.clone();
    st.kind = account.kind.clone();
    st.key_vault_secret = Some(KeyVaultSecretRef {
        vault_uri: s.spec.key_vault.vault_uri.clone(),
        name: s.spec.key_vault.secret_name.clone(),
        version,
    });
    let msg = format!(
        "account {} ({}, {}) is reachable; key in Key Vault secret {}",
        s.spec.account_name,
        account.kind.clone().unwrap_or_default(),
        account.location.clone().unwrap_or_default(),
        s.spec.key_vault.secret_name
    );
    let with = AccountSnapshot {
        status: st,
        ..s.clone()
    };
    let AccountStep::Finish(mut f) = with.finish(
        true,
        reason::READY,
        &msg,
        Then::Requeue(s.timing.account_resync),
    ) else {
        unreachable!("finish is a finish")
    };
    // Stamped only when something changed: an unchanged resync writes nothing.
    if f.status != s.status || f.status.last_sync_time.is_none() {
        f.status.last_sync_time = Some(s.now.clone());
    }
    f.events.extend(events);
    AccountStep::Finish(f)
}

/// The AIAccount's finalizer: held while ModelDeployments use it.
pub fn decide_account_delete(s: &AccountSnapshot) -> AccountStep {
    let users = match &s.users {
        None => return AccountStep::Observe(AccountNeed::Users),
        Some(u) => u,
    };
    if users.is_empty() {
        return AccountStep::Finish(AccountFinish {
            status: s.status.clone(),
            events: vec![],
            then: Then::Released,
        });
    }
    let shown: Vec<_> = users.iter().take(5).cloned().collect();
    let msg = format!(
        "deletion is held: {} ModelDeployment(s) still use this account ({}{}); delete them first",
        users.len(),
        shown.join(", "),
        if users.len() > 5 { ", ..." } else { "" }
    );
    s.finish(
        false,
        reason::IN_USE,
        &msg,
        Then::DeletionWait(s.timing.poll_interval * 5),
    )
}
