//! `testbed`: the project's test bed as a process. `testbed kube|azure|up --dir DIR` starts a
//! real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, built from Go
//! modules on first use) and/or the Azure emulator on loopback, writes their client files into
//! DIR (`kubeconfig`, `ca.pem`, `azure.env`), prints a line containing `ready`, and runs until
//! SIGTERM/SIGINT, then stops every process it started. `testbed build` only builds (or finds
//! cached) the control-plane binaries. Test infrastructure, not a product.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use testbed::controlplane::{self, ControlPlane, Options};

#[derive(Parser)]
#[command(
    name = "testbed",
    about = "A real Kubernetes control plane and an Azure emulator for aoai-operator's tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager): writes DIR/kubeconfig.
    Kube {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Azure emulator (Entra ID, ARM, Key Vault, OpenAI data plane): writes DIR/ca.pem and DIR/azure.env.
    Azure {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Both: writes DIR/kubeconfig, DIR/ca.pem and DIR/azure.env.
    Up {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Build (or find in target/controlplane/) etcd, kube-apiserver and kube-controller-manager
    /// and print their directory. TESTBED_KUBERNETES_VERSION=v1.37.2 builds another release.
    Build {
        /// First regenerate testbed/controlplane/kubernetes (go.mod, tools.go, go mod tidy) from
        /// the pinned release's own go.mod (after changing KUBERNETES_VERSION).
        #[arg(long)]
        update_module: bool,
    },
}

#[derive(Args)]
struct KubeArgs {
    /// Serve watches from etcd, not the apiserver's watch cache (compaction then expires them).
    #[arg(long)]
    no_watch_cache: bool,
    /// Write an audit log to DIR/controlplane/audit.log.
    #[arg(long)]
    audit_log: bool,
    /// For the test harness: exit once no process has held a shared lock on FILE for a few
    /// seconds (each test process holds one while it uses this control plane).
    #[arg(long, hide = true)]
    exit_when_unused: Option<PathBuf>,
}

impl KubeArgs {
    fn options(&self) -> Options {
        Options {
            watch_cache: !self.no_watch_cache,
            audit_log: self.audit_log,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TESTBED_LOG")
                .unwrap_or_else(|_| "warn,kube_client::client::builder=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let (dir, kube, azure) = match cli.command {
        Command::Build { update_module } => {
            if update_module {
                let release = controlplane::Release::selected()?;
                anyhow::ensure!(
                    release.is_pinned(),
                    "--update-module rewrites the committed module of the pinned release; unset {}",
                    controlplane::KUBERNETES_VERSION_ENV
                );
                let go = controlplane::go::Go::find()?;
                controlplane::release::write_kubernetes_module(
                    &go,
                    &release.kubernetes,
                    &controlplane::release::committed_modules_dir().join("kubernetes"),
                )?;
            }
            let bins = tokio::task::spawn_blocking(controlplane::build).await??;
            println!("{}", bins.dir.display());
            return Ok(());
        }
        Command::Kube { dir, kube } => (dir, Some(kube), false),
        Command::Azure { dir } => (dir, None, true),
        Command::Up { dir, kube } => (dir, Some(kube), true),
    };
    std::fs::create_dir_all(&dir)?;
    let mut parts = Vec::new();
    let mut unused_lock = None;
    let control_plane = match &kube {
        Some(args) => {
            let cp = ControlPlane::start(&dir, args.options()).await?;
            parts.push(format!("kube={}", cp.url()));
            unused_lock = args.exit_when_unused.clone();
            Some(cp)
        }
        None => None,
    };
    let _azure = if azure {
        let server = testbed::azure::serve_to_dir(&dir).await?;
        parts.push(format!("azure={}", server.admin_url()));
        Some(server)
    } else {
        None
    };
    println!("testbed ready dir={} {}", dir.display(), parts.join(" "));
    let reason = tokio::select! {
        s = wait_for_signal() => s,
        _ = wait_until_unused(unused_lock) => "unused".to_string(),
        e = watch_processes(control_plane.as_ref()) => e,
    };
    eprintln!("testbed: stopping ({reason})");
    if let Some(cp) = control_plane {
        tokio::task::spawn_blocking(move || cp.shutdown()).await?;
    }
    Ok(())
}

async fn wait_for_signal() -> String {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM".into(),
        _ = int.recv() => "SIGINT".into(),
    }
}

async fn wait_until_unused(lock: Option<PathBuf>) {
    match lock {
        Some(path) => testbed::harness::shared::wait_until_unused(&path).await,
        None => std::future::pending().await,
    }
}

/// Ends (with a message) when a control-plane process died by itself.
async fn watch_processes(cp: Option<&ControlPlane>) -> String {
    let Some(cp) = cp else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if let Some(what) = cp.exited_process() {
            return what;
        }
    }
}
