//! `aoai-bench` (issues 6 and 11): the operator binary, as a child process, against a real
//! Kubernetes control plane of its own (etcd, kube-apiserver, kube-controller-manager from the
//! test bed) and the in-process Azure emulator (loopback HTTPS, with ARM's throttling). N
//! ModelDeployments over A accounts in S subscriptions, each Azure write taking D. Prints one
//! `name: value` per line:
//!
//! * time to converge all against the bounds: the per-account serialization bound (max over
//!   accounts of deployments × D — Azure accepts one deployment write at a time per account),
//!   the write-budget bound (per subscription, ARM's write bucket: writes beyond its size come at
//!   its refill rate), `bound_seconds` (the larger) and `converge_ratio` against it;
//! * Azure calls by kind during convergence against the minimum (1 GET + 1 PUT + 1 poll per
//!   deployment), and `throttled_responses` (429s during convergence and steady state);
//! * over K steady-state resyncs: writes (must be 0), ARM reads per deployment per resync (the
//!   minimum is one paged LIST per account: accounts × pages), and the operator's Kubernetes
//!   writes (from the apiserver's audit log, by the operator's own ServiceAccount);
//! * peak (VmHWM) and steady (VmRSS) RSS of the operator process alone, at N and at `--large`;
//! * latency from a resource's creation to the first Azure call about it: in the burst, and for
//!   deployments created one per second (`first_call_latency_trickle_*`);
//! * Azure calls per managed-compute create against the minimum (`ml`, `--managed-compute M`).
//!
//! Timing flags of the operator are scaled to D (LRO poll interval D/4, bounded 20 ms–5 s), as
//! production defaults are scaled to Azure's minutes-long provisioning.

mod measure;
mod ml;
mod population;
mod requests;

use anyhow::{Context, Result, bail};
use aoai_operator::crd::AIAccount;
use clap::Parser;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use measure::{
    KubeWrites, Out, cpu_seconds, machine, machine_busy_seconds, percentile, rss, writes,
};
use population::{Population, ReadyTimes};
use requests::{Kind, classify, count, first_calls, handoff_gaps, is_arm_read, is_write};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use testbed::azure::{AccountSeed, AzureConfig, AzureEmulator, RequestRecord};
use testbed::controlplane::Options;
use testbed::harness::Cluster;

#[derive(Parser, Debug)]
#[command(
    name = "aoai-bench",
    about = "Benchmark aoai-operator on the test bed (a real Kubernetes control plane, the Azure emulator)"
)]
struct Args {
    /// Number of ModelDeployments.
    #[arg(long, default_value_t = 1000)]
    deployments: usize,
    /// Number of Azure accounts (AIAccounts) they are spread over.
    #[arg(long, default_value_t = 10)]
    accounts: usize,
    /// Number of subscriptions the accounts are spread over evenly (ARM throttles per
    /// subscription and principal: 250 reads + 25/s, 200 writes + 10/s) [default: one per account].
    #[arg(long)]
    subscriptions: Option<usize>,
    /// The same as `--subscriptions 1`.
    #[arg(long)]
    shared_subscription: bool,
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
    /// Deployments created one per second after steady state, for the trickle latency (0 = skip).
    #[arg(long, default_value_t = 20)]
    trickle: usize,
    /// Managed-compute ModelDeployments on an AIWorkspace, for the calls per create (0 = skip).
    #[arg(long, default_value_t = 5)]
    managed_compute: usize,
    /// Second, larger population for the RSS figure (0 = skip).
    #[arg(long, default_value_t = 5000)]
    large: usize,
    /// Write the Azure emulator's request log here at the end (TSV: ms since the first
    /// ModelDeployment was created, method, status, path), for analysing the figures.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// RUST_LOG of the operator (its log is copied beside --request-log when that is given).
    #[arg(long, default_value = "warn")]
    operator_log_level: String,
    /// Bound on the whole run, seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
}

const RG: &str = "rg-bench";
const NAMESPACES: usize = 10;

impl Args {
    fn subscription_count(&self) -> usize {
        let a = self.accounts.max(1);
        if self.shared_subscription {
            1
        } else {
            self.subscriptions.unwrap_or(a).clamp(1, a)
        }
    }
}

/// Account `i`'s subscription: accounts spread evenly over `s` subscriptions.
fn subscription(i: usize, s: usize) -> String {
    let k = i % s;
    format!("be0c{k:04x}-0000-4000-8000-{k:012x}")
}

/// The time ARM's write bucket of one subscription needs for `writes` writes: those beyond the
/// bucket's size come at its refill rate; the last one then provisions for `d`.
fn write_budget_bound(writes: usize, capacity: u32, refill_per_sec: u32, d: Duration) -> f64 {
    let beyond = writes.saturating_sub(capacity as usize) as f64;
    beyond / f64::from(refill_per_sec.max(1)) + d.as_secs_f64()
}

/// Creation → first Azure call about it, in ms, sorted.
fn latencies(pop: &Population, log: &[RequestRecord], accounts: usize) -> Vec<f64> {
    let first = first_calls(log);
    let names: Vec<String> = (0..accounts).map(|i| format!("bench-acct-{i}")).collect();
    let mut lat: Vec<f64> = pop
        .created
        .values()
        .filter_map(|(t, ai, dn)| {
            first
                .get(&(names[*ai].clone(), dn.to_ascii_lowercase()))
                .map(|f| f.saturating_duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|x, y| x.total_cmp(y));
    lat
}

/// The running bench: the test bed, the operator process, and what is measured on it.
struct Bench {
    args: Args,
    azure: AzureEmulator,
    client: kube::Client,
    kube: KubeWrites,
    child: tokio::process::Child,
    pid: u32,
    d: Duration,
    deadline: Instant,
    ready: Option<(ReadyTimes, tokio::task::JoinHandle<()>)>,
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
    let (a, s) = (args.accounts.max(1), args.subscription_count());
    out.put("deployments", args.deployments);
    out.put("accounts", a);
    out.put("provisioning_ms", args.provisioning_ms);
    out.put("subscriptions", s);
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
    cluster.apply_crds(&aoai_operator::crd::crds()).await?;
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
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for i in 0..NAMESPACES {
        ns_api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": format!("bench-{i}")}}))?,
            )
            .await?;
    }
    let vault = azure.default_vault_uri();
    for i in 0..a {
        let sub = subscription(i, s);
        let name = format!("bench-acct-{i}");
        azure.add_account(AccountSeed {
            subscription_id: sub.clone(),
            resource_group: RG.into(),
            name: name.clone(),
            location: "eastus".into(),
            kind: "AIServices".into(),
        });
        let acct: AIAccount = serde_json::from_value(json!({
            "apiVersion": "aoai.dev/v1alpha1", "kind": "AIAccount", "metadata": {"name": format!("acct-{i}")},
            "spec": {"subscriptionId": sub, "resourceGroup": RG, "accountName": name,
                     "keyVault": {"vaultUri": vault, "secretName": format!("bench-acct-{i}-key")},
                     "allowedNamespaces": {"names": (0..NAMESPACES).map(|j| format!("bench-{j}")).collect::<Vec<_>>()}},
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
    let child = cmd
        .spawn()
        .with_context(|| format!("start {}", op_bin.display()))?;
    let pid = child.id().context("operator pid")?;
    out.put("rss_method", "VmHWM (peak) and VmRSS (steady) from /proc/<pid>/status of the aoai-operator child process only");

    let mut bench = Bench {
        args,
        azure,
        client,
        kube,
        child,
        pid,
        d,
        deadline,
        ready: None,
    };
    let result = bench.run(&mut out).await;
    let _ = bench.child.start_kill();
    if let Some((_, watcher)) = bench.ready.take() {
        watcher.abort();
        let _ = watcher.await;
    }
    if let Some(p) = &bench.args.request_log {
        let _ = std::fs::copy(&log_path, p.with_extension("operator.log"));
    }
    if let Err(e) = &result {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
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

impl Bench {
    async fn run(&mut self, out: &mut Out) -> Result<()> {
        self.accounts_ready(out).await?;
        self.ready = Some(population::spawn_ready_watcher(self.client.clone()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let converging_from = Instant::now();
        let pop = self.converge(out).await?;
        let steady_to = self.steady(out).await?;
        let log = self.azure.request_log();
        out.put(
            "throttled_responses",
            log.iter()
                .filter(|r| {
                    r.status == 429 && r.started >= converging_from && r.started <= steady_to
                })
                .count(),
        );
        self.trickle(out).await?;
        ml::run(&self.azure, &self.client, self.args.managed_compute, out).await?;
        self.large(out).await?;
        if let Some(path) = &self.args.request_log {
            let lines: Vec<String> = self
                .azure
                .request_log()
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

    /// Accounts Ready (key in Key Vault) before the clock starts.
    async fn accounts_ready(&mut self, out: &mut Out) -> Result<()> {
        let a = self.args.accounts.max(1);
        let accts: Api<AIAccount> = Api::all(self.client.clone());
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
                out.f("accounts_ready_seconds", t.elapsed().as_secs_f64());
                return Ok(());
            }
            if let Some(s) = self.child.try_wait()? {
                bail!("the operator exited: {s}");
            }
            if t.elapsed() > Duration::from_secs(120) {
                bail!("AIAccounts not Ready after 120s ({ready}/{a})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait(&mut self, pop: &Population) -> Result<Instant> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let ready = self.ready.as_ref().expect("watching").0.clone();
        population::wait_converged(&ready, pop, remaining, &mut self.child).await
    }

    /// Phase 1: N deployments at once, against the bounds.
    async fn converge(&mut self, out: &mut Out) -> Result<Population> {
        let (n, a, d) = (self.args.deployments, self.args.accounts.max(1), self.d);
        let s = self.args.subscription_count();
        let cpu0 = cpu_seconds(self.pid).unwrap_or(0.0);
        let busy0 = machine_busy_seconds().unwrap_or(0.0);
        let rv0 = self.kube.mark();
        let pop = population::create_population(&self.client, 0..n, a, NAMESPACES).await?;
        let created_in = pop.first_create.elapsed();
        let end = self.wait(&pop).await?;
        let busy = machine_busy_seconds().unwrap_or(0.0) - busy0;
        let rv1 = self.kube.mark();
        let converge = (end - pop.first_create).as_secs_f64();
        let serialization = n.div_ceil(a) as f64 * d.as_secs_f64();
        let cfg = AzureConfig::default();
        let mut writes_per_sub: HashMap<usize, usize> = HashMap::new();
        for i in 0..n {
            *writes_per_sub.entry((i % a) % s).or_default() += 1;
        }
        let write_budget = writes_per_sub
            .values()
            .map(|w| write_budget_bound(*w, cfg.write_capacity, cfg.write_refill_per_sec, d))
            .fold(0.0, f64::max);
        let bound = serialization.max(write_budget);
        out.f("create_seconds", created_in.as_secs_f64());
        out.f("converge_seconds", converge);
        out.f("serialization_bound_seconds", serialization);
        out.f("write_budget_bound_seconds", write_budget);
        out.f("bound_seconds", bound);
        out.f("converge_ratio", converge / bound.max(1e-9));
        out.f(
            "operator_cpu_seconds_converge",
            cpu_seconds(self.pid).unwrap_or(0.0) - cpu0,
        );
        // The machine's share: the control plane, both emulators and the bench share its cores.
        out.f("machine_cpu_busy_seconds_converge", busy);
        out.f(
            "machine_cpu_utilisation_converge",
            busy / converge.max(1e-9)
                / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        );
        // One read of the audit log for the three figures.
        let kube = self.kube.by_kind(rv0, rv1);
        out.f(
            "kube_writes_converge_per_deployment",
            writes(&kube) as f64 / n as f64,
        );
        out.f(
            "kube_requests_converge_per_deployment",
            kube.values().sum::<usize>() as f64 / n as f64,
        );
        out.put(
            "kube_requests_converge_by_kind",
            kube.iter()
                .map(|((verb, resource), c)| format!("{verb}:{resource}={c}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.put(
            "max_concurrent_writes_per_account",
            self.azure.max_concurrent_writes_per_account(),
        );
        let log = self.azure.request_log();
        let c = count(&log, pop.first_create, end);
        let get = |k: Kind| c.get(&k).copied().unwrap_or(0);
        let (puts, gets, polls, tokens) = (
            get(Kind::DeploymentPut),
            get(Kind::DeploymentGet),
            get(Kind::Poll),
            get(Kind::Token),
        );
        let total: usize = c.values().sum();
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
            total - puts - gets - polls - tokens,
        );
        out.f("azure_calls_converge_ratio", total as f64 / (3 * n) as f64);
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
        out.put(
            "arm_throttled_429",
            log.iter().filter(|r| r.status == 429).count(),
        );
        out.put(
            "arm_conflicts_409",
            log.iter().filter(|r| r.status == 409).count(),
        );
        let gaps = handoff_gaps(&log, d);
        out.f("write_handoff_gap_p50_ms", percentile(&gaps, 50.0));
        out.f("write_handoff_gap_p99_ms", percentile(&gaps, 99.0));
        let lat = latencies(&pop, &log, a);
        out.f("first_call_latency_p50_ms", percentile(&lat, 50.0));
        out.f("first_call_latency_p99_ms", percentile(&lat, 99.0));
        out.f("first_call_latency_burst_p99_ms", percentile(&lat, 99.0));
        out.f(
            "first_call_latency_max_ms",
            lat.last().copied().unwrap_or(f64::NAN),
        );
        Ok(pop)
    }

    /// K resyncs with nothing to do; returns when the window ended.
    async fn steady(&mut self, out: &mut Out) -> Result<Instant> {
        let (n, a) = (self.args.deployments, self.args.accounts.max(1));
        let resync = Duration::from_secs(self.args.resync_secs);
        tokio::time::sleep(resync + Duration::from_secs(1)).await;
        let k = self.args.resyncs.max(1);
        let s0 = Instant::now();
        let rv0 = self.kube.mark();
        tokio::time::sleep(resync * k).await;
        let s1 = Instant::now();
        let rv1 = self.kube.mark();
        let log = self.azure.request_log();
        let steady: Vec<&RequestRecord> = log
            .iter()
            .filter(|r| r.started >= s0 && r.started <= s1)
            .collect();
        let resyncs = (s1 - s0).as_secs_f64() / resync.as_secs_f64();
        let reads = steady.iter().filter(|r| is_arm_read(r)).count();
        let lists = steady
            .iter()
            .filter(|r| classify(r) == Kind::DeploymentList)
            .count();
        // The minimum: one paged LIST of each account per resync (pages of 100 deployments).
        let pages = n.div_ceil(a).div_ceil(100).max(1);
        let min_calls = (a * pages) as f64 * resyncs;
        out.put("steady_resyncs", k);
        out.f("steady_window_seconds", (s1 - s0).as_secs_f64());
        out.put(
            "steady_writes",
            steady.iter().filter(|r| is_write(r)).count(),
        );
        out.put("steady_arm_reads", reads);
        out.put("steady_deployment_lists", lists);
        out.f(
            "steady_reads_per_deployment_per_resync",
            reads as f64 / n as f64 / resyncs,
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
        out.f(
            "azure_calls_ratio",
            steady.len() as f64 / min_calls.max(1e-9),
        );
        out.f(
            "steady_kube_writes_per_deployment_per_resync",
            self.kube.between(rv0, rv1) as f64 / n as f64 / resyncs,
        );
        let (hwm, cur) = rss(self.pid).context("read the operator's /proc status")?;
        out.f("rss_peak_mib", hwm);
        out.f("rss_steady_mib", cur);
        out.put("rss_resources", n + a);
        Ok(s1)
    }

    /// Deployments created one per second, as app teams create them: the first call's latency.
    async fn trickle(&mut self, out: &mut Out) -> Result<()> {
        let (n, a, t) = (
            self.args.deployments,
            self.args.accounts.max(1),
            self.args.trickle,
        );
        if t == 0 {
            return Ok(());
        }
        let from = n + 1_000_000;
        let pop = population::create_trickle(
            &self.client,
            from..from + t,
            a,
            NAMESPACES,
            Duration::from_secs(1),
        )
        .await?;
        self.wait(&pop).await?;
        let lat = latencies(&pop, &self.azure.request_log(), a);
        anyhow::ensure!(
            lat.len() == t,
            "{} of {t} trickled deployments were called",
            lat.len()
        );
        out.put("trickle_deployments", t);
        out.f("first_call_latency_trickle_p50_ms", percentile(&lat, 50.0));
        out.f("first_call_latency_trickle_p99_ms", percentile(&lat, 99.0));
        Ok(())
    }

    /// Phase 2: the large population, for memory.
    async fn large(&mut self, out: &mut Out) -> Result<()> {
        let (n, a) = (self.args.deployments, self.args.accounts.max(1));
        if self.args.large <= n {
            return Ok(());
        }
        // Memory, not speed, is measured here: short provisioning and no ARM throttling, so the
        // large population converges in bounded time on a small machine.
        self.azure.set_config(|c| {
            c.provisioning_delay = Duration::from_millis(10);
            c.write_capacity = 1_000_000;
            c.write_refill_per_sec = 100_000;
            c.read_capacity = 1_000_000;
            c.read_refill_per_sec = 100_000;
        });
        let pop =
            population::create_population(&self.client, n..self.args.large, a, NAMESPACES).await?;
        let end = self.wait(&pop).await?;
        out.f(
            "converge_seconds_large_10ms",
            (end - pop.first_create).as_secs_f64(),
        );
        tokio::time::sleep(Duration::from_secs(self.args.resync_secs + 2)).await;
        let (hwm, cur) = rss(self.pid).context("read the operator's /proc status")?;
        let total = self.args.large;
        out.f(&format!("rss_peak_mib_at_{total}"), hwm);
        out.f(&format!("rss_steady_mib_at_{total}"), cur);
        out.put(
            "max_concurrent_writes_per_account_large",
            self.azure.max_concurrent_writes_per_account(),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_budget_bound() {
        let d = Duration::from_secs(1);
        // 500 writes in one subscription: 200 at once, 300 more at 10 per second.
        assert_eq!(write_budget_bound(500, 200, 10, d), 31.0);
        assert_eq!(write_budget_bound(25, 200, 10, d), 1.0, "within the bucket");
        // Accounts spread evenly over subscriptions.
        let subs: std::collections::HashSet<String> =
            (0..200).map(|i| subscription(i, 10)).collect();
        assert_eq!(subs.len(), 10);
    }
}
