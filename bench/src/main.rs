//! `aoai-bench` (issue 6): the operator binary, as a child process, against a real Kubernetes
//! control plane of its own (etcd, kube-apiserver, kube-controller-manager from the test bed) and
//! the in-process Azure emulator (loopback HTTPS). N ModelDeployments over
//! A accounts, each Azure write taking D. Prints one `name: value` per line:
//!
//! * time to converge all vs the per-account serialization bound (max over accounts of
//!   deployments × D — Azure accepts one deployment write at a time per account) and their ratio;
//! * Azure calls by kind during convergence against the minimum (1 GET + 1 PUT + 1 poll per
//!   deployment, no token request once cached), and in steady state against the minimum of one
//!   GET per deployment per resync (`azure_calls_ratio`);
//! * over K steady-state resyncs: writes (must be 0), reads per deployment per resync, and the
//!   Kubernetes writes the operator makes meanwhile (counted from the apiserver's audit log by
//!   the operator's own ServiceAccount: the control plane writes leases and more of its own);
//! * peak (VmHWM) and steady (VmRSS) RSS of the operator process — only the operator: the
//!   emulators run in this process, the operator in its own — at N and at the large size;
//! * latency from a resource's creation to the first Azure call about it, p50 and p99.
//!
//! Timing flags of the operator are scaled to D (LRO poll interval D/4, bounded 20 ms–5 s), as
//! production defaults are scaled to Azure's minutes-long provisioning.

use anyhow::{Context, Result, bail};
use aoai_operator::crd::{AIAccount, ModelDeployment};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{CustomResourceExt, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testbed::azure::{AccountSeed, AzureConfig, AzureEmulator, RequestRecord, Surface};
use testbed::controlplane::Options;
use testbed::harness::Cluster;

/// The operator's Kubernetes writes (create/update/patch/delete by its ServiceAccount), read
/// from the apiserver's audit log between two marks (byte offsets of the log).
struct KubeWrites {
    path: PathBuf,
    user: String,
}

impl KubeWrites {
    fn mark(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    fn between(&self, from: u64, to: u64) -> usize {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let (from, to) = (from as usize, (to as usize).min(bytes.len()));
        String::from_utf8_lossy(&bytes[from.min(to)..to])
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| {
                e["stage"] == "ResponseComplete"
                    && e["user"]["username"] == self.user.as_str()
                    && matches!(
                        e["verb"].as_str(),
                        Some("create" | "update" | "patch" | "delete" | "deletecollection")
                    )
            })
            .count()
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "aoai-bench",
    about = "Benchmark aoai-operator on the emulated test bed"
)]
struct Args {
    /// Number of ModelDeployments.
    #[arg(long, default_value_t = 1000)]
    deployments: usize,
    /// Number of Azure accounts (AIAccounts) they are spread over.
    #[arg(long, default_value_t = 10)]
    accounts: usize,
    /// Emulated provisioning time of one deployment write, in milliseconds.
    #[arg(long, default_value_t = 200)]
    provisioning_ms: u64,
    /// The operator binary [default: aoai-operator beside this binary].
    #[arg(long)]
    operator_bin: Option<PathBuf>,
    /// Steady-state resyncs to observe.
    #[arg(long, default_value_t = 3)]
    resyncs: u32,
    /// Operator drift-resync interval in seconds during the bench.
    #[arg(long, default_value_t = 10)]
    resync_secs: u64,
    /// Second, larger population for the RSS figure (0 = skip).
    #[arg(long, default_value_t = 5000)]
    large: usize,
    /// Put every account in the same subscription (ARM throttles per subscription and principal:
    /// 200 writes + 10/s, 250 reads + 25/s). Default: one subscription per account.
    #[arg(long)]
    shared_subscription: bool,
    /// Write the Azure emulator's request log here at the end (TSV: ms since the first
    /// ModelDeployment was created, method, status, path), for analysing the figures.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// RUST_LOG of the operator (its log is copied beside --request-log when that is given).
    #[arg(long, default_value = "warn")]
    operator_log_level: String,
    /// Bound on the whole run, seconds.
    #[arg(long, default_value_t = 1200)]
    timeout_secs: u64,
}

const RG: &str = "rg-bench";

fn subscription(i: usize, shared: bool) -> String {
    if shared {
        "00000000-0000-0000-0000-000000000000".into()
    } else {
        format!("be0c{i:04x}-0000-4000-8000-{i:012x}")
    }
}

/// What an Azure request was, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Token,
    DeploymentPut,
    DeploymentGet,
    DeploymentDelete,
    DeploymentOther,
    Poll,
    Account,
    /// Quota usages and model catalog reads (the operator's pre-validation before a write).
    PreValidation,
    KeyVaultRead,
    KeyVaultWrite,
    Other,
}

fn deployment_of(path: &str) -> Option<(String, String)> {
    let p = path.to_ascii_lowercase();
    let segs: Vec<&str> = p.split('/').collect();
    let ai = segs.iter().position(|s| *s == "accounts")?;
    if segs.get(ai + 2) != Some(&"deployments") {
        return None;
    }
    Some((segs.get(ai + 1)?.to_string(), segs.get(ai + 3)?.to_string()))
}

fn classify(r: &RequestRecord) -> Kind {
    match r.surface {
        Surface::Token | Surface::ManagedIdentity => Kind::Token,
        Surface::KeyVault => {
            if r.method == "GET" {
                Kind::KeyVaultRead
            } else {
                Kind::KeyVaultWrite
            }
        }
        Surface::Arm => {
            let p = r.path.to_ascii_lowercase();
            if p.contains("/operationstatuses/") || p.contains("/operationresults/") {
                return Kind::Poll;
            }
            match deployment_of(&p) {
                Some((_, name)) if !name.is_empty() && p.trim_end_matches('/').ends_with(&name) => {
                    match r.method.as_str() {
                        "PUT" | "PATCH" => Kind::DeploymentPut,
                        "GET" => Kind::DeploymentGet,
                        "DELETE" => Kind::DeploymentDelete,
                        _ => Kind::DeploymentOther,
                    }
                }
                Some(_) => Kind::DeploymentOther,
                None if p.ends_with("/usages") || p.ends_with("/models") => Kind::PreValidation,
                None if p.contains("/accounts/") => Kind::Account,
                None => Kind::Other,
            }
        }
        _ => Kind::Other,
    }
}

fn is_write(r: &RequestRecord) -> bool {
    matches!(r.surface, Surface::Arm | Surface::KeyVault)
        && r.method != "GET"
        && r.method != "HEAD"
        && !(r.method == "POST" && r.path.to_ascii_lowercase().ends_with("/listkeys"))
}

fn count(log: &[RequestRecord], from: Instant, to: Instant) -> HashMap<Kind, usize> {
    let mut m = HashMap::new();
    for r in log.iter().filter(|r| r.started >= from && r.started <= to) {
        *m.entry(classify(r)).or_default() += 1;
    }
    m
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// (VmHWM, VmRSS) in MiB of a process.
fn rss(pid: u32) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn machine() -> Vec<(String, String)> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        ("machine_cpus".into(), cpus.to_string()),
        ("machine_mem_mib".into(), mem.to_string()),
        ("machine_cpu_model".into(), model.replace(':', " ")),
        ("machine_loadavg_at_start".into(), load),
    ]
}

struct Out(Vec<(String, String)>);

impl Out {
    fn put(&mut self, k: &str, v: impl std::fmt::Display) {
        let line = format!("{k}: {v}");
        eprintln!("  {line}");
        self.0.push((k.to_string(), v.to_string()));
    }
    fn f(&mut self, k: &str, v: f64) {
        self.put(k, format!("{v:.3}"));
    }
    fn print(&self) {
        for (k, v) in &self.0 {
            println!("{k}: {v}");
        }
    }
}

/// Records when each ModelDeployment is Ready for its current generation.
type ReadyTimes = Arc<Mutex<HashMap<String, Instant>>>;

fn spawn_ready_watcher(client: kube::Client) -> ReadyTimes {
    let ready: ReadyTimes = Default::default();
    let r = ready.clone();
    tokio::spawn(async move {
        let api: Api<ModelDeployment> = Api::all(client);
        let mut s = watcher(api, watcher::Config::default()).boxed();
        while let Some(ev) = s.next().await {
            let objs = match ev {
                Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => vec![o],
                _ => continue,
            };
            for o in objs {
                let ok = o.status.as_ref().is_some_and(|st| {
                    st.observed_generation == o.metadata.generation
                        && st
                            .conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                if ok {
                    let key = format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
                    r.lock().unwrap().entry(key).or_insert_with(Instant::now);
                }
            }
        }
    });
    ready
}

fn md(ns: &str, name: &str, account: &str, i: usize) -> ModelDeployment {
    let (model, version, sku) = if i % 2 == 0 {
        ("gpt-4o-mini", "2024-07-18", "GlobalStandard")
    } else {
        ("gpt-4o", "2024-08-06", "Standard")
    };
    serde_json::from_value(json!({
        "apiVersion": "aoai.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"accountRef": {"name": account}, "model": {"format": "OpenAI", "name": model, "version": version}, "sku": {"name": sku, "capacity": 1}},
    }))
    .expect("ModelDeployment")
}

struct Population {
    /// key ns/name → (creation start, account index, azure deployment name)
    created: HashMap<String, (Instant, usize, String)>,
    first_create: Instant,
}

async fn create_population(
    client: &kube::Client,
    range: std::ops::Range<usize>,
    accounts: usize,
    namespaces: usize,
) -> Result<Population> {
    let items: Vec<(String, String, usize, usize)> = range
        .map(|i| {
            (
                format!("bench-{}", i % namespaces),
                format!("md-{i:05}"),
                i % accounts,
                i,
            )
        })
        .collect();
    let first_create = Instant::now();
    let results: Vec<Result<(String, (Instant, usize, String))>> = futures::stream::iter(items)
        .map(|(ns, name, a, i)| {
            let client = client.clone();
            async move {
                let m = md(&ns, &name, &format!("acct-{a}"), i);
                let t = Instant::now();
                Api::<ModelDeployment>::namespaced(client, &ns)
                    .create(&PostParams::default(), &m)
                    .await
                    .with_context(|| format!("create {ns}/{name}"))?;
                Ok((format!("{ns}/{name}"), (t, a, m.azure_deployment_name())))
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut created = HashMap::new();
    for r in results {
        let (k, v) = r?;
        created.insert(k, v);
    }
    Ok(Population {
        created,
        first_create,
    })
}

/// Wait until every key of `pop` is Ready; returns the instant the last one became Ready.
async fn wait_converged(
    ready: &ReadyTimes,
    pop: &Population,
    timeout: Duration,
    child: &mut tokio::process::Child,
) -> Result<Instant> {
    let start = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let (n, last) = {
            let r = ready.lock().unwrap();
            let mut n = 0;
            let mut last = pop.first_create;
            for k in pop.created.keys() {
                if let Some(t) = r.get(k) {
                    n += 1;
                    last = last.max(*t);
                }
            }
            (n, last)
        };
        if n == pop.created.len() {
            return Ok(last);
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the operator exited ({status}) with {n}/{} Ready",
                pop.created.len()
            );
        }
        if start.elapsed() > timeout {
            bail!(
                "not converged after {timeout:?}: {n}/{} Ready",
                pop.created.len()
            );
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  ... {n}/{} Ready after {:.0}s",
                pop.created.len(),
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut out = Out(Vec::new());
    for (k, v) in machine() {
        out.put(&k, v);
    }
    let op_bin = match &args.operator_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("bin dir")?
            .join("aoai-operator"),
    };
    anyhow::ensure!(
        op_bin.exists(),
        "operator binary {} not found (pass --operator-bin)",
        op_bin.display()
    );
    let d = Duration::from_millis(args.provisioning_ms);
    let (n, a) = (args.deployments, args.accounts.max(1));
    out.put("deployments", n);
    out.put("accounts", a);
    out.put("provisioning_ms", args.provisioning_ms);
    out.put(
        "subscriptions",
        if args.shared_subscription { 1 } else { a },
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);

    // ---- test bed
    let azure = AzureEmulator::start(AzureConfig {
        provisioning_delay: d,
        lro_retry_after_secs: 0,
        ..AzureConfig::default()
    })
    .await?;
    let cluster = Cluster::owned(Options {
        audit_log: true,
        ..Options::default()
    })
    .await
    .context("start the Kubernetes control plane")?;
    let client = cluster.client().await?;
    let dir = tempfile::tempdir()?;
    azure.write_files(dir.path())?;
    cluster
        .apply_crds(&[AIAccount::crd(), ModelDeployment::crd()])
        .await?;
    // The operator runs as a ServiceAccount of its own (cluster-admin), so the audit log tells
    // its writes apart from the control plane's.
    let binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "aoai-bench-operator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "aoai-operator", "namespace": "default"}],
    }))?;
    Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    std::fs::write(
        dir.path().join("kubeconfig"),
        cluster
            .service_account_kubeconfig("default", "aoai-operator")
            .await?,
    )?;
    let kube = KubeWrites {
        path: cluster.audit_log().context("audit log")?.to_path_buf(),
        user: "system:serviceaccount:default:aoai-operator".into(),
    };
    let namespaces = 10usize;
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for i in 0..namespaces {
        ns_api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": format!("bench-{i}")}}))?,
            )
            .await?;
    }
    let vault = azure.default_vault_uri();
    let mut account_ids = Vec::new();
    for i in 0..a {
        let sub = subscription(i, args.shared_subscription);
        let name = format!("bench-acct-{i}");
        account_ids.push(azure.add_account(AccountSeed {
            subscription_id: sub.clone(),
            resource_group: RG.into(),
            name: name.clone(),
            location: "eastus".into(),
            kind: "AIServices".into(),
        }));
        let acct: AIAccount = serde_json::from_value(json!({
            "apiVersion": "aoai.dev/v1alpha1", "kind": "AIAccount", "metadata": {"name": format!("acct-{i}")},
            "spec": {"subscriptionId": sub, "resourceGroup": RG, "accountName": name,
                     "keyVault": {"vaultUri": vault, "secretName": format!("bench-acct-{i}-key")},
                     "allowedNamespaces": {"names": (0..namespaces).map(|j| format!("bench-{j}")).collect::<Vec<_>>()}},
        }))?;
        Api::<AIAccount>::all(client.clone())
            .create(&PostParams::default(), &acct)
            .await?;
    }

    // ---- the operator, as its own process
    let poll = (d / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
    let log_path = dir.path().join("operator.log");
    let log_file = std::fs::File::create(&log_path)?;
    let mut cmd = tokio::process::Command::new(&op_bin);
    cmd.arg("run")
        .args([
            "--metrics-addr",
            "127.0.0.1:0",
            "--leader-election=false",
            "--namespace",
            "default",
        ])
        .args([
            "--resync",
            &format!("{}s", args.resync_secs),
            "--account-resync",
            "1h",
        ])
        .args([
            "--poll-interval",
            &format!("{}ms", poll.as_millis()),
            "--max-poll-interval",
            "5s",
        ])
        .args(["--backoff-base", "200ms", "--backoff-max", "10s"])
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .env("RUST_LOG", &args.operator_log_level)
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true);
    for (k, v) in azure.env().vars() {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", op_bin.display()))?;
    let pid = child.id().context("operator pid")?;
    out.put("rss_method", "VmHWM (peak) and VmRSS (steady) from /proc/<pid>/status of the aoai-operator child process only");

    let result = run(
        &args,
        &mut out,
        &azure,
        &kube,
        &client,
        &mut child,
        pid,
        d,
        &account_ids,
        deadline,
    )
    .await;
    let _ = child.start_kill();
    if let Some(p) = &args.request_log {
        let _ = std::fs::copy(&log_path, p.with_extension("operator.log"));
    }
    if let Err(e) = &result {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        eprintln!(
            "bench failed: {e:#}\noperator log tail:\n{}",
            tail.join("\n")
        );
        out.put("error", format!("{e:#}").replace('\n', " "));
    }
    println!("---- aoai-bench results ----");
    out.print();
    drop(cluster);
    result
}

#[allow(clippy::too_many_arguments)]
async fn run(
    args: &Args,
    out: &mut Out,
    azure: &AzureEmulator,
    kube: &KubeWrites,
    client: &kube::Client,
    child: &mut tokio::process::Child,
    pid: u32,
    d: Duration,
    account_ids: &[String],
    deadline: Instant,
) -> Result<()> {
    let (n, a) = (args.deployments, args.accounts.max(1));
    let namespaces = 10usize;
    // Accounts Ready (key in Key Vault) before the clock starts.
    let accts: Api<AIAccount> = Api::all(client.clone());
    let t = Instant::now();
    loop {
        let l = accts.list(&ListParams::default()).await?;
        let ready = l
            .items
            .iter()
            .filter(|x| {
                x.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        if ready == a {
            break;
        }
        if let Some(s) = child.try_wait()? {
            bail!("the operator exited: {s}");
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("AIAccounts not Ready after 120s ({ready}/{a})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out.f("accounts_ready_seconds", t.elapsed().as_secs_f64());
    let ready = spawn_ready_watcher(client.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // ---- phase 1: N deployments
    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
    let pop = create_population(client, 0..n, a, namespaces).await?;
    let created_in = pop.first_create.elapsed();
    let remaining = deadline.saturating_duration_since(Instant::now());
    let end = wait_converged(&ready, &pop, remaining, child).await?;
    let converge = (end - pop.first_create).as_secs_f64();
    let per_account = n.div_ceil(a);
    let bound = per_account as f64 * d.as_secs_f64();
    out.f("create_seconds", created_in.as_secs_f64());
    out.f("converge_seconds", converge);
    out.f("serialization_bound_seconds", bound);
    out.f("converge_ratio", converge / bound.max(1e-9));
    out.f(
        "operator_cpu_seconds_converge",
        cpu_seconds(pid).unwrap_or(0.0) - cpu0,
    );
    out.put(
        "max_concurrent_writes_per_account",
        azure.max_concurrent_writes_per_account(),
    );

    // Azure calls during convergence vs the minimum.
    let log = azure.request_log();
    let c = count(&log, pop.first_create, end);
    let get = |k: Kind| c.get(&k).copied().unwrap_or(0);
    let (puts, gets, polls, tokens) = (
        get(Kind::DeploymentPut),
        get(Kind::DeploymentGet),
        get(Kind::Poll),
        get(Kind::Token),
    );
    let total_conv: usize = c.values().sum();
    out.put("azure_calls_converge_put", puts);
    out.put("azure_calls_converge_put_min", n);
    out.put("azure_calls_converge_get", gets);
    out.put("azure_calls_converge_get_min", n);
    out.put("azure_calls_converge_poll", polls);
    out.put("azure_calls_converge_poll_min", n);
    out.put("azure_calls_converge_token", tokens);
    out.put("azure_calls_converge_token_min", 0);
    out.put(
        "azure_calls_converge_other",
        total_conv - puts - gets - polls - tokens,
    );
    out.f(
        "azure_calls_converge_ratio",
        total_conv as f64 / (3 * n) as f64,
    );
    let mut kinds: Vec<_> = c.iter().collect();
    kinds.sort();
    out.put(
        "azure_calls_converge_by_kind",
        kinds
            .iter()
            .map(|(k, v)| format!("{k:?}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    let throttled = log.iter().filter(|r| r.status == 429).count();
    let conflicts = log.iter().filter(|r| r.status == 409).count();
    out.put("arm_throttled_429", throttled);
    out.put("arm_conflicts_409", conflicts);

    // Write hand-off: per account, time from one write's operation end (PUT + D) to the next PUT.
    let mut puts_by_account: HashMap<String, Vec<Instant>> = HashMap::new();
    for r in log
        .iter()
        .filter(|r| classify(r) == Kind::DeploymentPut && r.status < 300)
    {
        if let Some((acct, _)) = deployment_of(&r.path) {
            puts_by_account.entry(acct).or_default().push(r.started);
        }
    }
    let mut gaps: Vec<f64> = Vec::new();
    for v in puts_by_account.values_mut() {
        v.sort();
        for w in v.windows(2) {
            gaps.push((w[1].saturating_duration_since(w[0] + d)).as_secs_f64() * 1000.0);
        }
    }
    gaps.sort_by(|x, y| x.partial_cmp(y).unwrap());
    out.f("write_handoff_gap_p50_ms", percentile(&gaps, 50.0));
    out.f("write_handoff_gap_p99_ms", percentile(&gaps, 99.0));

    // First-call latency.
    let mut first: HashMap<(String, String), Instant> = HashMap::new();
    for r in &log {
        if let Some(k) = deployment_of(&r.path) {
            first.entry(k).or_insert(r.started);
        }
    }
    let acct_names: Vec<String> = (0..a).map(|i| format!("bench-acct-{i}")).collect();
    let mut lat: Vec<f64> = pop
        .created
        .values()
        .filter_map(|(t, ai, dn)| {
            first
                .get(&(acct_names[*ai].clone(), dn.to_ascii_lowercase()))
                .map(|f| f.saturating_duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
    out.f("first_call_latency_p50_ms", percentile(&lat, 50.0));
    out.f("first_call_latency_p99_ms", percentile(&lat, 99.0));
    out.f(
        "first_call_latency_max_ms",
        lat.last().copied().unwrap_or(f64::NAN),
    );

    // ---- steady state: K resyncs
    let resync = Duration::from_secs(args.resync_secs);
    tokio::time::sleep(resync + Duration::from_secs(1)).await;
    let k = args.resyncs.max(1);
    let s0 = Instant::now();
    let rv0 = kube.mark();
    tokio::time::sleep(resync * k).await;
    let s1 = Instant::now();
    let rv1 = kube.mark();
    let log = azure.request_log();
    let steady: Vec<&RequestRecord> = log
        .iter()
        .filter(|r| r.started >= s0 && r.started <= s1)
        .collect();
    let steady_writes = steady.iter().filter(|r| is_write(r)).count();
    let steady_gets = steady
        .iter()
        .filter(|r| classify(r) == Kind::DeploymentGet)
        .count();
    let resyncs_in_window = (s1 - s0).as_secs_f64() / resync.as_secs_f64();
    let min_calls = n as f64 * resyncs_in_window;
    out.put("steady_resyncs", k);
    out.f("steady_window_seconds", (s1 - s0).as_secs_f64());
    out.put("steady_writes", steady_writes);
    out.f(
        "steady_reads_per_deployment_per_resync",
        steady_gets as f64 / n as f64 / resyncs_in_window,
    );
    out.put("azure_calls_steady", steady.len());
    let mut sk: HashMap<Kind, usize> = HashMap::new();
    for r in &steady {
        *sk.entry(classify(r)).or_default() += 1;
    }
    let mut sk: Vec<_> = sk.into_iter().collect();
    sk.sort();
    out.put(
        "azure_calls_steady_by_kind",
        sk.iter()
            .map(|(k, v)| format!("{k:?}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.f("azure_calls_steady_min", min_calls);
    out.f("azure_calls_ratio", steady.len() as f64 / min_calls);
    out.f(
        "steady_kube_writes_per_deployment_per_resync",
        kube.between(rv0, rv1) as f64 / n as f64 / resyncs_in_window,
    );
    let (hwm, cur) = rss(pid).context("read the operator's /proc status")?;
    out.f("rss_peak_mib", hwm);
    out.f("rss_steady_mib", cur);
    out.put("rss_resources", n + a);

    // ---- phase 2: the large population, for memory
    if args.large > n {
        // Memory, not speed, is measured here: short provisioning and no ARM throttling, so the
        // large population converges in bounded time on a small machine.
        azure.set_config(|c| {
            c.provisioning_delay = Duration::from_millis(10);
            c.write_capacity = 1_000_000;
            c.write_refill_per_sec = 100_000;
            c.read_capacity = 1_000_000;
            c.read_refill_per_sec = 100_000;
        });
        let pop2 = create_population(client, n..args.large, a, namespaces).await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let end2 = wait_converged(&ready, &pop2, remaining, child).await?;
        out.f(
            "converge_seconds_large_10ms",
            (end2 - pop2.first_create).as_secs_f64(),
        );
        tokio::time::sleep(resync + Duration::from_secs(2)).await;
        let (hwm, cur) = rss(pid).context("read the operator's /proc status")?;
        let total = args.large;
        out.f(&format!("rss_peak_mib_at_{total}"), hwm);
        out.f(&format!("rss_steady_mib_at_{total}"), cur);
        out.put(
            "max_concurrent_writes_per_account_large",
            azure.max_concurrent_writes_per_account(),
        );
    }
    let _ = account_ids;
    if let Some(path) = &args.request_log {
        let log = azure.request_log();
        let lines: Vec<String> = log
            .iter()
            .map(|r| {
                let ms = if r.started >= pop.first_create {
                    (r.started - pop.first_create).as_secs_f64() * 1000.0
                } else {
                    -((pop.first_create - r.started).as_secs_f64() * 1000.0)
                };
                format!("{ms:.1}\t{}\t{}\t{}", r.method, r.status, r.path)
            })
            .collect();
        std::fs::write(path, lines.join("\n") + "\n")
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}
