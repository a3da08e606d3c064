//! Azure emulator (issue 4): Entra ID tokens, ARM `Microsoft.CognitiveServices` accounts and
//! deployments (LRO, 409 RequestConflict, quota, catalog, throttling), Key Vault secrets and the
//! Azure OpenAI data plane, over HTTPS on loopback with a generated CA. Test infrastructure.
//!
//! Modules: `tls` (CA), `entra` (tokens), `arm` (ARM surface), `catalog` (models, quota),
//! `ratelimit` (token buckets), `keyvault`, `dataplane`, `faults`, `log`, `contract`
//! (OpenAPI → JSON Schema validation), `admin` (HTTP control routes), `server` (listeners),
//! `ml` (the Microsoft.MachineLearningServices side: workspaces, online and serverless endpoints).
mod admin;
mod arm;
pub mod catalog;
pub mod contract;
mod dataplane;
mod entra;
mod faults;
mod keyvault;
mod log;
pub mod ml;
mod ratelimit;
mod server;
mod tls;
mod world;
// Cognitive Services extensions of issues 11, 13 and 14: `accounts`, `deployments`,
// `projects`, `rai` (content filters), `authorization` (role assignments), `inference` (data
// plane answers), `paging` (nextLink), `controls` (out-of-band methods and admin routes).
mod accounts;
mod authorization;
mod controls;
mod deployments;
mod inference;
mod paging;
mod projects;
mod rai;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use catalog::{CapacityRule, CatalogModel};
pub use faults::{Fault, FaultAction, Surface};
pub use log::RequestRecord;
pub use ml::{MlEnv, RegistryModel, ServedRequest, VmSize, WorkspaceSeed};

pub use controls::Identity;
use entra::{App, Signer};
use server::Listener;
use world::World;
pub use world::held_properties_body;

/// Emulator behaviour knobs. `AzureConfig::default()` gives ARM's documented defaults.
#[derive(Clone, Debug)]
pub struct AzureConfig {
    /// Time a deployment/account write takes before its operation reaches a terminal state.
    pub provisioning_delay: Duration,
    /// `Retry-After` (seconds) handed out on long-running operations.
    pub lro_retry_after_secs: u64,
    /// Lifetime of issued access tokens.
    pub token_lifetime: Duration,
    /// ARM read bucket per (subscription, principal): capacity and refill per second.
    pub read_capacity: u32,
    pub read_refill_per_sec: u32,
    /// ARM write bucket per (subscription, principal): capacity and refill per second.
    pub write_capacity: u32,
    pub write_refill_per_sec: u32,
    /// ARM delete bucket per (subscription, principal): capacity and refill per second.
    pub delete_capacity: u32,
    pub delete_refill_per_sec: u32,
    /// The subscription-wide buckets (all principals together) are this many times the
    /// per-principal ones (ARM documents 15).
    pub global_limit_multiplier: u32,
    /// Items per page of an ARM list before `nextLink` (0 = no paging). Azure does not
    /// document the page size of these lists; 100 keeps an account at Azure's default limits
    /// (32 standard deployments) on one page.
    pub list_page_size: usize,
    /// Quota limit for a (subscription, location, usage name) not set with `set_quota`.
    pub default_quota: u32,
    /// Azure specs folder for request/response validation; `None` = env `AZURE_SPECS_DIR`.
    pub specs_dir: Option<PathBuf>,
    /// Azure Machine Learning specs folder; `None` = env `AZURE_SPECS_ML_DIR`, else
    /// `azure-specs-ml` beside the specs folder.
    pub ml_specs_dir: Option<PathBuf>,
}

impl Default for AzureConfig {
    fn default() -> Self {
        AzureConfig {
            provisioning_delay: Duration::from_millis(0),
            lro_retry_after_secs: 1,
            token_lifetime: Duration::from_secs(3600),
            read_capacity: 250,
            read_refill_per_sec: 25,
            write_capacity: 200,
            write_refill_per_sec: 10,
            delete_capacity: 200,
            delete_refill_per_sec: 10,
            global_limit_multiplier: 15,
            list_page_size: 100,
            default_quota: 100_000,
            specs_dir: None,
            ml_specs_dir: None,
        }
    }
}

/// The values of `DIR/azure.env`.
#[derive(Clone, Debug)]
pub struct AzureEnv {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub authority_host: String,
    pub federated_token_file: String,
    pub resource_manager_endpoint: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub openai_account: String,
    pub key_vault_uri: String,
    pub ca_file: String,
    /// IMDS-style base URL (env `AZURE_POD_IDENTITY_AUTHORITY_HOST`).
    pub managed_identity_endpoint: String,
    /// The seeded account's data-plane endpoint (extra: `AZURE_OPENAI_ENDPOINT`).
    pub openai_endpoint: String,
    /// Client id of the seeded user-assigned managed identity.
    pub managed_identity_client_id: String,
    /// The emulator's admin routes (extra: `AZURE_TESTBED_ADMIN_URL`).
    pub admin_url: String,
    /// The seeded Azure Machine Learning workspaces and registry (`AZURE_ML_*`).
    pub ml: MlEnv,
}

impl AzureEnv {
    /// `KEY=value` lines as written to `DIR/azure.env`.
    pub fn to_env_file(&self) -> String {
        self.vars()
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
    }

    /// The variables as (name, value) pairs.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_TENANT_ID", self.tenant_id.clone()),
            ("AZURE_CLIENT_ID", self.client_id.clone()),
            ("AZURE_CLIENT_SECRET", self.client_secret.clone()),
            ("AZURE_AUTHORITY_HOST", self.authority_host.clone()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                self.federated_token_file.clone(),
            ),
            (
                "AZURE_RESOURCE_MANAGER_ENDPOINT",
                self.resource_manager_endpoint.clone(),
            ),
            ("AZURE_SUBSCRIPTION_ID", self.subscription_id.clone()),
            ("AZURE_RESOURCE_GROUP", self.resource_group.clone()),
            ("AZURE_OPENAI_ACCOUNT", self.openai_account.clone()),
            ("AZURE_OPENAI_ENDPOINT", self.openai_endpoint.clone()),
            ("AZURE_KEY_VAULT_URI", self.key_vault_uri.clone()),
            ("SSL_CERT_FILE", self.ca_file.clone()),
            ("REQUESTS_CA_BUNDLE", self.ca_file.clone()),
            (
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                self.managed_identity_endpoint.clone(),
            ),
            (
                "AZURE_MANAGED_IDENTITY_CLIENT_ID",
                self.managed_identity_client_id.clone(),
            ),
            ("AZURE_TESTBED_ADMIN_URL", self.admin_url.clone()),
        ]
        .into_iter()
        .chain(self.ml.vars())
        .collect()
    }
}

/// Seed for an account (`add_account`).
#[derive(Clone, Debug)]
pub struct AccountSeed {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub kind: String,
}

/// What a handler reports to the request log beside the status.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogInfo {
    pub principal: Option<String>,
    pub account_id: Option<String>,
    pub is_write: bool,
}

pub(crate) struct Inner {
    pub config: Mutex<AzureConfig>,
    pub world: Mutex<World>,
    pub faults: Mutex<Vec<Fault>>,
    pub log: Mutex<Vec<RequestRecord>>,
    pub tls: tls::Tls,
    pub signer: Signer,
    /// Every access token the token endpoints handed out (for leak scans).
    pub issued: Mutex<Vec<String>>,
    pub tenant_id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub client: App,
    pub managed_identity: App,
    apps: Mutex<HashMap<String, App>>,
    main_addr: SocketAddr,
    admin_addr: Mutex<Option<SocketAddr>>,
    pub contract: Option<Arc<contract::Contract>>,
    /// The Machine Learning side: its contract and world.
    pub ml: ml::MlState,
    pub violations: Mutex<Vec<String>>,
    files: Mutex<(PathBuf, PathBuf)>, // (ca file, federated token file)
    federated_token: String,
    rt: tokio::runtime::Handle,
    cancel: CancellationToken,
    seeded_account: Mutex<String>,
    seeded_vault: Mutex<String>,
}

impl Inner {
    /// Sign an access token handed to a client, and remember it.
    pub fn issue_access_token(&self, claims: &serde_json::Value) -> String {
        let t = self.signer.sign(claims);
        self.issued.lock().push(t.clone());
        t
    }

    pub fn main_url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.main_addr.port())
    }
    pub fn app(&self, client_id: &str) -> Option<App> {
        self.apps
            .lock()
            .get(&client_id.to_ascii_lowercase())
            .cloned()
    }
    pub fn default_account(&self) -> String {
        self.seeded_account.lock().clone()
    }
    pub(crate) fn spawn(self: &Arc<Self>, kind: Listener, tls: bool) -> anyhow::Result<SocketAddr> {
        server::spawn_listener(self.clone(), kind, tls, self.cancel.clone(), &self.rt)
    }
}

struct ShutdownGuard {
    cancel: CancellationToken,
    temp_dir: PathBuf,
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        self.cancel.cancel();
        let _ = std::fs::remove_dir_all(&self.temp_dir);
    }
}

/// The Azure emulator. Cheap to clone; listeners stop when the last clone is dropped.
#[derive(Clone)]
pub struct AzureEmulator {
    inner: Arc<Inner>,
    _guard: Arc<ShutdownGuard>,
}

impl std::fmt::Debug for AzureEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureEmulator")
            .field("url", &self.inner.main_url())
            .finish()
    }
}

fn random_secret() -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..24).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl AzureEmulator {
    /// Binds the loopback listeners and seeds the default world: one subscription, resource
    /// group, AIServices account `contoso-ai-eastus` (eastus) with the default catalog, and
    /// Key Vault `contoso-kv`.
    pub async fn start(config: AzureConfig) -> anyhow::Result<AzureEmulator> {
        // The process's rustls provider, for every HTTPS client in it (tests build reqwest ones).
        crate::install_crypto_provider();
        let tls = tls::generate()?;
        let specs_dir = config
            .specs_dir
            .clone()
            .or_else(|| std::env::var_os("AZURE_SPECS_DIR").map(PathBuf::from));
        let specs_dir = specs_dir.and_then(|d| contract::resolve_specs_dir(&d));
        let contract = match &specs_dir {
            Some(dir) => Some(contract::Contract::load_shared(dir)?),
            None => None,
        };
        let ml = ml::MlState::new(config.ml_specs_dir.clone(), specs_dir.as_deref());
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let main_addr = std_listener.local_addr()?;
        let tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47".to_string();
        let client = App {
            client_id: "5d1c6f3e-2b7a-4c1e-9f10-aa1100000001".into(),
            secret: Some(random_secret()),
            object_id: "9b3e1c2d-0000-4000-8000-0000000000a1".into(),
        };
        let managed_identity = App {
            client_id: "7c2a9e4f-3d5b-4a6c-8e20-bb2200000002".into(),
            secret: None,
            object_id: "9b3e1c2d-0000-4000-8000-0000000000b2".into(),
        };
        let mut apps = HashMap::new();
        apps.insert(client.client_id.clone(), client.clone());
        apps.insert(managed_identity.client_id.clone(), managed_identity.clone());
        let signer = Signer::new();
        let federated_token = signer.sign(&serde_json::json!({
            "aud": [entra::FEDERATED_AUDIENCE],
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": "system:serviceaccount:aoai-system:aoai-operator",
            "iat": entra::now(),
            "nbf": entra::now(),
            "exp": entra::now() + 7 * 24 * 3600,
        }));
        let temp_dir =
            std::env::temp_dir().join(format!("azure-emulator-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&temp_dir)?;
        let ca_file = temp_dir.join("ca.pem");
        let token_file = temp_dir.join("federated-token");
        std::fs::write(&ca_file, &tls.ca_pem)?;
        std::fs::write(&token_file, &federated_token)?;
        let cancel = CancellationToken::new();
        let inner = Arc::new(Inner {
            config: Mutex::new(config),
            world: Mutex::new(World::default()),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            tls,
            signer,
            issued: Default::default(),
            tenant_id,
            subscription_id: "00000000-0000-0000-0000-000000000000".into(),
            resource_group: "rg-ai".into(),
            client,
            managed_identity,
            apps: Mutex::new(apps),
            main_addr,
            admin_addr: Mutex::new(None),
            contract,
            ml,
            violations: Mutex::new(Vec::new()),
            files: Mutex::new((ca_file, token_file)),
            federated_token,
            rt: tokio::runtime::Handle::current(),
            cancel: cancel.clone(),
            seeded_account: Mutex::new(String::new()),
            seeded_vault: Mutex::new(String::new()),
        });
        server::spawn_on(
            inner.clone(),
            Listener::Main,
            std_listener,
            true,
            cancel.clone(),
            &inner.rt,
        )?;
        let admin = inner.spawn(Listener::Admin, false)?;
        *inner.admin_addr.lock() = Some(admin);
        let emulator = AzureEmulator {
            inner: inner.clone(),
            _guard: Arc::new(ShutdownGuard { cancel, temp_dir }),
        };
        let account = emulator.add_account(AccountSeed {
            subscription_id: inner.subscription_id.clone(),
            resource_group: inner.resource_group.clone(),
            name: "contoso-ai-eastus".into(),
            location: "eastus".into(),
            kind: "AIServices".into(),
        });
        *inner.seeded_account.lock() = account;
        let vault = emulator.add_vault("contoso-kv");
        *inner.seeded_vault.lock() = vault;
        emulator.seed_ml();
        Ok(emulator)
    }

    /// The `azure.env` values.
    pub fn env(&self) -> AzureEnv {
        let i = &self.inner;
        let (ca, token) = i.files.lock().clone();
        let account_id = i.seeded_account.lock().clone();
        let endpoint = self.account_endpoint(&account_id).unwrap_or_default();
        AzureEnv {
            tenant_id: i.tenant_id.clone(),
            client_id: i.client.client_id.clone(),
            client_secret: i.client.secret.clone().unwrap_or_default(),
            authority_host: i.main_url(),
            federated_token_file: token.display().to_string(),
            resource_manager_endpoint: i.main_url(),
            subscription_id: i.subscription_id.clone(),
            resource_group: i.resource_group.clone(),
            openai_account: account_id
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            key_vault_uri: i.seeded_vault.lock().clone(),
            ca_file: ca.display().to_string(),
            managed_identity_endpoint: i.main_url(),
            openai_endpoint: endpoint,
            managed_identity_client_id: i.managed_identity.client_id.clone(),
            admin_url: self.admin_url(),
            ml: self.ml_env(),
        }
    }

    /// PEM of the emulator's CA.
    pub fn ca_pem(&self) -> String {
        self.inner.tls.ca_pem.clone()
    }

    /// Writes `DIR/ca.pem`, `DIR/federated-token` and `DIR/azure.env`.
    pub fn write_files(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let ca = dir.join("ca.pem");
        let token = dir.join("federated-token");
        std::fs::write(&ca, &self.inner.tls.ca_pem)?;
        std::fs::write(&token, &self.inner.federated_token)?;
        *self.inner.files.lock() = (ca, token);
        std::fs::write(dir.join("azure.env"), self.env().to_env_file())?;
        Ok(())
    }

    /// Base URL of the plain-HTTP admin routes (faults, log, out-of-band edits).
    pub fn admin_url(&self) -> String {
        let addr = self.inner.admin_addr.lock().expect("admin listener");
        format!("http://127.0.0.1:{}/", addr.port())
    }

    /// Base URL of Entra ID, managed identity and ARM (`https://127.0.0.1:PORT/`).
    pub fn url(&self) -> String {
        self.inner.main_url()
    }

    /// The seeded account's ARM id.
    pub fn default_account_id(&self) -> String {
        self.inner.seeded_account.lock().clone()
    }

    /// The seeded vault's URI.
    pub fn default_vault_uri(&self) -> String {
        self.inner.seeded_vault.lock().clone()
    }

    /// The federated (workload identity) token written to the federated token file.
    pub fn federated_token(&self) -> String {
        self.inner.federated_token.clone()
    }

    /// A signed access token for the default client, for `audience`, valid `lifetime_secs`
    /// (negative = already expired). For tests of token validation.
    pub fn issue_token(&self, audience: &str, lifetime_secs: i64) -> String {
        let claims = entra::access_token_claims(
            &self.inner.tenant_id,
            audience,
            &self.inner.client,
            lifetime_secs,
        );
        self.inner.signer.sign(&claims)
    }

    /// Every access token the Entra ID and managed identity endpoints have issued so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner.issued.lock().clone()
    }

    /// Registers another application (client id + secret) in the tenant.
    pub fn add_client(&self, client_id: &str, secret: &str) {
        self.inner.apps.lock().insert(
            client_id.to_ascii_lowercase(),
            App {
                client_id: client_id.to_string(),
                secret: Some(secret.to_string()),
                object_id: uuid::Uuid::new_v4().to_string(),
            },
        );
    }

    pub fn set_config(&self, f: impl FnOnce(&mut AzureConfig)) {
        f(&mut self.inner.config.lock());
    }

    // ----- seeding / world edits -----

    /// Adds an account (succeeded, default catalog, its own data-plane listener); returns its ARM id.
    pub fn add_account(&self, seed: AccountSeed) -> String {
        let id = world::account_id(&seed.subscription_id, &seed.resource_group, &seed.name);
        let addr = self
            .inner
            .spawn(Listener::Data(id.to_ascii_lowercase()), true)
            .expect("bind account data plane");
        let endpoint = format!("https://127.0.0.1:{}/", addr.port());
        self.inner
            .world
            .lock()
            .insert_account(&seed, &endpoint, "Succeeded");
        id
    }

    /// Adds a Key Vault (its own listener); returns its URI `https://127.0.0.1:PORT/`.
    pub fn add_vault(&self, name: &str) -> String {
        let addr = self
            .inner
            .spawn(Listener::Vault(name.to_ascii_lowercase()), true)
            .expect("bind vault");
        let uri = format!("https://127.0.0.1:{}/", addr.port());
        self.inner.world.lock().insert_vault(name, &uri);
        uri
    }

    pub fn account_endpoint(&self, account_id: &str) -> Option<String> {
        self.inner
            .world
            .lock()
            .account(account_id)
            .map(|a| a.endpoint.clone())
    }

    pub fn set_provisioning_delay(&self, d: Duration) {
        self.inner.config.lock().provisioning_delay = d;
    }

    /// The next `n` long-running operations end `Failed` with this error.
    pub fn fail_next_operations(&self, n: usize, code: &str, message: &str) {
        let mut w = self.inner.world.lock();
        for _ in 0..n {
            w.fail_next
                .push_back((code.to_string(), message.to_string()));
        }
    }

    /// Sets the quota limit, e.g. `usage_name` = `OpenAI.GlobalStandard.gpt-4o-mini`.
    pub fn set_quota(&self, subscription: &str, location: &str, usage_name: &str, limit: u32) {
        self.inner
            .world
            .lock()
            .quotas
            .insert(world::quota_key(subscription, location, usage_name), limit);
    }

    /// Current usage for a quota (sum of deployment capacities).
    pub fn quota_usage(&self, subscription: &str, location: &str, usage_name: &str) -> u32 {
        let mut w = self.inner.world.lock();
        w.settle();
        w.usage(subscription, location, usage_name, None)
    }

    /// Replaces an account's model catalog.
    pub fn set_catalog(&self, account_id: &str, models: Vec<CatalogModel>) {
        if let Some(a) = self.inner.world.lock().account_mut(account_id) {
            a.catalog = models;
        }
    }

    pub fn catalog(&self, account_id: &str) -> Vec<CatalogModel> {
        self.inner
            .world
            .lock()
            .account(account_id)
            .map(|a| a.catalog.clone())
            .unwrap_or_default()
    }

    /// Creates or replaces a deployment as if done in the portal: server fields are filled,
    /// no quota/catalog check, no operation, provisioningState Succeeded.
    pub fn put_deployment_out_of_band(&self, account_id: &str, name: &str, body: Value) {
        let mut w = self.inner.world.lock();
        w.settle();
        w.put_out_of_band(account_id, name, body);
    }

    /// Edits the stored ARM JSON of a deployment directly.
    pub fn patch_deployment_out_of_band(
        &self,
        account_id: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let mut w = self.inner.world.lock();
        w.settle();
        if let Some(d) = w
            .account_mut(account_id)
            .and_then(|a| a.deployments.get_mut(&name.to_ascii_lowercase()))
        {
            f(&mut d.body);
        }
    }

    pub fn delete_deployment_out_of_band(&self, account_id: &str, name: &str) {
        let mut w = self.inner.world.lock();
        w.settle();
        if let Some(a) = w.account_mut(account_id) {
            a.deployments.remove(&name.to_ascii_lowercase());
        }
    }

    /// ARM JSON of a deployment as GET returns it.
    pub fn deployment(&self, account_id: &str, name: &str) -> Option<Value> {
        let mut w = self.inner.world.lock();
        w.settle();
        w.account(account_id)
            .and_then(|a| a.deployments.get(&name.to_ascii_lowercase()))
            .map(|d| d.body.clone())
    }

    pub fn deployments(&self, account_id: &str) -> Vec<Value> {
        let mut w = self.inner.world.lock();
        w.settle();
        w.account(account_id)
            .map(|a| a.deployments.values().map(|d| d.body.clone()).collect())
            .unwrap_or_default()
    }

    pub fn account_keys(&self, account_id: &str) -> (String, String) {
        self.inner
            .world
            .lock()
            .account(account_id)
            .map(|a| (a.key1.clone(), a.key2.clone()))
            .unwrap_or_default()
    }

    pub fn regenerate_key(&self, account_id: &str, key1: bool) {
        if let Some(a) = self.inner.world.lock().account_mut(account_id) {
            a.regenerate(key1);
        }
    }

    /// Latest enabled version of a secret: (value, version).
    pub fn secret(&self, vault_uri: &str, name: &str) -> Option<(String, String)> {
        let w = self.inner.world.lock();
        let vault = w.vault_by_uri(vault_uri)?;
        let s = vault.secrets.get(&name.to_ascii_lowercase())?;
        let v = s.versions.last()?;
        Some((v.value.clone(), v.version.clone()))
    }

    // ----- faults and observation -----

    /// Injects a fault for the next `fault.count` matching requests.
    pub fn inject(&self, fault: Fault) {
        self.inner.faults.lock().push(fault);
    }

    pub fn clear_faults(&self) {
        self.inner.faults.lock().clear();
    }

    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.inner.log.lock().clone()
    }

    pub fn clear_request_log(&self) {
        self.inner.log.lock().clear();
    }

    /// High-water mark of ARM deployment writes in flight on one account (a write counts from
    /// its request until its long-running operation ends; a write rejected with 409 because
    /// another is in flight counts too).
    pub fn max_concurrent_writes_per_account(&self) -> usize {
        self.inner.world.lock().max_concurrent
    }

    /// Contract violations seen so far (requests accepted or responses produced that do not
    /// validate against the spec). Empty when no specs are loaded.
    pub fn contract_violations(&self) -> Vec<String> {
        self.inner.violations.lock().clone()
    }

    /// Whether the spec contract is loaded (AZURE_SPECS_DIR or `AzureConfig::specs_dir`).
    pub fn contract_loaded(&self) -> bool {
        self.inner.contract.is_some()
    }
}

/// `start(default)` + `write_files(dir)`.
pub async fn serve_to_dir(dir: &Path) -> anyhow::Result<AzureEmulator> {
    let emulator = AzureEmulator::start(AzureConfig::default()).await?;
    emulator.write_files(dir)?;
    Ok(emulator)
}
