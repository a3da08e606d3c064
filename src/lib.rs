//! aoai-operator: reconciles `ModelDeployment` custom resources into Azure OpenAI / AI Foundry
//! deployments through ARM, keeps the account key in Key Vault, and publishes the endpoint and
//! a Key Vault reference (never the key) in status. `run`/`start` are the library entry points.

pub mod azure;
pub mod context;
pub mod crd;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod reason;
pub mod reconcile;
pub mod server;
pub mod telemetry;

pub use context::{Config, Context, Timing};
pub use error::{Error, Result};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;

/// A running operator (in-process).
pub struct Operator {
    pub metrics: Arc<metrics::Metrics>,
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Operator {
    /// Stop the controllers gracefully (in-flight reconciles finish) and wait.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match tokio::time::timeout(std::time::Duration::from_secs(30), self.task).await {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("operator did not stop within 30s"),
        }
    }

    /// Stop immediately, as a crash would (for restart tests): the controller task and every
    /// in-flight reconcile are cancelled at their next await point (no graceful drain).
    pub fn abort(self) {
        self.task.abort();
        self.shutdown.cancel();
    }

    /// Wait until the operator stops by itself (error or leadership lost).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Start the operator in the background.
pub async fn start(config: Config) -> anyhow::Result<Operator> {
    let metrics = Arc::new(metrics::Metrics::new());
    let (ctx, wiring) = Context::new(config.clone(), metrics.clone())?;
    let ctx = Arc::new(ctx);
    let shutdown = CancellationToken::new();
    let ready = Arc::new(AtomicBool::new(false));
    let metrics_addr = match config.metrics_addr {
        Some(addr) => Some(
            server::serve(
                addr,
                server::ServerState {
                    metrics: metrics.clone(),
                    ready: ready.clone(),
                },
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    tracing::info!(azure = %config.azure, metrics = ?metrics_addr, "starting aoai-operator");
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        let mut leader_rx = None;
        if let Some(l) = &config.leader_election {
            let (mut rx, _join) = leader::start(config.client.clone(), l).await?;
            tracing::info!(lease = %l.lease_name, identity = %l.identity, "waiting for leadership");
            loop {
                if *rx.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    _ = token.cancelled() => return Ok(()),
                    r = rx.changed() => { r.map_err(|_| anyhow::anyhow!("leader election stopped"))?; }
                }
            }
            tracing::info!("acquired leadership");
            leader_rx = Some(rx);
        }
        ready.store(true, Ordering::Relaxed);
        let stop = token.clone();
        let lost = async move {
            match leader_rx {
                Some(mut rx) => loop {
                    if rx.changed().await.is_err() || !*rx.borrow() {
                        return true;
                    }
                },
                None => std::future::pending().await,
            }
        };
        let stop_ctrl = stop.clone();
        let controllers =
            reconcile::run_controllers(ctx, wiring, async move { stop_ctrl.cancelled().await });
        tokio::pin!(controllers);
        tokio::select! {
            _ = &mut controllers => Ok(()),
            l = lost => {
                if l {
                    // Returning drops the controllers, which cancels in-flight reconciles at once:
                    // a replica that lost the Lease must not finish a write it had not sent yet.
                    stop.cancel();
                    anyhow::bail!("lost leadership; exiting so another replica takes over")
                }
                Ok(())
            }
        }
    });
    Ok(Operator {
        metrics,
        metrics_addr,
        shutdown,
        task,
    })
}

/// Run the operator until it stops (error, shutdown signal handled by the caller via the token).
pub async fn run(config: Config) -> anyhow::Result<()> {
    start(config).await?.wait().await
}
