//! `cargo xtask bench [--deployments N] [--accounts A] [--provisioning-ms D] [-- extra aoai-bench args]`
//! (issue 6): builds `aoai-operator` and `aoai-bench` in release mode and runs the benchmark. The
//! bench prints one `name: value` per line (see bench/src/main.rs); the figures are also written to
//! `target/bench/last.txt`.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use crate::util::{self, cargo, step};

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask bench",
    about = "Benchmark the operator on the emulated test bed"
)]
struct BenchArgs {
    /// Number of ModelDeployments.
    #[arg(long, default_value_t = 1000)]
    deployments: usize,
    /// Number of Azure accounts.
    #[arg(long, default_value_t = 10)]
    accounts: usize,
    /// Emulated provisioning time of one deployment write (ms).
    #[arg(long, default_value_t = 200)]
    provisioning_ms: u64,
    /// Use the debug build instead of release (faster to build, slower to run).
    #[arg(long)]
    debug: bool,
    /// Further arguments for aoai-bench (e.g. --large 0, --resyncs 5, --shared-subscription).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub fn run(args: Vec<String>) -> Result<ExitCode> {
    let a = BenchArgs::try_parse_from(std::iter::once("cargo xtask bench".to_string()).chain(args))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let profile = if a.debug { "debug" } else { "release" };
    step(&format!(
        "cargo build ({profile}) -p aoai-operator -p aoai-bench"
    ));
    let mut build = cargo();
    build.args(["build", "-p", "aoai-operator", "-p", "aoai-bench", "--bins"]);
    if !a.debug {
        build.arg("--release");
    }
    let status = build.status().context("run cargo build")?;
    anyhow::ensure!(status.success(), "cargo build failed");
    let bin_dir: PathBuf = util::target_dir().join(profile);
    step(&format!(
        "aoai-bench --deployments {} --accounts {} --provisioning-ms {}",
        a.deployments, a.accounts, a.provisioning_ms
    ));
    let mut cmd = std::process::Command::new(bin_dir.join("aoai-bench"));
    cmd.current_dir(util::root())
        .arg("--operator-bin")
        .arg(bin_dir.join("aoai-operator"))
        .args(["--deployments", &a.deployments.to_string()])
        .args(["--accounts", &a.accounts.to_string()])
        .args(["--provisioning-ms", &a.provisioning_ms.to_string()])
        .args(&a.rest)
        .stderr(std::process::Stdio::inherit());
    let output = cmd.output().context("run aoai-bench")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{stdout}");
    let dir = util::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("last.txt"), &stdout)?;
    if output.status.success() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}
