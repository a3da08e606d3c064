//! `testbed`: the project's test bed as a process. `testbed kube|azure|up --dir DIR`
//! starts the emulators on loopback, writes their client files into DIR
//! (`kubeconfig`, `ca.pem`, `azure.env`), prints a line containing `ready`,
//! and runs until SIGTERM/SIGINT. Test infrastructure, not a product.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "testbed",
    about = "Kubernetes and Azure emulators for aoai-operator's tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Kubernetes API emulator: writes DIR/kubeconfig.
    Kube {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Azure emulator (Entra ID, ARM, Key Vault, OpenAI data plane): writes DIR/ca.pem and DIR/azure.env.
    Azure {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Both emulators: writes DIR/kubeconfig, DIR/ca.pem and DIR/azure.env.
    Up {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TESTBED_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let (dir, kube, azure) = match cli.command {
        Command::Kube { dir } => (dir, true, false),
        Command::Azure { dir } => (dir, false, true),
        Command::Up { dir } => (dir, true, true),
    };
    std::fs::create_dir_all(&dir)?;
    let mut parts = Vec::new();
    let _kube = if kube {
        let server = testbed::kube::serve_to_dir(&dir).await?;
        parts.push(format!("kube={}", server.url()));
        Some(server)
    } else {
        None
    };
    let _azure = if azure {
        let server = testbed::azure::serve_to_dir(&dir).await?;
        parts.push(format!("azure={}", server.admin_url()));
        Some(server)
    } else {
        None
    };
    println!("testbed ready dir={} {}", dir.display(), parts.join(" "));
    wait_for_signal().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
