//! Shared harness of the issue-6 suites (chaos, bad-input catalogue, secret-leak scan): this
//! binary's real Kubernetes control plane (tests/common/cluster.rs), the Azure emulator
//! in-process, the CRDs, three namespaces and an operator namespace of the test's own (unique
//! names), accounts, the operator started in-process, a debug log capture, the end-of-scenario
//! invariants (checked from Kubernetes, the emulator's state and its request log) and the
//! secret-leak scan.
#![allow(dead_code)]

#[path = "../common/cluster.rs"]
pub mod cluster;

pub mod capture;
pub mod invariants;
pub mod leaks;

use aoai_operator::crd::{AIAccount, ModelDeployment};
use aoai_operator::{Config, Operator, Timing};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};
use testbed::azure::{AccountSeed, AzureConfig, AzureEmulator};
use testbed::harness::{Cluster, Exclusive};

pub const SUB: &str = "00000000-0000-0000-0000-000000000000";
pub const RG: &str = "rg-ai";
/// Base names of the test's namespaces (each gets a unique suffix).
pub const NAMESPACE_BASES: [&str; 3] = ["team-a", "team-b", "team-c"];

/// One Azure account known to the test bed, with its AIAccount resource.
#[derive(Clone, Debug)]
pub struct AccountInfo {
    /// Name of the AIAccount resource.
    pub cr_name: String,
    /// Azure account name.
    pub account_name: String,
    /// ARM id.
    pub arm_id: String,
    pub vault_uri: String,
    pub secret_name: String,
}

/// Knobs of a test bed.
#[derive(Clone, Debug)]
pub struct BedOptions {
    pub accounts: usize,
    pub provisioning_delay: Duration,
    pub token_lifetime: Duration,
    /// Control-plane options (e.g. no watch cache, so etcd compaction expires watches).
    pub kube: cluster::Options,
    /// A control plane of this test's own (to kill and restart its apiserver).
    pub own_control_plane: bool,
}

impl Default for BedOptions {
    fn default() -> Self {
        BedOptions {
            accounts: 3,
            provisioning_delay: Duration::from_millis(60),
            token_lifetime: Duration::from_secs(3600),
            kube: cluster::Options::default(),
            own_control_plane: false,
        }
    }
}

/// The control plane, the Azure emulator, the CRDs, the test's namespaces and `accounts`
/// Ready-able AIAccounts.
pub struct Bed {
    pub cluster: Cluster,
    pub azure: AzureEmulator,
    pub client: kube::Client,
    pub accounts: Vec<AccountInfo>,
    /// azure.env values (AZURE_*, SSL_CERT_FILE) for the operator's ambient identity.
    pub vars: HashMap<String, String>,
    pub logs: capture::LogCapture,
    /// Secrets registered on the fly (client secrets of extra principals) for the leak scan.
    pub extra_secrets: parking_lot::Mutex<Vec<String>>,
    /// Metrics addresses of operators started on this bed (scanned for leaks).
    pub metrics_addrs: parking_lot::Mutex<Vec<std::net::SocketAddr>>,
    /// The test's namespaces (unique names for team-a, team-b, team-c; all allowed).
    pub namespaces: Vec<String>,
    /// The operator's namespace (client-secret Secrets, Leases).
    pub operator_ns: String,
    /// Between the operator and the apiserver: cut or stall its connections.
    pub proxy: std::sync::Arc<testbed::proxy::Proxy>,
    /// The operator's client: ServiceAccount `operator_ns/aoai-operator` (bound to cluster-admin)
    /// through `proxy`; its requests are told apart in the audit log by that user.
    pub operator_client: kube::Client,
    /// Kubeconfig of the operator's ServiceAccount (direct to the apiserver, token inline).
    operator_kubeconfig: String,
    _exclusive: Exclusive,
}

/// The ServiceAccount the operator runs as.
pub const OPERATOR_SA: &str = "aoai-operator";

impl Bed {
    pub async fn new(opts: BedOptions) -> Bed {
        let logs = capture::install();
        let azure = AzureEmulator::start(AzureConfig {
            provisioning_delay: opts.provisioning_delay,
            // Scale ARM's Retry-After to the short provisioning delays of the tests (0 = poll again soon).
            lro_retry_after_secs: 0,
            token_lifetime: opts.token_lifetime,
            ..AzureConfig::default()
        })
        .await
        .expect("start the Azure emulator");
        let cluster::Prepared {
            cluster,
            client,
            exclusive,
        } = cluster::prepare(opts.kube.clone(), opts.own_control_plane).await;
        let mut namespaces = Vec::new();
        for base in NAMESPACE_BASES {
            namespaces.push(
                cluster
                    .namespace(base, &[("ai-access", "true")])
                    .await
                    .expect("create namespace"),
            );
        }
        let operator_ns = cluster
            .namespace("aoai-system", &[])
            .await
            .expect("create namespace");
        let proxy = std::sync::Arc::new(cluster.proxy().await.expect("proxy"));
        let (operator_client, operator_kubeconfig) =
            operator_client(&cluster, &client, &operator_ns, &proxy).await;
        let vault_uri = azure.default_vault_uri();
        let mut accounts = Vec::new();
        for i in 0..opts.accounts {
            let account_name = format!("chaos-acct-{i}");
            let arm_id = azure.add_account(AccountSeed {
                subscription_id: SUB.into(),
                resource_group: RG.into(),
                name: account_name.clone(),
                location: "eastus".into(),
                kind: "AIServices".into(),
            });
            accounts.push(AccountInfo {
                cr_name: format!("acct-{i}"),
                account_name,
                arm_id,
                vault_uri: vault_uri.clone(),
                secret_name: format!("chaos-acct-{i}-key"),
            });
        }
        let vars: HashMap<String, String> = azure
            .env()
            .vars()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let bed = Bed {
            cluster,
            azure,
            client,
            accounts,
            vars,
            logs,
            extra_secrets: Default::default(),
            metrics_addrs: Default::default(),
            namespaces,
            operator_ns,
            proxy,
            operator_client,
            operator_kubeconfig,
            _exclusive: exclusive,
        };
        for a in bed.accounts.clone() {
            bed.create_account_cr(&a, None).await;
        }
        bed
    }

    /// Create the AIAccount resource for `a` (ambient identity unless `credential` is given),
    /// allowing the test's namespaces.
    pub async fn create_account_cr(&self, a: &AccountInfo, credential: Option<Value>) {
        let mut spec = json!({
            "subscriptionId": SUB,
            "resourceGroup": RG,
            "accountName": a.account_name,
            "keyVault": {"vaultUri": a.vault_uri, "secretName": a.secret_name},
            "allowedNamespaces": {"names": self.namespaces},
        });
        if let Some(c) = credential {
            spec["credential"] = c;
        }
        let obj: AIAccount = serde_json::from_value(json!({
            "apiVersion": "aoai.dev/v1alpha1", "kind": "AIAccount",
            "metadata": {"name": a.cr_name}, "spec": spec,
        }))
        .expect("AIAccount");
        Api::<AIAccount>::all(self.client.clone())
            .create(&PostParams::default(), &obj)
            .await
            .expect("create AIAccount");
    }

    /// Operator configuration for this bed: fast timing scaled to the emulator's delays.
    pub fn config(&self) -> Config {
        self.config_with(&self.vars)
    }

    pub fn config_with(&self, vars: &HashMap<String, String>) -> Config {
        let mut c = Config::for_tests(self.operator_client.clone(), vars);
        c.operator_namespace = self.operator_ns.clone();
        // Timing::fast() with a resync long enough that 50 deployments' drift GETs (one subscription,
        // one principal) stay well inside ARM's read budget (250 + 25/s), and a short HTTP timeout.
        let mut t = Timing::fast();
        t.resync = Duration::from_secs(10);
        t.account_resync = Duration::from_secs(30);
        t.backoff_max = t.backoff_max.min(Duration::from_millis(1500));
        t.http_timeout = Duration::from_secs(5);
        t.max_write_hold = Duration::from_secs(60);
        c.timing = t;
        c.instance = "chaos-test".into();
        c
    }

    pub async fn start_operator(&self) -> Operator {
        self.start_operator_with(self.config()).await
    }

    pub async fn start_operator_with(&self, config: Config) -> Operator {
        let op = aoai_operator::start(config)
            .await
            .expect("start the operator");
        if let Some(a) = op.metrics_addr {
            self.metrics_addrs.lock().push(a);
        }
        op
    }

    /// [`population_md`] over this bed's namespaces.
    pub fn population_md(&self, i: usize, accounts: usize) -> ModelDeployment {
        population_md(&self.namespaces, i, accounts)
    }

    pub fn account(&self, cr_name: &str) -> Option<&AccountInfo> {
        self.accounts.iter().find(|a| a.cr_name == cr_name)
    }

    pub fn md_api(&self, ns: &str) -> Api<ModelDeployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn create_md(&self, md: &ModelDeployment) {
        let ns = md.namespace().expect("namespaced");
        self.md_api(&ns)
            .create(&PostParams::default(), md)
            .await
            .expect("create ModelDeployment");
    }

    /// Merge-patch a ModelDeployment's spec (retries on conflicts).
    pub async fn patch_md_spec(&self, ns: &str, name: &str, spec_patch: Value) {
        self.md_api(ns)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec_patch})),
            )
            .await
            .expect("patch ModelDeployment");
    }

    pub async fn delete_md(&self, ns: &str, name: &str) {
        let _ = self.md_api(ns).delete(name, &DeleteParams::default()).await;
    }

    pub async fn list_mds(&self) -> Vec<ModelDeployment> {
        Api::<ModelDeployment>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .expect("list ModelDeployments")
            .items
    }

    pub async fn list_accounts(&self) -> Vec<AIAccount> {
        Api::<AIAccount>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .expect("list AIAccounts")
            .items
    }

    /// Wait until every AIAccount of the bed is Ready.
    pub async fn wait_accounts_ready(&self, timeout: Duration) {
        let names: Vec<String> = self.accounts.iter().map(|a| a.cr_name.clone()).collect();
        wait_for(timeout, "AIAccounts Ready", || async {
            let all = self.list_accounts().await;
            names.iter().all(|n| {
                all.iter().any(|a| {
                    &a.name_any() == n
                        && a.status.as_ref().is_some_and(|s| {
                            s.conditions
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                })
            })
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Every secret value the leak scan looks for (collected from the emulators).
    pub fn secret_values(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut ids: Vec<String> = self.accounts.iter().map(|a| a.arm_id.clone()).collect();
        ids.push(self.azure.default_account_id());
        for id in ids {
            let (k1, k2) = self.azure.account_keys(&id);
            out.push((format!("key1 of {id}"), k1));
            out.push((format!("key2 of {id}"), k2));
        }
        out.push((
            "client secret (AZURE_CLIENT_SECRET)".into(),
            self.azure.env().client_secret,
        ));
        out.push(("federated token".into(), self.azure.federated_token()));
        for (i, s) in self.extra_secrets.lock().iter().enumerate() {
            out.push((format!("extra client secret #{i}"), s.clone()));
        }
        // Every bearer token the emulator issued, by its signature (unique per token), so a
        // token that was cut or re-wrapped is found too, not only whole JWT shapes.
        for (i, t) in self.azure.issued_tokens().iter().enumerate() {
            if let Some(sig) = t.rsplit('.').next() {
                out.push((
                    format!("signature of issued bearer token #{i}"),
                    sig.to_string(),
                ));
            }
        }
        // The operator's Kubernetes bearer token (a JWT: its signature is unique to it).
        if let Some(sig) = self.operator_token().rsplit('.').next() {
            out.push((
                "signature of the operator's ServiceAccount token".into(),
                sig.to_string(),
            ));
        }
        out.retain(|(_, v)| v.len() >= 8);
        out
    }
}

/// A client for ServiceAccount `ns/aoai-operator`, bound to cluster-admin, through `proxy`,
/// and its kubeconfig (direct).
async fn operator_client(
    cluster: &Cluster,
    admin: &kube::Client,
    ns: &str,
    proxy: &testbed::proxy::Proxy,
) -> (kube::Client, String) {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": cluster.unique("aoai-operator-chaos"), "labels": {"testbed.aoai.dev/test": "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": ns}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind the operator's ServiceAccount");
    let yaml = cluster
        .service_account_kubeconfig(ns, OPERATOR_SA)
        .await
        .expect("token for the operator's ServiceAccount");
    let client = testbed::harness::client_from_yaml(&cluster.through(&yaml, proxy))
        .await
        .expect("operator client");
    (client, yaml)
}

impl Bed {
    /// Kubeconfig YAML of the operator's ServiceAccount (for the operator binary).
    pub fn operator_kubeconfig(&self) -> &str {
        &self.operator_kubeconfig
    }

    /// The operator's ServiceAccount token (from its kubeconfig).
    pub fn operator_token(&self) -> String {
        let kc: Value = serde_yaml::from_str(&self.operator_kubeconfig).unwrap_or(Value::Null);
        kc["users"][0]["user"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Requests the operator made (audit log, needs `kube.audit_log`) with this verb on this
    /// resource (plural), e.g. `("list", "modeldeployments")`: each list after the first is a
    /// re-list, which kube-runtime's watcher does only after `410 Expired`.
    pub fn operator_requests(&self, verb: &str, resource: &str) -> usize {
        let path = self
            .cluster
            .audit_log()
            .expect("the bed was started with kube.audit_log");
        let user = format!("system:serviceaccount:{}:{OPERATOR_SA}", self.operator_ns);
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| {
                e["stage"] == "ResponseComplete"
                    && e["verb"] == verb
                    && e["user"]["username"] == user.as_str()
                    && e["objectRef"]["resource"] == resource
            })
            .count()
    }
}

/// Ask the emulator's Entra ID for an extra principal (its own client id and secret) and return
/// azure.env-style vars that make the operator use it as its ambient identity.
pub fn vars_for_principal(bed: &Bed, client_id: &str, secret: &str) -> HashMap<String, String> {
    bed.azure.add_client(client_id, secret);
    bed.extra_secrets.lock().push(secret.to_string());
    let mut v = bed.vars.clone();
    v.insert("AZURE_CLIENT_ID".into(), client_id.into());
    v.insert("AZURE_CLIENT_SECRET".into(), secret.into());
    v
}

/// A ModelDeployment from its parts (version None = Azure's default).
pub fn md(
    ns: &str,
    name: &str,
    account: &str,
    model: &str,
    version: Option<&str>,
    sku: &str,
    capacity: i32,
) -> ModelDeployment {
    let mut m = json!({"format": "OpenAI", "name": model});
    if let Some(v) = version {
        m["version"] = json!(v);
    }
    serde_json::from_value(json!({
        "apiVersion": "aoai.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"accountRef": {"name": account}, "model": m, "sku": {"name": sku, "capacity": capacity}},
    }))
    .expect("ModelDeployment")
}

/// The i-th deployment of a chaos population: spread over `namespaces` and accounts, a mix of
/// models, SKUs, explicit and default versions.
pub fn population_md(namespaces: &[String], i: usize, accounts: usize) -> ModelDeployment {
    let ns = namespaces[i % namespaces.len()].as_str();
    let account = format!("acct-{}", i % accounts);
    let name = format!("md-{i:03}");
    match i % 4 {
        0 => md(
            ns,
            &name,
            &account,
            "gpt-4o-mini",
            Some("2024-07-18"),
            "GlobalStandard",
            1 + (i % 5) as i32,
        ),
        1 => md(ns, &name, &account, "gpt-4o-mini", None, "Standard", 2),
        2 => md(
            ns,
            &name,
            &account,
            "gpt-4o",
            Some("2024-08-06"),
            "GlobalStandard",
            3,
        ),
        _ => md(
            ns,
            &name,
            &account,
            "gpt-4o",
            Some("2024-08-06"),
            "DataZoneStandard",
            1,
        ),
    }
}

/// Poll `cond` every 150 ms until it holds or `timeout` passes.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut cond: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// `(account name lower-case, deployment name lower-case)` of an ARM deployment path
/// (`.../accounts/{a}/deployments/{d}[/...]`).
pub fn deployment_of(path: &str) -> Option<(String, String)> {
    let p = path.to_ascii_lowercase();
    let segs: Vec<&str> = p.split('/').collect();
    let ai = segs.iter().position(|s| *s == "accounts")?;
    if segs.get(ai + 2) != Some(&"deployments") {
        return None;
    }
    Some((segs.get(ai + 1)?.to_string(), segs.get(ai + 3)?.to_string()))
}

/// Is this request a write (decided from method and path, so injected faults count too)?
pub fn is_write_request(r: &testbed::azure::RequestRecord) -> bool {
    use testbed::azure::Surface;
    match r.surface {
        Surface::Arm => {
            matches!(r.method.as_str(), "PUT" | "PATCH" | "DELETE")
                || (r.method == "POST" && !r.path.to_ascii_lowercase().ends_with("/listkeys"))
        }
        Surface::KeyVault => matches!(r.method.as_str(), "PUT" | "PATCH" | "DELETE" | "POST"),
        _ => false,
    }
}

/// Short summary of the request log (for failure messages).
pub fn log_summary(log: &[testbed::azure::RequestRecord]) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for r in log {
        let kind = if r.path.contains("operationStatuses") || r.path.contains("operationResults") {
            "poll".to_string()
        } else {
            format!("{:?} {}", r.surface, r.method)
        };
        *counts.entry(format!("{kind} {}", r.status)).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Is `program` on PATH?
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|c| c.is_file())
}
