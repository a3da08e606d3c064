//! `cargo xtask test`: the project's single test command.
//!
//! 1. a Python virtual environment `.venv` from `tests/python/requirements.txt` (pip runs only when
//!    the requirements file changed since the last install: its hash is stamped inside the venv);
//! 2. `AZURE_SPECS_DIR` set to `../shared/azure-specs` and `AZURE_SPECS_ML_DIR` (Azure Machine
//!    Learning, its own tree) to `../shared/azure-specs-ml` when those folders exist beside the
//!    checkout (with `REQUIRE_AZURE_SPECS=1` their absence is a failure);
//! 3. Lua 5.1 (for the ArgoCD health-check tests), installed with apt-get when missing and root;
//! 4. `cargo build --workspace --bins --examples`; the Kubernetes control plane (`testbed build`:
//!    etcd, kube-apiserver and kube-controller-manager with `go build`, cached under
//!    `target/controlplane/`; its Go modules are downloaded in the background from the start);
//!    cargo-nextest installed with `cargo install --locked --debug cargo-nextest` when missing;
//!    `cargo nextest run --workspace`, then `pytest tests/python`;
//! 5. one final line `N passed, N failed, N skipped`; the exit status is non-zero if anything failed.
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::util::{self, step};

pub struct Options {
    pub pytest_args: Vec<String>,
    pub rust: bool,
    pub python: bool,
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    passed: u64,
    failed: u64,
    skipped: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

pub fn run(options: Options) -> Result<ExitCode> {
    let root = util::root();
    let mut total = Counts::default();
    // Failures that are not tests (a build that breaks, a missing prerequisite): each counts as one failure.
    let mut problems: Vec<String> = Vec::new();
    // Network-bound, so it overlaps with the CPU-bound steps before the control-plane build.
    let go_download = start_go_download(&root);

    // 1. Python environment.
    let venv = root.join(".venv");
    let mut venv_ok = true;
    if options.python {
        step("Python virtual environment (.venv)");
        if let Err(err) = ensure_venv(&root, &venv) {
            eprintln!("xtask: ERROR preparing the Python environment: {err:#}");
            problems.push(format!("python environment: {err}"));
            venv_ok = false;
        }
    }

    // 2. Azure specs.
    step("Azure REST API specs");
    let require_specs = std::env::var("REQUIRE_AZURE_SPECS").is_ok_and(|v| v == "1" || v == "true");
    let specs = specs_dir(&root, "AZURE_SPECS_DIR", "azure-specs");
    let ml_specs = specs_dir(&root, "AZURE_SPECS_ML_DIR", "azure-specs-ml");
    match &specs {
        Some(dir) => println!("AZURE_SPECS_DIR={}", dir.display()),
        None => {
            let banner = "!".repeat(78);
            eprintln!(
                "{banner}\n!! Azure REST API specs NOT FOUND: the Azure contract suite will NOT run.\n\
                 !! Put Microsoft's azure-rest-api-specs (specification/cognitiveservices and\n\
                 !! specification/keyvault) in ../shared/azure-specs beside this checkout, or set AZURE_SPECS_DIR.\n{banner}"
            );
            if require_specs {
                problems.push("REQUIRE_AZURE_SPECS=1 but no Azure specs were found".into());
            }
        }
    }
    match &ml_specs {
        Some(dir) => println!("AZURE_SPECS_ML_DIR={}", dir.display()),
        None => {
            eprintln!(
                "!! Azure Machine Learning specs NOT FOUND: the ML contract suite will NOT run. Put them in\n\
                 !! ../shared/azure-specs-ml beside this checkout, or set AZURE_SPECS_ML_DIR."
            );
            if require_specs {
                problems.push(
                    "REQUIRE_AZURE_SPECS=1 but no Azure Machine Learning specs were found".into(),
                );
            }
        }
    }

    // 3. Lua 5.1 for the ArgoCD health-check tests.
    if options.python {
        step("Lua 5.1 (ArgoCD health-check tests)");
        ensure_lua();
    }

    // Environment for every test process.
    let target = util::target_dir();
    let mut env: Vec<(String, String)> = vec![
        ("CARGO_TARGET_DIR".into(), target.display().to_string()),
        (
            "TESTBED_BIN".into(),
            util::debug_bin("testbed").display().to_string(),
        ),
        (
            "AOAI_OPERATOR_BIN".into(),
            util::debug_bin("aoai-operator").display().to_string(),
        ),
    ];
    if let Some(dir) = &specs {
        env.push(("AZURE_SPECS_DIR".into(), dir.display().to_string()));
    }
    if let Some(dir) = &ml_specs {
        env.push(("AZURE_SPECS_ML_DIR".into(), dir.display().to_string()));
    }

    // 4a. Binaries and examples (the Python tests and the sandbox run them). Building the examples too
    // gives the same feature unification as the test build, so nextest reuses these artifacts.
    step("cargo build --workspace --bins --examples");
    let status = util::cargo()
        .args(["build", "--workspace", "--bins", "--examples"])
        .envs(env.clone())
        .status()?;
    if !status.success() {
        problems.push("cargo build --workspace --bins --examples failed".into());
    }

    // 4b. The Kubernetes control plane every Kubernetes test runs on.
    step("Kubernetes control plane (testbed build: etcd, kube-apiserver, kube-controller-manager)");
    if let Some(mut child) = go_download {
        let _ = child.wait();
    }
    let status = Command::new(util::debug_bin("testbed"))
        .arg("build")
        .envs(env.clone())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        problems.push(
            "testbed build (the Kubernetes control plane) failed: the Kubernetes tests cannot run"
                .into(),
        );
    }

    // 4c. Rust tests.
    if options.rust {
        let counts = if ensure_nextest() {
            step("cargo nextest run --workspace");
            run_nextest(&env, &mut problems)?
        } else {
            problems.push(
                "cargo-nextest is not installed and `cargo install --locked cargo-nextest` failed"
                    .into(),
            );
            step("cargo test --workspace (cargo-nextest could not be installed)");
            run_cargo_test(&env, &mut problems)?
        };
        println!("Rust: {counts}");
        total.add(counts);
    }

    // 4d. Python tests.
    if options.python && venv_ok {
        step("pytest tests/python");
        let counts = run_pytest(&root, &venv, &env, &options.pytest_args, &mut problems)?;
        println!("Python: {counts}");
        total.add(counts);
    }

    // 5. Summary.
    if !problems.is_empty() {
        eprintln!("\nxtask: problems outside the test suites (each counted as one failure):");
        for problem in &problems {
            eprintln!("  - {problem}");
        }
        total.failed += problems.len() as u64;
    }
    println!();
    println!("{total}");
    Ok(if total.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `go mod download` of the control plane's Go modules, in the background (None without Go).
fn start_go_download(root: &Path) -> Option<std::process::Child> {
    util::which("go")?;
    let script =
        "cd testbed/controlplane/kubernetes && go mod download && cd ../etcd && go mod download";
    println!("downloading the control plane's Go modules in the background");
    Command::new("sh")
        .args(["-c", script])
        .current_dir(root)
        .env("GOTOOLCHAIN", "local")
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()
}

/// cargo-nextest on PATH, installed from crates.io (`cargo install --locked`) when missing.
fn ensure_nextest() -> bool {
    if util::which("cargo-nextest").is_some() {
        return true;
    }
    // `--debug`: compiles in about half the time of a release build; a test runner's own speed
    // does not matter next to the tests it runs.
    step("cargo install --locked --debug cargo-nextest (missing; built once from crates.io)");
    let ok = util::cargo()
        .args(["install", "--locked", "--debug", "cargo-nextest"])
        .status()
        .is_ok_and(|s| s.success());
    ok && (util::which("cargo-nextest").is_some()
        || std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .is_some_and(|home| home.join("bin/cargo-nextest").is_file()))
}

fn python_interpreter() -> String {
    if let Ok(python) = std::env::var("XTASK_PYTHON") {
        return python;
    }
    for candidate in ["python3.11", "python3"] {
        if util::which(candidate).is_some() {
            return candidate.into();
        }
    }
    "python3".into()
}

fn ensure_venv(root: &Path, venv: &Path) -> Result<()> {
    let requirements = root.join("tests/python/requirements.txt");
    let wanted = util::sha256_hex(
        &std::fs::read(&requirements).context("reading tests/python/requirements.txt")?,
    );
    let python = venv.join("bin/python");
    let stamp = venv.join(".requirements.sha256");

    let usable = python.exists()
        && Command::new(&python)
            .args(["-c", "import sys"])
            .status()
            .is_ok_and(|s| s.success());
    if !usable {
        let interpreter = python_interpreter();
        println!("creating {} with {interpreter}", venv.display());
        if venv.exists() {
            std::fs::remove_dir_all(venv).context("removing the broken .venv")?;
        }
        let status = Command::new(&interpreter)
            .args(["-m", "venv"])
            .arg(venv)
            .status()
            .with_context(|| format!("running {interpreter} -m venv"))?;
        anyhow::ensure!(status.success(), "{interpreter} -m venv failed");
    }
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == wanted) {
        println!(
            "requirements unchanged (sha256 {}…): skipping pip install",
            &wanted[..12]
        );
        return Ok(());
    }
    println!("installing tests/python/requirements.txt");
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "-r",
        ])
        .arg(&requirements)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "pip install -r tests/python/requirements.txt failed"
    );
    std::fs::write(&stamp, format!("{wanted}\n"))?;
    Ok(())
}

/// A specs folder: env `var` (absolute, or relative to the checkout), else `../shared/<beside>`.
fn specs_dir(root: &Path, var: &str, beside: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            root.join(dir)
        };
        return dir.is_dir().then(|| dir.canonicalize().unwrap_or(dir));
    }
    let beside = root.join("../shared").join(beside);
    beside
        .is_dir()
        .then(|| beside.canonicalize().unwrap_or(beside))
}

fn ensure_lua() {
    if let Some(lua) = util::which("lua5.1") {
        println!("found {}", lua.display());
        return;
    }
    if util::is_root() && util::which("apt-get").is_some() {
        println!("lua5.1 missing: installing it with apt-get (Debian package lua5.1)");
        let ok = Command::new("sh")
            .args([
                "-c",
                "apt-get update -qq && apt-get install -y -qq lua5.1 >/dev/null",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        if ok && util::which("lua5.1").is_some() {
            return;
        }
    }
    let banner = "!".repeat(78);
    eprintln!(
        "{banner}\n!! lua5.1 is NOT installed and could not be installed (need root + apt-get).\n\
         !! The ArgoCD health-check tests will FAIL. Install it: sudo apt-get install lua5.1\n{banner}"
    );
}

/// Parse nextest's `Summary [ 1.2s] 10 tests run: 9 passed, 1 failed, 2 skipped`.
fn parse_nextest(text: &str) -> Option<Counts> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(" run: ") && l.contains("Summary"))?;
    let (head, tail) = line.split_once(" run: ")?;
    let mut counts = Counts::default();
    let mut run = None;
    if let Some(number) = head
        .split_whitespace()
        .rev()
        .nth(1)
        .and_then(|n| n.parse::<u64>().ok())
    {
        run = Some(number);
    }
    for part in tail.split(',') {
        let mut words = part.split_whitespace();
        let (Some(number), Some(word)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        match word {
            "passed" => counts.passed += number,
            "failed" | "timed" | "exec" => counts.failed += number,
            "skipped" => counts.skipped += number,
            _ => {}
        }
    }
    if let Some(run) = run {
        // Anything run that is neither passed nor failed (e.g. an unrecognised outcome) counts as failed.
        counts.failed = counts.failed.max(run.saturating_sub(counts.passed));
    }
    Some(counts)
}

fn run_nextest(env: &[(String, String)], problems: &mut Vec<String>) -> Result<Counts> {
    let tool_config = util::root().join("xtask/nextest.toml");
    let (status, text) = util::run_tee(
        util::cargo()
            .args([
                "nextest",
                "run",
                "--workspace",
                "--no-fail-fast",
                "--no-tests=pass",
            ])
            .arg("--tool-config-file")
            .arg(format!("xtask:{}", tool_config.display()))
            .envs(env.iter().cloned()),
    )?;
    let counts = parse_nextest(&text).unwrap_or_default();
    if !status.success() && counts.failed == 0 {
        problems
            .push("cargo nextest run failed before reporting test failures (build error?)".into());
    }
    Ok(counts)
}

/// Sum libtest's `test result: ok. 3 passed; 0 failed; 1 ignored; ...` lines.
fn parse_libtest(text: &str) -> Counts {
    let mut counts = Counts::default();
    for line in text.lines().filter(|l| l.starts_with("test result:")) {
        for part in line.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            for pair in words.windows(2) {
                if let Ok(number) = pair[0].parse::<u64>() {
                    match pair[1] {
                        "passed" => counts.passed += number,
                        "failed" => counts.failed += number,
                        "ignored" => counts.skipped += number,
                        _ => {}
                    }
                }
            }
        }
    }
    counts
}

fn run_cargo_test(env: &[(String, String)], problems: &mut Vec<String>) -> Result<Counts> {
    let (status, text) = util::run_tee(
        util::cargo()
            .args(["test", "--workspace", "--no-fail-fast"])
            .envs(env.iter().cloned()),
    )?;
    let counts = parse_libtest(&text);
    if !status.success() && counts.failed == 0 {
        problems.push("cargo test failed before reporting test failures (build error?)".into());
    }
    Ok(counts)
}

/// Parse pytest's final `==== 3 passed, 1 failed, 2 skipped, 1 error in 4.2s ====` line.
fn parse_pytest(text: &str) -> Option<Counts> {
    let line = text.lines().rev().find(|l| {
        l.trim_start().starts_with('=') && l.contains(" in ") && l.trim_end().ends_with('=')
    })?;
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| c == ',' || c == '=').to_string())
        .collect();
    let mut counts = Counts::default();
    for pair in words.windows(2) {
        if let Ok(number) = pair[0].parse::<u64>() {
            match pair[1].as_str() {
                "passed" | "xpassed" => counts.passed += number,
                "failed" | "error" | "errors" => counts.failed += number,
                "skipped" | "xfailed" => counts.skipped += number,
                _ => {}
            }
        }
    }
    Some(counts)
}

fn run_pytest(
    root: &Path,
    venv: &Path,
    env: &[(String, String)],
    extra: &[String],
    problems: &mut Vec<String>,
) -> Result<Counts> {
    let bin = venv.join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.clone()];
    paths.extend(std::env::split_paths(&path));
    let (status, text) = util::run_tee(
        Command::new(bin.join("python"))
            .current_dir(root)
            .args([
                "-m",
                "pytest",
                "tests/python",
                "-rfEs",
                "--color=no",
                "-p",
                "no:cacheprovider",
            ])
            .args(extra)
            .envs(env.iter().cloned())
            .env("PATH", std::env::join_paths(paths)?)
            .env("VIRTUAL_ENV", venv)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    )?;
    let counts = parse_pytest(&text).unwrap_or_default();
    // pytest exit codes: 0 ok, 1 tests failed, 5 nothing collected; others are internal/usage errors.
    match status.code() {
        Some(0) | Some(5) => {}
        Some(1) if counts.failed > 0 => {}
        other => problems.push(format!(
            "pytest exited with {other:?} without reporting the failures"
        )),
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nextest_summary() {
        let text = "stuff\n     Summary [   1.234s] 12 tests run: 9 passed (1 slow), 2 failed, 1 timed out, 3 skipped\n";
        let counts = parse_nextest(text).unwrap();
        assert_eq!((counts.passed, counts.failed, counts.skipped), (9, 3, 3));
        let text = "     Summary [   0.100s] 1 test run: 1 passed, 0 skipped\n";
        let counts = parse_nextest(text).unwrap();
        assert_eq!((counts.passed, counts.failed, counts.skipped), (1, 0, 0));
    }

    #[test]
    fn pytest_summary() {
        let text = "x\n==== 3 passed, 1 failed, 2 skipped, 4 warnings, 1 error in 4.20s ====\n";
        let counts = parse_pytest(text).unwrap();
        assert_eq!((counts.passed, counts.failed, counts.skipped), (3, 2, 2));
        let text =
            "============================== 5 passed in 0.12s ===============================\n";
        assert_eq!(parse_pytest(text).unwrap().passed, 5);
    }

    #[test]
    fn libtest_summary() {
        let text = "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
                    test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out\n";
        let counts = parse_libtest(text);
        assert_eq!((counts.passed, counts.failed, counts.skipped), (4, 2, 1));
    }
}
