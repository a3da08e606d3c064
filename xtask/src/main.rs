//! `cargo xtask …` — the project's automation, in Rust so it needs nothing but cargo.
//!
//! * `cargo xtask test`    — the single test command (Rust + Python suites, one summary line).
//! * `cargo xtask sandbox` — a real Kubernetes control plane (or `--kubeconfig FILE`) + the Azure
//!   emulator, the operator, and `examples/` converging.
//! * `cargo xtask crds`    — regenerate `crds/` and the Helm chart's copy from the Rust types.
//! * `cargo xtask bench`   — the benchmarks (issue 6, xtask/src/bench.rs).
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod crds;
mod sandbox;
mod test;
mod util;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "aoai-operator project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every Rust and Python test; prints `N passed, N failed[, N skipped]` last.
    Test {
        /// Extra arguments passed to pytest (e.g. `-k chart`).
        #[arg(long = "pytest-arg", allow_hyphen_values = true)]
        pytest_args: Vec<String>,
        /// Skip the Rust test suite (cargo nextest / cargo test).
        #[arg(long)]
        no_rust: bool,
        /// Skip the Python test suite.
        #[arg(long)]
        no_python: bool,
    },
    /// Regenerate crds/ (from `aoai-operator crd`) and charts/aoai-operator/crds/.
    Crds {
        /// Only check that the checked-in files are up to date (exit 1 if stale).
        #[arg(long)]
        check: bool,
    },
    /// Start the test bed (a real control plane + the Azure emulator), the operator and the
    /// examples; watch them converge.
    Sandbox {
        /// Working directory for the test bed's files (kubeconfig, azure.env, logs).
        #[arg(long, default_value = ".sandbox")]
        dir: PathBuf,
        /// Run against this existing cluster (kind, k3d, AKS…) instead of the built control plane;
        /// only the Azure emulator is started.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Exit 0 once every example is Ready, non-zero (with reasons) otherwise.
        #[arg(long)]
        until_ready: bool,
        /// Bound in seconds for --until-ready.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
        /// Directory of manifests to apply (default: examples/).
        #[arg(long)]
        examples: Option<PathBuf>,
    },
    /// Benchmark (issue 6): `--deployments N --accounts A --provisioning-ms D` (defaults 1000/10/200).
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test {
            pytest_args,
            no_rust,
            no_python,
        } => test::run(test::Options {
            pytest_args,
            rust: !no_rust,
            python: !no_python,
        }),
        Command::Crds { check } => crds::run(check),
        Command::Sandbox {
            dir,
            kubeconfig,
            until_ready,
            timeout,
            examples,
        } => sandbox::run(sandbox::Options {
            dir,
            kubeconfig,
            until_ready,
            timeout: std::time::Duration::from_secs(timeout),
            examples,
        }),
        Command::Bench { args } => bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
