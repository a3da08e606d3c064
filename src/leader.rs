//! Leader election on a coordination.k8s.io Lease (kube-lease-manager): only the holder
//! runs the controllers, so two replicas never both write to Azure.

use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct LeaderSettings {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub grace: Duration,
}

/// Start the lease manager; the receiver turns true while this replica leads.
pub async fn start(
    client: kube::Client,
    s: &LeaderSettings,
) -> anyhow::Result<(watch::Receiver<bool>, tokio::task::JoinHandle<()>)> {
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client, &s.lease_name)
        .with_namespace(&s.namespace)
        .with_identity(&s.identity)
        .with_duration(s.lease_duration.as_secs().max(2))
        .with_grace(s.grace.as_secs().max(1))
        .with_field_manager("aoai-operator-leader")
        .build()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot set up leader election on Lease {}/{}: {e} (check RBAC for coordination.k8s.io leases, or pass --leader-election=false)",
                s.namespace,
                s.lease_name
            )
        })?;
    let (rx, handle) = manager.watch().await;
    let join = tokio::spawn(async move {
        match handle.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "leader election stopped"),
            Err(e) => tracing::error!(error = %e, "leader election task failed"),
        }
    });
    Ok((rx, join))
}
