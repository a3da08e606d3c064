//! Operator configuration (`Config`, timing knobs) and the shared reconcile `Context`, grouped
//! by what each part serves: the Kubernetes side (client, events, the account cache), the Azure
//! side (clients, credentials per account), write coordination (the per-account write slot, the
//! poll clock, what Azure accepted for each running write) and shared reads (the per-account
//! deployment listings, catalogs, quota usage, pre-validation stamps, failure counts).

use crate::azure::arm::{AccountModel, ArmClient, Deployment, Usage};
use crate::azure::auth::{CredentialKind, Secret, TokenCredential, TokenSettings};
use crate::azure::budget::{ArmBudget, BudgetConfig};
use crate::azure::cloud::{AzureSettings, Cloud};
use crate::azure::inventory::Inventory;
use crate::azure::keyvault::KeyVaultClient;
use crate::azure::lock::WriteGate;
use crate::azure::poll_clock::PollClock;
use crate::crd::{AIAccount, ModelDeployment};
use crate::error::{Error, Result};
use crate::leader::LeaderSettings;
use crate::metrics::Metrics;
use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::api::Api;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use moka::sync::Cache;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Timing knobs (defaults suit production; tests shrink them to milliseconds).
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// ModelDeployment drift resync (the account's listing is at most this old).
    pub resync: Duration,
    /// AIAccount resync (GET account, listKeys, Key Vault GET).
    pub account_resync: Duration,
    /// Poll interval for long-running operations when Azure gives no Retry-After.
    pub poll_interval: Duration,
    /// Upper bound on any poll/Retry-After wait.
    pub max_poll_interval: Duration,
    /// Safety-net re-check while queued for the account's write slot (the next writer is
    /// woken immediately when the slot is released; this only covers lost wake-ups).
    pub write_slot_retry: Duration,
    /// Transient error backoff: base and cap (exponential with ±20% jitter, at least Retry-After).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a terminal error holds writes for an unchanged spec/account.
    pub terminal_recheck: Duration,
    /// HTTP timeout per Azure request.
    pub http_timeout: Duration,
    /// A running operation holding an account's write slot longer than this is considered abandoned.
    pub max_write_hold: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            resync: Duration::from_secs(300),
            account_resync: Duration::from_secs(600),
            poll_interval: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(60),
            write_slot_retry: Duration::from_secs(10),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            terminal_recheck: Duration::from_secs(600),
            http_timeout: Duration::from_secs(30),
            max_write_hold: Duration::from_secs(3600),
        }
    }
}

impl Timing {
    /// Fast settings for tests on the emulators.
    pub fn fast() -> Self {
        Timing {
            resync: Duration::from_secs(2),
            account_resync: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            max_poll_interval: Duration::from_millis(500),
            write_slot_retry: Duration::from_secs(1),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            terminal_recheck: Duration::from_secs(600),
            http_timeout: Duration::from_secs(10),
            max_write_hold: Duration::from_secs(120),
        }
    }
}

/// Everything `run` needs.
#[derive(Clone)]
pub struct Config {
    pub client: kube::Client,
    pub azure: AzureSettings,
    pub timing: Timing,
    /// ARM request budget per subscription and principal.
    pub budget: BudgetConfig,
    /// Where to serve /metrics, /healthz, /readyz (None = no server).
    pub metrics_addr: Option<SocketAddr>,
    pub leader_election: Option<LeaderSettings>,
    /// Namespace of the operator (client-secret Secrets are read here).
    pub operator_namespace: String,
    /// Field manager for server-side apply.
    pub field_manager: String,
    /// Cluster name written to the ownership tag.
    pub cluster_name: String,
    /// Data-plane api-version written to connection ConfigMaps.
    pub openai_api_version: String,
    /// Instance name for events (pod name).
    pub instance: String,
    /// Max concurrent reconciles per controller (0 = unbounded).
    pub concurrency: u16,
}

impl Config {
    pub fn new(client: kube::Client, azure: AzureSettings) -> Self {
        Config {
            client,
            azure,
            timing: Timing::default(),
            budget: BudgetConfig::default(),
            metrics_addr: None,
            leader_election: None,
            operator_namespace: "default".into(),
            field_manager: "aoai-operator".into(),
            cluster_name: "default".into(),
            openai_api_version: "2024-10-21".into(),
            instance: hostname(),
            concurrency: 0,
        }
    }

    /// Test configuration: fast timing, metrics on 127.0.0.1:0, no leader election.
    /// `azure_vars` are the azure.env names (AZURE_*, SSL_CERT_FILE).
    pub fn for_tests(client: kube::Client, azure_vars: &HashMap<String, String>) -> Self {
        let mut c = Config::new(
            client,
            AzureSettings::from_vars(|k| azure_vars.get(k).cloned()),
        );
        c.timing = Timing::fast();
        c.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        c
    }
}

pub fn hostname() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "aoai-operator".into())
}

/// Exponential backoff (base × 2^(n-1), capped) with ±20% jitter; never shorter than the
/// service's Retry-After (itself capped so a hostile value cannot park a resource forever).
pub fn backoff_delay(t: &Timing, failures: u32, retry_after: Option<Duration>) -> Duration {
    let exp = t
        .backoff_base
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let base = exp.min(t.backoff_max);
    let jitter: f64 = rand::random_range(0.8..1.2);
    let d = base.mul_f64(jitter);
    match retry_after {
        Some(r) => d.max(r.min(t.max_poll_interval.max(t.backoff_max))),
        None => d,
    }
}

/// The Kubernetes side.
pub struct Kube {
    pub client: kube::Client,
    /// Who publishes events (a `Recorder` is made per event, see `reconcile::publish`).
    pub reporter: Reporter,
    /// AIAccounts as the ModelDeployment controller's account watch last saw them (that watch
    /// also triggers the dependent ModelDeployments, so a triggered reconcile sees the change).
    pub accounts: Store<AIAccount>,
}

/// The Azure side.
pub struct Azure {
    pub cloud: Cloud,
    pub http: reqwest::Client,
    pub arm: ArmClient,
    pub keyvault: KeyVaultClient,
    token_settings: TokenSettings,
    credentials: Mutex<HashMap<String, Arc<TokenCredential>>>,
}

/// One write at a time per account, and the timing of the operations in flight.
pub struct Writes {
    pub gate: WriteGate,
    /// When to poll long-running operations (learned per account and kind).
    pub polls: PollClock,
    /// Azure's response to each write in flight, per owner, with the generation it was for:
    /// once the operation succeeds that is the deployment's state, so it is not read back.
    accepted: Mutex<HashMap<String, (i64, Deployment)>>,
    /// Each running operation as recorded when Azure accepted it, per owner: if saving it in
    /// status failed, the next pass still follows it (and saves it again).
    running: Mutex<HashMap<String, crate::crd::PendingOperation>>,
}

/// Reads many reconciles share.
pub struct Shared {
    /// Each account's deployments, from one paged LIST per account per resync.
    pub inventory: Inventory,
    /// Account model catalogs, per account key, for 10 minutes.
    pub catalogs: Cache<String, Arc<Vec<AccountModel>>>,
    /// Quota usage per subscription and region, for 2 seconds: a burst of new deployments
    /// shares one read (Azure still checks each write's quota).
    pub usages: Cache<String, Arc<Vec<Usage>>>,
    /// ModelDeployments that passed pre-validation, with the (generation, account generation)
    /// checked: a write queued behind others is checked once, before it queues, not again on
    /// the hand-off, however long the queue. Forgotten after 10 minutes (quota moves; Azure
    /// still checks every write).
    pub prevalidated: Cache<String, (i64, i64)>,
    /// Azure ML: what a registry's catalogue says of each model reference, for 10 minutes.
    pub ml_models: Cache<String, Arc<Option<crate::azure::ml::RegistryModel>>>,
    /// Azure ML: each region's VM sizes (per subscription and region), for an hour.
    pub ml_vm_sizes: Cache<String, Arc<Vec<crate::azure::ml::VmSize>>>,
    /// Azure ML: vCPU quota per subscription and region, for 2 seconds (a burst of creates
    /// shares one read; Azure still checks each write).
    pub ml_usages: Cache<String, Arc<Vec<crate::azure::ml::FamilyUsage>>>,
    /// Consecutive transient failures per resource (for backoff).
    failures: Mutex<HashMap<String, u32>>,
}

/// What the controllers are wired with: the write-slot hand-offs and the account cache's writer.
pub struct Wiring {
    pub wake: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub accounts: Writer<AIAccount>,
}

/// Shared state of all reconciles.
pub struct Context {
    pub config: Config,
    pub kube: Kube,
    pub azure: Azure,
    pub writes: Writes,
    pub shared: Shared,
    pub metrics: Arc<Metrics>,
}

impl Context {
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<(Self, Wiring)> {
        let cloud = config.azure.cloud().map_err(Error::Config)?;
        let http = crate::azure::http::build_client(
            config.azure.ca_file.as_deref(),
            config.timing.http_timeout,
        )
        .map_err(Error::Config)?;
        let budget = Arc::new(ArmBudget::new(config.budget.clone()));
        let arm = ArmClient::new(
            http.clone(),
            &cloud.resource_manager,
            cloud.arm_scope(),
            metrics.clone(),
            budget,
        );
        let keyvault = KeyVaultClient::new(http.clone(), cloud.key_vault_scope(), metrics.clone());
        let (wake_tx, wake) = tokio::sync::mpsc::unbounded_channel();
        let (accounts, accounts_writer) = reflector::store();
        let t = &config.timing;
        let ctx = Context {
            kube: Kube {
                client: config.client.clone(),
                reporter: Reporter {
                    controller: "aoai-operator".into(),
                    instance: Some(config.instance.clone()),
                },
                accounts,
            },
            azure: Azure {
                token_settings: TokenSettings {
                    http: http.clone(),
                    authority_host: cloud.authority_host.clone(),
                    imds_host: config.azure.pod_identity_authority_host.clone(),
                    metrics: metrics.clone(),
                },
                cloud,
                http,
                arm,
                keyvault,
                credentials: Default::default(),
            },
            writes: Writes {
                gate: WriteGate::new(
                    t.max_write_hold,
                    t.write_slot_retry * 20 + Duration::from_secs(5),
                    wake_tx,
                ),
                polls: PollClock::new(t.poll_interval, t.max_poll_interval, t.poll_interval / 20),
                accepted: Default::default(),
                running: Default::default(),
            },
            shared: Shared {
                inventory: Inventory::default(),
                catalogs: Cache::builder()
                    .time_to_live(Duration::from_secs(600))
                    .build(),
                usages: Cache::builder()
                    .time_to_live(Duration::from_secs(2))
                    .build(),
                prevalidated: Cache::builder()
                    .time_to_live(Duration::from_secs(600))
                    .build(),
                ml_models: Cache::builder()
                    .time_to_live(Duration::from_secs(600))
                    .build(),
                ml_vm_sizes: Cache::builder()
                    .time_to_live(Duration::from_secs(3600))
                    .build(),
                ml_usages: Cache::builder()
                    .time_to_live(Duration::from_secs(2))
                    .build(),
                failures: Default::default(),
            },
            metrics,
            config,
        };
        Ok((
            ctx,
            Wiring {
                wake,
                accounts: accounts_writer,
            },
        ))
    }

    pub fn client(&self) -> kube::Client {
        self.kube.client.clone()
    }

    /// The credential for an account: its spec.credential, or the operator's ambient identity.
    /// Err(Config) says what is wrong and what to do.
    pub async fn credential_for(&self, account: &AIAccount) -> Result<Arc<TokenCredential>> {
        self.credential_of(account.spec.credential.as_ref()).await
    }

    /// The credential a spec.credential names (an AIAccount's or an AIWorkspace's), or the
    /// operator's ambient identity when it is absent.
    pub async fn credential_of(
        &self,
        credential: Option<&crate::crd::AccountCredential>,
    ) -> Result<Arc<TokenCredential>> {
        let kind = match credential {
            None => self.ambient_kind()?,
            Some(c) => {
                if let Some(w) = &c.workload_identity {
                    let token_file = self.config.azure.federated_token_file.clone().ok_or_else(|| {
                        Error::Config(
                            "workloadIdentity needs the operator's federated token file: set AZURE_FEDERATED_TOKEN_FILE (the azure.workload.identity/use pod label does this)".into(),
                        )
                    })?;
                    CredentialKind::WorkloadIdentity {
                        tenant_id: w.tenant_id.clone(),
                        client_id: w.client_id.clone(),
                        token_file,
                    }
                } else if let Some(m) = &c.managed_identity {
                    CredentialKind::ManagedIdentity {
                        client_id: m.client_id.clone(),
                    }
                } else if let Some(s) = &c.client_secret {
                    let ns = &self.config.operator_namespace;
                    let api: Api<K8sSecret> = Api::namespaced(self.client(), ns);
                    let secret = api.get_opt(&s.secret_ref.name).await?.ok_or_else(|| {
                        Error::Config(format!(
                            "Secret {ns}/{} (credential.clientSecret.secretRef) does not exist: create it in the operator's namespace",
                            s.secret_ref.name
                        ))
                    })?;
                    let value = secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get(&s.secret_ref.key))
                        .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
                        .or_else(|| secret.string_data.as_ref().and_then(|d| d.get(&s.secret_ref.key)).cloned())
                        .ok_or_else(|| {
                            Error::Config(format!(
                                "Secret {ns}/{} has no key {:?} (credential.clientSecret.secretRef.key)",
                                s.secret_ref.name, s.secret_ref.key
                            ))
                        })?;
                    CredentialKind::ClientSecret {
                        tenant_id: s.tenant_id.clone(),
                        client_id: s.client_id.clone(),
                        secret: Secret::new(value),
                    }
                } else {
                    return Err(Error::Config(
                        "spec.credential is empty: set workloadIdentity, managedIdentity or clientSecret, or remove credential".into(),
                    ));
                }
            }
        };
        let key = kind.cache_key();
        if let Some(c) = self.azure.credentials.lock().get(&key) {
            return Ok(c.clone());
        }
        let cred = Arc::new(
            TokenCredential::new(kind, &self.azure.token_settings).map_err(Error::Config)?,
        );
        Ok(self
            .azure
            .credentials
            .lock()
            .entry(key)
            .or_insert(cred)
            .clone())
    }

    fn ambient_kind(&self) -> Result<CredentialKind> {
        let a = &self.config.azure;
        Ok(match a.ambient_kind() {
            "client-secret" => CredentialKind::ClientSecret {
                tenant_id: a.tenant_id.clone().unwrap_or_default(),
                client_id: a.client_id.clone().unwrap_or_default(),
                secret: Secret::new(a.client_secret.clone().unwrap_or_default()),
            },
            "workload-identity" => CredentialKind::WorkloadIdentity {
                tenant_id: a.tenant_id.clone().unwrap_or_default(),
                client_id: a.client_id.clone().unwrap_or_default(),
                token_file: a.federated_token_file.clone().unwrap_or_default(),
            },
            _ => CredentialKind::ManagedIdentity {
                client_id: a.client_id.clone(),
            },
        })
    }

    /// An AIAccount by name, from the watch cache once it is filled (no API call), else read.
    pub async fn account(&self, name: &str) -> Result<Option<Arc<AIAccount>>> {
        let store = &self.kube.accounts;
        if tokio::time::timeout(Duration::from_secs(5), store.wait_until_ready())
            .await
            .is_ok_and(|r| r.is_ok())
        {
            return Ok(store.get(&ObjectRef::new(name)));
        }
        let api: Api<AIAccount> = Api::all(self.client());
        Ok(api.get_opt(name).await?.map(Arc::new))
    }

    /// Count a failure for backoff; returns the number of consecutive failures.
    pub fn failed(&self, key: &str) -> u32 {
        let mut f = self.shared.failures.lock();
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    pub fn succeeded(&self, key: &str) {
        self.shared.failures.lock().remove(key);
    }

    /// Exponential backoff with ±20% jitter, at least `retry_after`, capped by backoff_max.
    pub fn backoff(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        backoff_delay(&self.config.timing, failures, retry_after)
    }

    pub fn update_gate_metrics(&self) {
        let g = &self.writes.gate;
        self.metrics.write_queue_depth.set(g.queue_depth() as i64);
        self.metrics
            .accounts_write_busy
            .set(g.busy_accounts() as i64);
        self.metrics
            .operations_in_flight
            .set(g.operations_running() as i64);
    }
}

impl Writes {
    /// Azure accepted a long-running write for `owner` (spec `generation`), answering with
    /// `deployment` (None: the answer is not the deployment's future, e.g. pause/resume).
    pub fn operation_accepted(&self, owner: &str, generation: i64, deployment: Option<Deployment>) {
        let mut a = self.accepted.lock();
        match deployment {
            Some(d) => a.insert(owner.to_string(), (generation, d)),
            None => a.remove(owner),
        };
    }

    /// Remember `owner`'s running operation (also saved in status).
    pub fn operation_running(&self, owner: &str, op: crate::crd::PendingOperation) {
        self.running.lock().insert(owner.to_string(), op);
    }

    /// `owner`'s running operation as remembered, if any.
    pub fn running(&self, owner: &str) -> Option<crate::crd::PendingOperation> {
        self.running.lock().get(owner).cloned()
    }

    /// The write of `owner` ended: stop timing it, and when it succeeded for `generation`,
    /// return the deployment as Azure accepted it, now provisioned (no read-back needed).
    pub fn operation_ended(
        &self,
        owner: &str,
        succeeded: bool,
        generation: i64,
    ) -> Option<Deployment> {
        self.polls.finished(owner, succeeded);
        self.running.lock().remove(owner);
        let (g, mut d) = self.accepted.lock().remove(owner)?;
        if !succeeded || g != generation {
            return None;
        }
        let capacity = d.sku.as_ref().and_then(|s| s.capacity);
        let props = d.properties.get_or_insert_with(Default::default);
        props.provisioning_state = Some("Succeeded".into());
        props.current_capacity = capacity.or(props.current_capacity);
        Some(d)
    }

    /// The accepted state of `owner`'s write, as `operation_ended` would return it, without
    /// ending anything.
    pub fn peek_accepted(&self, owner: &str, generation: i64) -> Option<Deployment> {
        let a = self.accepted.lock();
        let (g, d) = a.get(owner)?;
        if *g != generation {
            return None;
        }
        let mut d = d.clone();
        let capacity = d.sku.as_ref().and_then(|s| s.capacity);
        let props = d.properties.get_or_insert_with(Default::default);
        props.provisioning_state = Some("Succeeded".into());
        props.current_capacity = capacity.or(props.current_capacity);
        Some(d)
    }
}

/// The ModelDeployment a write-slot hand-off names (`<namespace>/<name>`).
pub fn object_ref(owner: &str) -> Option<ObjectRef<ModelDeployment>> {
    let (ns, name) = owner.split_once('/')?;
    Some(ObjectRef::new(name).within(ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_caps_and_honours_retry_after() {
        let t = Timing::default(); // base 2s, max 300s
        for _ in 0..50 {
            let d1 = backoff_delay(&t, 1, None);
            assert!(
                d1 >= Duration::from_millis(1600) && d1 <= Duration::from_millis(2400),
                "{d1:?}"
            );
            let d3 = backoff_delay(&t, 3, None);
            assert!(
                d3 >= Duration::from_millis(6400) && d3 <= Duration::from_millis(9600),
                "{d3:?}"
            );
            let big = backoff_delay(&t, 40, None);
            assert!(big <= Duration::from_secs(360), "{big:?}");
            let ra = backoff_delay(&t, 1, Some(Duration::from_secs(30)));
            assert!(
                ra >= Duration::from_secs(30),
                "Retry-After honoured: {ra:?}"
            );
            let hostile = backoff_delay(&t, 1, Some(Duration::from_secs(86400)));
            assert!(hostile <= Duration::from_secs(300), "{hostile:?}");
        }
    }
}
