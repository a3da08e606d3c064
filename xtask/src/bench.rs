//! `cargo xtask bench [--debug] [aoai-bench options]` (issues 6 and 11): builds `aoai-operator`
//! and `aoai-bench` in release mode (debug with `--debug`) and runs the benchmark with every other
//! option passed on as it is (`--deployments N --accounts A --subscriptions S --provisioning-ms D
//! --large L ...`; `aoai-bench --help` lists them, so they are defined in one place). The bench
//! prints one `name: value` per line (see bench/src/main.rs); the figures are also written to
//! `target/bench/last.txt`.
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::util::{self, cargo, step};

pub fn run(args: Vec<String>) -> Result<ExitCode> {
    let debug = args.iter().any(|a| a == "--debug");
    let rest: Vec<String> = args
        .into_iter()
        .filter(|a| a != "--debug" && a != "--")
        .collect();
    let profile = if debug { "debug" } else { "release" };
    step(&format!(
        "cargo build ({profile}) -p aoai-operator -p aoai-bench"
    ));
    let mut build = cargo();
    build.args([
        "build",
        "-p",
        "aoai-operator",
        "-p",
        "aoai-bench",
        "-p",
        "testbed",
        "--bins",
    ]);
    if !debug {
        build.arg("--release");
    }
    let status = build.status().context("run cargo build")?;
    anyhow::ensure!(status.success(), "cargo build failed");
    let bin_dir = util::target_dir().join(profile);
    step(&format!("aoai-bench {}", rest.join(" ")));
    let mut cmd = std::process::Command::new(bin_dir.join("aoai-bench"));
    cmd.current_dir(util::root())
        .arg("--operator-bin")
        .arg(bin_dir.join("aoai-operator"))
        .args(&rest)
        .stderr(std::process::Stdio::inherit());
    let output = cmd.output().context("run aoai-bench")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{stdout}");
    let dir = util::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("last.txt"), &stdout)?;
    Ok(if output.status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
