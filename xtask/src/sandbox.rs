//! `cargo xtask sandbox`: a newcomer's whole world in one command.
//!
//! Builds the binaries, starts `testbed up --dir DIR` (a real Kubernetes control plane — etcd,
//! kube-apiserver, kube-controller-manager, built from Go modules on first use — and the Azure
//! emulator; with `--kubeconfig FILE`, an existing cluster and `testbed azure --dir DIR`), installs the
//! CRDs with kubectl, runs `aoai-operator run` against it (KUBECONFIG + the variables of DIR/azure.env),
//! applies `examples/` (the AIAccount is pointed at the emulator's seeded subscription, resource group,
//! account and Key Vault), and shows the resources converging. Ctrl-C stops everything.
//! `--until-ready` exits 0 once every example is Ready and non-zero, with the reasons, otherwise.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util::{self, step};

pub struct Options {
    pub dir: PathBuf,
    /// An existing cluster (kind, k3d, AKS…) instead of the built control plane.
    pub kubeconfig: Option<PathBuf>,
    pub until_ready: bool,
    pub timeout: Duration,
    pub examples: Option<PathBuf>,
}

/// Kinds the sandbox follows; anything else in examples/ (e.g. Namespaces) is just applied.
const WATCHED_KINDS: [&str; 2] = ["AIAccount", "ModelDeployment"];

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl Key {
    fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Row {
    key: Key,
    ready: String,
    reason: String,
    message: String,
    state: String,
    endpoint: String,
    deployment: String,
    key_vault_secret: String,
}

impl Row {
    fn is_ready(&self) -> bool {
        self.ready == "True"
    }
}

struct Processes {
    children: Vec<(String, Child)>,
}

impl Processes {
    /// SIGTERM every child (operator first), wait a little, then SIGKILL what is left.
    fn stop(&mut self) {
        for (name, child) in self.children.iter_mut().rev() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                if matches!(child.try_wait(), Ok(None)) {
                    eprintln!("{name} did not stop on SIGTERM: killing it");
                    let _ = child.kill();
                }
                let _ = child.wait();
            }
        }
        self.children.clear();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop();
    }
}

fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let setter = Arc::clone(&flag);
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        });
        setter.store(true, Ordering::SeqCst);
    });
    flag
}

pub fn run(options: Options) -> Result<ExitCode> {
    let root = util::root();
    let dir = if options.dir.is_absolute() {
        options.dir.clone()
    } else {
        root.join(&options.dir)
    };
    let examples_dir = options
        .examples
        .clone()
        .unwrap_or_else(|| root.join("examples"));
    let interrupted = interrupt_flag();

    // The same build as `cargo xtask test` (same feature unification: no rebuild between the two).
    step("cargo build --workspace --bins --examples");
    let status = util::cargo()
        .args(["build", "--quiet", "--workspace", "--bins", "--examples"])
        .status()?;
    if !status.success() {
        bail!("build failed");
    }

    // A fresh directory: stale kubeconfig/azure.env from an earlier run must not be picked up.
    for stale in ["kubeconfig", "azure.env", "ca.pem", "examples.yaml"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let _ = std::fs::remove_dir_all(dir.join("kube-cache"));
    std::fs::create_dir_all(&dir)?;

    let mut processes = Processes {
        children: Vec::new(),
    };

    let subcommand = if options.kubeconfig.is_some() {
        "azure"
    } else {
        "up"
    };
    step(&format!("testbed {subcommand} --dir {}", dir.display()));
    let testbed = start_testbed(&dir, subcommand)?;
    processes.children.push(("testbed".into(), testbed));
    let azure_env = util::read_env_file(&dir.join("azure.env"))?;
    let kubeconfig = match &options.kubeconfig {
        Some(file) => std::fs::canonicalize(file)
            .with_context(|| format!("--kubeconfig {}: no such file", file.display()))?,
        None => dir.join("kubeconfig"),
    };
    let kubectl = Kubectl {
        kubeconfig: kubeconfig.clone(),
        cache_dir: dir.join("kube-cache"),
    };

    step("kubectl apply -f crds/");
    kubectl.run(&["apply", "-f", &root.join("crds").display().to_string()])?;
    kubectl.run(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        &root.join("crds").display().to_string(),
    ])?;

    step("aoai-operator run");
    let log_path = dir.join("operator.log");
    let log = File::create(&log_path)?;
    let operator = Command::new(util::debug_bin("aoai-operator"))
        .args(["run", "--metrics-addr", "127.0.0.1:0"])
        .envs(&azure_env)
        .env("KUBECONFIG", &kubeconfig)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting aoai-operator")?;
    processes.children.push(("aoai-operator".into(), operator));
    println!("operator log: {}", log_path.display());

    step(&format!("kubectl apply -f {}", examples_dir.display()));
    let (manifest, expected) = prepare_examples(&examples_dir, &azure_env)?;
    let manifest_path = dir.join("examples.yaml");
    std::fs::write(&manifest_path, manifest)?;
    kubectl.run(&["apply", "-f", &manifest_path.display().to_string()])?;

    println!("\nKUBECONFIG={}", kubeconfig.display());
    println!(
        "  (export KUBECONFIG={} to use kubectl against the sandbox)\n",
        kubeconfig.display()
    );

    let started = Instant::now();
    let tty = std::io::stdout().is_terminal();
    let mut printed_lines = 0usize;
    let mut last_table = String::new();
    let mut announced = false;
    loop {
        if interrupted.load(Ordering::SeqCst) {
            println!("\ninterrupted: stopping the operator and the test bed");
            processes.stop();
            println!("sandbox stopped");
            return Ok(ExitCode::SUCCESS);
        }
        if let Some((name, status)) = exited(&mut processes) {
            eprintln!("\n{name} exited unexpectedly ({status}); last lines of its log:");
            print_tail(&dir.join(if name == "testbed" {
                "testbed.log"
            } else {
                "operator.log"
            }));
            processes.stop();
            return Ok(ExitCode::FAILURE);
        }
        let rows = match observe(&kubectl, &expected) {
            Ok(rows) => rows,
            Err(err) => {
                eprintln!("kubectl get failed: {err:#}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let table = render_table(&rows);
        if table != last_table {
            if tty && printed_lines > 0 {
                print!("\x1b[{printed_lines}A\x1b[J");
            } else if !tty {
                println!("[{:>6.1}s]", started.elapsed().as_secs_f64());
            }
            print!("{table}");
            let _ = std::io::stdout().flush();
            printed_lines = table.lines().count();
            last_table = table;
        }
        let all_ready = !rows.is_empty() && rows.iter().all(Row::is_ready);
        if all_ready && !announced {
            announced = true;
            println!(
                "\nall {} examples are Ready after {:.1}s:",
                rows.len(),
                started.elapsed().as_secs_f64()
            );
            for row in &rows {
                println!("{}", ready_line(row));
            }
            println!("\nKUBECONFIG={}", kubeconfig.display());
            if options.until_ready {
                processes.stop();
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "the sandbox keeps running: try `KUBECONFIG={} kubectl get modeldeployments -A`; Ctrl-C stops it",
                kubeconfig.display()
            );
            printed_lines = 0;
        }
        if options.until_ready && started.elapsed() > options.timeout {
            eprintln!(
                "\nnot every example is Ready after {}s:",
                options.timeout.as_secs()
            );
            for row in rows.iter().filter(|row| !row.is_ready()) {
                eprintln!(
                    "NOT READY {} {}: ready={} reason={} message={}",
                    row.key.kind,
                    row.key.display_name(),
                    row.ready,
                    row.reason,
                    row.message
                );
            }
            eprintln!("operator log ({}), last lines:", log_path.display());
            print_tail(&log_path);
            processes.stop();
            return Ok(ExitCode::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(700));
    }
}

fn start_testbed(dir: &Path, subcommand: &str) -> Result<Child> {
    let log = File::create(dir.join("testbed.log"))?;
    let mut child = Command::new(util::debug_bin("testbed"))
        .arg(subcommand)
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting testbed")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let _ = sender.send(line);
        }
    });
    // Seconds to start; the first run also builds the control plane (minutes; progress in testbed.log).
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut announced = false;
    loop {
        if !announced && std::fs::metadata(dir.join("testbed.log")).is_ok_and(|m| m.len() > 0) {
            announced = true;
            println!(
                "(building the Kubernetes control plane on first use: progress in {})",
                dir.join("testbed.log").display()
            );
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(5));
        match receiver.recv_timeout(left) {
            Ok(line) => {
                println!("{line}");
                if line.contains("ready") {
                    // Keep draining its stdout so it never blocks on a full pipe.
                    std::thread::spawn(move || for _ in receiver {});
                    return Ok(child);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                print_tail(&dir.join("testbed.log"));
                bail!("testbed did not report ready (see the log above)");
            }
        }
    }
}

struct Kubectl {
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<()> {
        let status = self
            .command(args)
            .status()
            .context("running kubectl (is it on PATH?)")?;
        if !status.success() {
            bail!("kubectl {} failed", args.join(" "));
        }
        Ok(())
    }

    fn output(&self, args: &[&str]) -> Result<String> {
        let output = self.command(args).output().context("running kubectl")?;
        if !output.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8(output.stdout)?)
    }
}

/// Read examples/*.yaml (sorted), point the AIAccount(s) and AIWorkspace(s) at the emulator's seeded Azure world, and
/// return the manifest to apply plus the resources to follow.
fn prepare_examples(
    dir: &Path,
    azure_env: &BTreeMap<String, String>,
) -> Result<(String, Vec<Key>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    let mut manifest = String::new();
    let mut expected = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let mut value: Value = serde::Deserialize::deserialize(doc)
                .with_context(|| format!("parsing {}", file.display()))?;
            if value.is_null() {
                continue;
            }
            let kind = value["kind"].as_str().unwrap_or_default().to_string();
            if kind == "AIAccount" || kind == "AIWorkspace" {
                point_at_sandbox(&mut value, azure_env);
            }
            if WATCHED_KINDS.contains(&kind.as_str()) {
                expected.push(Key {
                    kind: kind.clone(),
                    namespace: value["metadata"]["namespace"]
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| (kind == "ModelDeployment").then(|| "default".to_string())),
                    name: value["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                });
            }
            manifest.push_str("---\n");
            manifest.push_str(&serde_yaml::to_string(&value)?);
        }
    }
    if expected.is_empty() {
        bail!("no AIAccount or ModelDeployment found in {}", dir.display());
    }
    expected.sort();
    Ok((manifest, expected))
}

fn point_at_sandbox(account: &mut Value, azure_env: &BTreeMap<String, String>) {
    let workspace = account["kind"] == "AIWorkspace";
    let spec = &mut account["spec"];
    let mut set = |field: &str, key: &str| {
        if let Some(value) = azure_env.get(key) {
            spec[field] = Value::String(value.clone());
        }
    };
    set("subscriptionId", "AZURE_SUBSCRIPTION_ID");
    set("resourceGroup", "AZURE_RESOURCE_GROUP");
    if workspace {
        set("workspaceName", "AZURE_ML_WORKSPACE");
    } else {
        set("accountName", "AZURE_OPENAI_ACCOUNT");
    }
    if let Some(uri) = azure_env.get("AZURE_KEY_VAULT_URI") {
        spec["keyVault"]["vaultUri"] = Value::String(uri.clone());
    }
}

fn observe(kubectl: &Kubectl, expected: &[Key]) -> Result<Vec<Row>> {
    let text = kubectl.output(&[
        "get",
        "aiaccounts.aoai.dev,modeldeployments.aoai.dev",
        "--all-namespaces",
        "-o",
        "json",
    ])?;
    let list: Value = serde_json::from_str(&text)?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut rows = Vec::new();
    for key in expected {
        let item = items.iter().find(|item| {
            item["kind"].as_str() == Some(key.kind.as_str())
                && item["metadata"]["name"].as_str() == Some(key.name.as_str())
                && item["metadata"]["namespace"].as_str() == key.namespace.as_deref()
        });
        rows.push(match item {
            Some(item) => row_for(key.clone(), item),
            None => Row {
                key: key.clone(),
                ready: "-".into(),
                reason: "NotFound".into(),
                message: "not created yet".into(),
                state: String::new(),
                endpoint: String::new(),
                deployment: String::new(),
                key_vault_secret: String::new(),
            },
        });
    }
    Ok(rows)
}

fn row_for(key: Key, item: &Value) -> Row {
    let status = &item["status"];
    let generation = item["metadata"]["generation"].as_i64().unwrap_or(0);
    let ready = status["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    let observed = ready["observedGeneration"]
        .as_i64()
        .or_else(|| status["observedGeneration"].as_i64());
    let mut ready_status = ready["status"].as_str().unwrap_or("-").to_string();
    let mut reason = ready["reason"].as_str().unwrap_or("").to_string();
    if ready_status == "True" && observed.is_some_and(|observed| observed < generation) {
        ready_status = "Unknown".into();
        reason = "StaleGeneration".into();
    }
    let kv = &status["keyVaultSecret"];
    let key_vault_secret = match (kv["vaultUri"].as_str(), kv["name"].as_str()) {
        (Some(uri), Some(name)) => {
            let mut id = format!("{}/secrets/{name}", uri.trim_end_matches('/'));
            if let Some(version) = kv["version"].as_str().filter(|v| !v.is_empty()) {
                id.push('/');
                id.push_str(version);
            }
            id
        }
        _ => kv["id"].as_str().unwrap_or("").to_string(),
    };
    Row {
        key,
        ready: ready_status,
        reason,
        message: ready["message"].as_str().unwrap_or("").to_string(),
        state: status["provisioningState"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        // Azure ML forms: the URI apps call.
        endpoint: status["endpoint"]
            .as_str()
            .or(status["scoringUri"].as_str())
            .unwrap_or("")
            .to_string(),
        deployment: status["deploymentName"].as_str().unwrap_or("").to_string(),
        key_vault_secret,
    }
}

fn render_table(rows: &[Row]) -> String {
    let headers = ["KIND", "NAME", "READY", "REASON", "STATE", "MESSAGE"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            let mut message = row.message.replace('\n', " ");
            if message.chars().count() > 60 {
                message = message.chars().take(57).collect::<String>() + "...";
            }
            [
                row.key.kind.clone(),
                row.key.display_name(),
                row.ready.clone(),
                row.reason.clone(),
                row.state.clone(),
                message,
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |values: Vec<&str>| {
        let text: Vec<String> = values
            .iter()
            .zip(widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// One line per Ready resource; the format is stable (tests parse it).
fn ready_line(row: &Row) -> String {
    let mut line = format!(
        "READY {} {} endpoint={}",
        row.key.kind,
        row.key.display_name(),
        row.endpoint
    );
    if !row.deployment.is_empty() {
        line.push_str(&format!(" deployment={}", row.deployment));
    }
    line.push_str(&format!(" keyVaultSecret={}", row.key_vault_secret));
    line
}

fn exited(processes: &mut Processes) -> Option<(String, String)> {
    for (name, child) in processes.children.iter_mut() {
        if let Ok(Some(status)) = child.try_wait() {
            return Some((name.clone(), status.to_string()));
        }
    }
    None
}

fn print_tail(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(30)..] {
        eprintln!("  | {line}");
    }
}
