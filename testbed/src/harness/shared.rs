//! One control plane per test binary, shared across processes (nextest runs every test in a
//! process of its own). In `target/testbed-shared/<binary>/`: the first test process (under the
//! exclusive `start.lock`) starts a detached `testbed kube --exit-when-unused DIR` and writes
//! `state.json`; every test process holds a shared lock on `users.lock` for its whole life
//! (flock locks vanish when a process dies, however it dies). The server exits once nobody has
//! held that lock for [`IDLE_EXIT`], removing `state.json` under `start.lock` first.
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::controlplane::Options;
use crate::controlplane::process::log_tail;

/// How long the shared server stays up with no test process using it.
pub const IDLE_EXIT: Duration = Duration::from_secs(10);
/// Upper bound for a first start that also builds the binaries.
const START_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// What a test process needs to use a shared control plane.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub pid: u32,
    pub url: String,
    pub kubeconfig: PathBuf,
    pub etcd_url: String,
    pub audit_log: Option<PathBuf>,
}

/// Shared-lock handles this process holds (one per shared directory), kept until exit.
fn held() -> &'static Mutex<Vec<(PathBuf, File)>> {
    static HELD: OnceLock<Mutex<Vec<(PathBuf, File)>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

/// `target/testbed-shared/<test binary>[-options]`.
pub fn shared_dir(options: &Options) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| "tests".into());
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tests".into());
    // Cargo names test binaries `<target>-<16 hex digits>`.
    let name = match stem.rsplit_once('-') {
        Some((base, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            base.to_string()
        }
        _ => stem,
    };
    let mut tag = String::new();
    if !options.watch_cache {
        tag.push_str("-nowatchcache");
    }
    if options.audit_log {
        tag.push_str("-audit");
    }
    crate::controlplane::target_dir()
        .join("testbed-shared")
        .join(format!("{name}{tag}"))
}

/// The `testbed` binary: `TESTBED_BIN`, else `target/debug/testbed` beside the test binary when
/// it is at least as new as the test binary (an older one may predate the library in use).
pub fn testbed_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TESTBED_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let exe = std::env::current_exe().ok()?;
    let beside = exe.parent()?.parent()?.join("testbed");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(&beside), modified(&exe)) {
        (Some(bin), Some(test)) if bin >= test => Some(beside),
        _ => None,
    }
}

/// Attach this process to the shared control plane in `dir`, starting it with `testbed` when
/// none is running. Blocking (run it with `spawn_blocking`).
pub fn attach(dir: &Path, testbed: &Path, options: &Options) -> Result<State> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let start = File::create(dir.join("start.lock"))?;
    start.lock()?;
    {
        let mut held = held().lock().unwrap();
        if !held.iter().any(|(d, _)| d == dir) {
            let users = File::create(dir.join("users.lock"))?;
            users.lock_shared()?;
            held.push((dir.to_path_buf(), users));
        }
    }
    let state_path = dir.join("state.json");
    if let Ok(text) = std::fs::read_to_string(&state_path)
        && let Ok(state) = serde_json::from_str::<State>(&text)
        && alive(state.pid)
    {
        return Ok(state);
    }
    let _ = std::fs::remove_file(&state_path);
    let log_path = dir.join("server.log");
    let log = File::create(&log_path)?;
    let cluster_dir = dir.join("cluster");
    let mut cmd = Command::new(testbed);
    cmd.arg("kube")
        .arg("--dir")
        .arg(&cluster_dir)
        .args(options.to_args())
        .arg("--exit-when-unused")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid(2) is async-signal-safe. A session of its own: the server outlives the
    // test process that started it (the users lock, not the parent, decides when it ends).
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", testbed.display()))?;
    let began = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with("testbed ready")) {
            let url = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("kube="))
                .context("the ready line names no kube= URL")?
                .to_string();
            let etcd_url = std::fs::read_to_string(cluster_dir.join("controlplane/etcd.url"))
                .context("the control plane wrote no etcd.url")?;
            let audit = cluster_dir.join("controlplane/audit.log");
            let state = State {
                pid: child.id(),
                url,
                kubeconfig: cluster_dir.join("kubeconfig"),
                etcd_url: etcd_url.trim().to_string(),
                audit_log: options.audit_log.then_some(audit),
            };
            std::fs::write(&state_path, serde_json::to_string_pretty(&state)?)?;
            // Not waited for: it runs on after this process; reaped by init.
            std::mem::forget(child);
            return Ok(state);
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "`{} kube` exited ({status}) before it was ready; last lines of {}:\n{}",
                testbed.display(),
                log_path.display(),
                log_tail(&log_path, 30)
            );
        }
        if began.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            bail!(
                "`{} kube` was not ready after {START_TIMEOUT:?}; see {}",
                testbed.display(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Running (a zombie, dead but not reaped by its parent, does not count).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// For the server (`testbed kube --exit-when-unused DIR`): return once no test process has held
/// a shared lock on `DIR/users.lock` for [`IDLE_EXIT`]. Removes `DIR/state.json` while holding
/// `DIR/start.lock`, which stays held until this process exits, so no test attaches to a server
/// that is stopping.
pub async fn wait_until_unused(dir: &Path) {
    let dir = dir.to_path_buf();
    let mut idle_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(start) = File::create(dir.join("start.lock")) else {
            continue;
        };
        if start.try_lock().is_err() {
            idle_since = None;
            continue;
        }
        let unused = File::create(dir.join("users.lock"))
            .ok()
            .is_some_and(|users| users.try_lock().is_ok());
        if !unused {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= IDLE_EXIT {
            let _ = std::fs::remove_file(dir.join("state.json"));
            // Held until exit: a test process that wants a control plane now waits, then starts one.
            std::mem::forget(start);
            return;
        }
    }
}
