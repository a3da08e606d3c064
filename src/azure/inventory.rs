//! What the operator last saw of each account's deployments: one paged LIST per account, shared
//! by every ModelDeployment on it, so steady-state cost grows with accounts, not deployments.
//! A refresh is single-flight (concurrent reconciles of one account wait for one LIST), and the
//! operator's own fresh reads and accepted writes are recorded in it so it never lags behind them.
//! Listings keep deployments without Azure's whole body (a write always reads its target fresh).
//! The listing also tells whether an operation the operator does not follow runs on the account
//! ([`Inventory::activity`]): Azure takes one write at a time per account.

use super::arm::{Deployment, Listing};
use crate::error::AzureError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Listed {
    at: Instant,
    pages: u32,
    deployments: HashMap<String, Arc<Deployment>>,
}

#[derive(Default)]
struct AccountListing {
    /// Held while a LIST of this account is in flight.
    refresh: tokio::sync::Mutex<()>,
    listed: Mutex<Option<Listed>>,
}

/// One deployment as the inventory knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// Age of the listing (or of the operator's own later read or write of this deployment).
    pub age: Duration,
    /// Pages the account's last LIST took.
    pub pages: u32,
    /// None: not in Azure.
    pub deployment: Option<Arc<Deployment>>,
}

/// A deployment of the account that Azure shows in a non-terminal provisioningState.
#[derive(Clone, Debug, PartialEq)]
pub struct Busy {
    pub deployment: String,
    pub state: String,
}

/// What the account's listing says of operations on the account's other deployments.
#[derive(Clone, Debug, PartialEq)]
pub struct Activity {
    /// The first deployment (by name) that is not in a terminal state, if any.
    pub busy: Option<Busy>,
    /// Age of the listing.
    pub age: Duration,
}

#[derive(Default)]
pub struct Inventory {
    accounts: Mutex<HashMap<String, Arc<AccountListing>>>,
}

fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl Inventory {
    fn account(&self, account: &str) -> Arc<AccountListing> {
        self.accounts
            .lock()
            .entry(account.to_string())
            .or_default()
            .clone()
    }

    /// The deployment `name` of `account` as last listed, if the account was ever listed.
    pub fn seen(&self, account: &str, name: &str) -> Option<Seen> {
        let a = self.account(account);
        let l = a.listed.lock();
        let l = l.as_ref()?;
        Some(Seen {
            age: l.at.elapsed(),
            pages: l.pages,
            deployment: l.deployments.get(&name_key(name)).cloned(),
        })
    }

    /// Whether a deployment of `account` other than `except` is being created, updated or
    /// deleted, as far as the last listing (and the operator's own later reads and writes) tell;
    /// None when the account was never listed.
    pub fn activity(&self, account: &str, except: &str) -> Option<Activity> {
        let a = self.account(account);
        let l = a.listed.lock();
        let l = l.as_ref()?;
        let except = name_key(except);
        let busy = l
            .deployments
            .iter()
            .filter(|(k, _)| **k != except)
            .filter_map(|(k, d)| {
                let state = d.provisioning_state()?;
                (!super::arm::is_terminal_state(state)).then(|| Busy {
                    deployment: d.name.clone().unwrap_or_else(|| k.clone()),
                    state: state.to_string(),
                })
            })
            .min_by(|a, b| a.deployment.cmp(&b.deployment));
        Some(Activity {
            busy,
            age: l.at.elapsed(),
        })
    }

    /// List `account` unless a listing younger than `max_age` exists (taken meanwhile by a
    /// concurrent reconcile, for instance); returns the deployment `name` as then known.
    pub async fn refresh<F, Fut>(
        &self,
        account: &str,
        name: &str,
        max_age: Duration,
        list: F,
    ) -> Result<Seen, AzureError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Listing, AzureError>>,
    {
        let a = self.account(account);
        let _flight = a.refresh.lock().await;
        if let Some(seen) = self.seen(account, name).filter(|s| s.age < max_age) {
            return Ok(seen);
        }
        let listing = list().await?;
        let deployments = listing
            .deployments
            .into_iter()
            .filter_map(|d| {
                let key = name_key(d.name.as_deref()?);
                Some((key, Arc::new(d.slim())))
            })
            .collect();
        *a.listed.lock() = Some(Listed {
            at: Instant::now(),
            pages: listing.pages,
            deployments,
        });
        Ok(self.seen(account, name).expect("just listed"))
    }

    /// The operator read or wrote `name` itself: record what Azure now holds (None: gone).
    pub fn record(&self, account: &str, name: &str, deployment: Option<Deployment>) {
        let a = self.account(account);
        let mut l = a.listed.lock();
        let Some(l) = l.as_mut() else {
            return; // never listed: the first listing will see it
        };
        match deployment {
            Some(d) => {
                l.deployments.insert(name_key(name), Arc::new(d.slim()));
            }
            None => {
                l.deployments.remove(&name_key(name));
            }
        }
    }

    /// Forget an account's listing (its AIAccount changed coordinates or went away).
    pub fn forget(&self, account: &str) {
        self.accounts.lock().remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn dep(name: &str, capacity: i32) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "name": name, "sku": {"name": "GlobalStandard", "capacity": capacity}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn concurrent_refreshes_share_one_list() {
        let inv = Arc::new(Inventory::default());
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = vec![];
        for i in 0..20 {
            let inv = inv.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                inv.refresh(
                    "acct",
                    &format!("d{i}"),
                    Duration::from_secs(60),
                    || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(Listing {
                            deployments: (0..20).map(|j| dep(&format!("D{j}"), j)).collect(),
                            pages: 2,
                        })
                    },
                )
                .await
                .unwrap()
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let seen = t.await.unwrap();
            assert_eq!(seen.pages, 2);
            let d = seen.deployment.expect("names are case-insensitive");
            assert_eq!(d.sku.as_ref().unwrap().capacity, Some(i as i32));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one LIST for twenty reconciles"
        );
    }

    #[tokio::test]
    async fn a_stale_listing_is_refreshed_and_own_writes_are_recorded() {
        let inv = Inventory::default();
        assert!(inv.seen("acct", "a").is_none(), "never listed");
        inv.record("acct", "a", Some(dep("a", 1)));
        assert!(
            inv.seen("acct", "a").is_none(),
            "a record alone is not a listing"
        );
        let list = |n: i32| async move {
            Ok(Listing {
                deployments: vec![dep("a", n)],
                pages: 1,
            })
        };
        inv.refresh("acct", "a", Duration::from_secs(60), || list(1))
            .await
            .unwrap();
        let fresh = inv
            .refresh("acct", "a", Duration::from_secs(60), || list(2))
            .await
            .unwrap();
        assert_eq!(
            fresh.deployment.unwrap().sku.as_ref().unwrap().capacity,
            Some(1),
            "young enough"
        );
        let stale = inv
            .refresh("acct", "a", Duration::ZERO, || list(3))
            .await
            .unwrap();
        assert_eq!(
            stale.deployment.unwrap().sku.as_ref().unwrap().capacity,
            Some(3)
        );
        inv.record("acct", "b", Some(dep("b", 7)));
        assert!(inv.seen("acct", "B").unwrap().deployment.is_some());
        inv.record("acct", "a", None);
        assert!(inv.seen("acct", "a").unwrap().deployment.is_none());
        let err = inv
            .refresh("acct", "a", Duration::ZERO, || async {
                Err(AzureError::transport(
                    "deployments.list",
                    "Timeout",
                    "slow".into(),
                ))
            })
            .await;
        assert!(err.is_err());
        assert!(
            inv.seen("acct", "b").is_some(),
            "a failed refresh keeps the last listing"
        );
    }

    fn in_state(name: &str, state: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "name": name, "properties": {"provisioningState": state}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn activity_names_another_deployment_in_a_non_terminal_state() {
        let inv = Inventory::default();
        assert!(inv.activity("acct", "a").is_none(), "never listed");
        let listing = Listing {
            deployments: vec![
                in_state("a", "Creating"),
                in_state("b", "Succeeded"),
                in_state("c", "Failed"),
                in_state("d", "Updating"),
            ],
            pages: 1,
        };
        inv.refresh("acct", "a", Duration::ZERO, || async { Ok(listing) })
            .await
            .unwrap();
        let busy = inv.activity("acct", "a").unwrap().busy.unwrap();
        assert_eq!(
            (busy.deployment.as_str(), busy.state.as_str()),
            ("d", "Updating"),
            "its own deployment does not count"
        );
        assert_eq!(
            inv.activity("acct", "D").unwrap().busy.unwrap().deployment,
            "a"
        );
        // The operator's own read of the busy deployment clears it.
        inv.record("acct", "d", Some(in_state("d", "Succeeded")));
        assert!(inv.activity("acct", "a").unwrap().busy.is_none());
        inv.record("acct", "e", Some(in_state("e", "Deleting")));
        assert_eq!(
            inv.activity("acct", "a").unwrap().busy.unwrap().state,
            "Deleting"
        );
    }
}
