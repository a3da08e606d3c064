//! `aoai-operator run` (the controller) and `aoai-operator crd` (prints the CRDs).

use aoai_operator::azure::cloud::AzureSettings;
use aoai_operator::leader::LeaderSettings;
use aoai_operator::{Config, Timing};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "aoai-operator",
    version,
    about = "Kubernetes operator for Azure OpenAI / AI Foundry model deployments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the controller (KUBECONFIG or in-cluster config; Azure settings from flags or the AZURE_* environment).
    Run(RunArgs),
    /// Print both CRDs as multi-document YAML.
    Crd,
}

fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    // A bare number is seconds; otherwise humantime (500ms, 30s, 5m, 1h, 1h30m).
    if let Ok(n) = s.parse::<f64>() {
        return Ok(Duration::from_secs_f64(n));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?} ({e}): use e.g. 500ms, 30s, 5m, 1h"))
}

#[derive(Args)]
struct RunArgs {
    /// Address for /metrics, /healthz, /readyz [default: 0.0.0.0:8080 in a cluster, 127.0.0.1:8080 elsewhere].
    #[arg(long, env = "METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Leader election on a Lease (so two replicas never both write).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    leader_election: bool,
    /// Name of the leader election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "aoai-operator")]
    lease_name: String,
    /// Operator namespace (clientSecret Secrets are read here; default Lease namespace) [default: POD_NAMESPACE, the service account namespace, or "default"].
    #[arg(
        long = "operator-namespace",
        alias = "namespace",
        env = "POD_NAMESPACE"
    )]
    namespace: Option<String>,
    /// Namespace of the leader election Lease [default: the operator namespace].
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Cluster name written to the ownership tag of Azure deployments.
    #[arg(long, env = "CLUSTER_NAME", default_value = "default")]
    cluster_name: String,
    /// Azure cloud preset: public, china, usgov.
    #[arg(long, env = "AZURE_CLOUD")]
    azure_cloud: Option<String>,
    /// ARM endpoint override (custom cloud / emulator).
    #[arg(long, env = "AZURE_RESOURCE_MANAGER_ENDPOINT")]
    arm_endpoint: Option<String>,
    /// ARM token audience override.
    #[arg(long, env = "AZURE_RESOURCE_MANAGER_AUDIENCE")]
    arm_audience: Option<String>,
    /// Entra ID authority host override.
    #[arg(long, env = "AZURE_AUTHORITY_HOST")]
    authority_host: Option<String>,
    /// Key Vault DNS suffix override (token audience https://SUFFIX).
    #[arg(long, env = "AZURE_KEY_VAULT_SUFFIX")]
    key_vault_suffix: Option<String>,
    /// Extra CA bundle (PEM) trusted for Azure endpoints.
    #[arg(long, env = "SSL_CERT_FILE")]
    ca_file: Option<PathBuf>,
    /// Data-plane api-version written to connection ConfigMaps.
    #[arg(long, env = "OPENAI_API_VERSION", default_value = "2024-10-21")]
    openai_api_version: String,
    /// ModelDeployment drift resync interval (one GET per deployment).
    #[arg(long, env = "RESYNC_INTERVAL", default_value = "5m", value_parser = duration)]
    resync: Duration,
    /// AIAccount resync interval (account GET, listKeys, Key Vault GET).
    #[arg(long, env = "ACCOUNT_RESYNC_INTERVAL", default_value = "10m", value_parser = duration)]
    account_resync: Duration,
    /// Poll interval for Azure long-running operations without Retry-After.
    #[arg(long, env = "POLL_INTERVAL", default_value = "5s", value_parser = duration)]
    poll_interval: Duration,
    /// Upper bound for any poll / Retry-After wait.
    #[arg(long, env = "MAX_POLL_INTERVAL", default_value = "60s", value_parser = duration)]
    max_poll_interval: Duration,
    /// Safety-net re-check while queued for an account's write slot (released slots wake the next writer at once).
    #[arg(long, env = "WRITE_SLOT_RETRY", default_value = "10s", value_parser = duration)]
    write_slot_retry: Duration,
    /// How long a terminal Azure error (e.g. InsufficientQuota) holds writes for an unchanged spec.
    #[arg(long, env = "TERMINAL_RECHECK_INTERVAL", default_value = "10m", value_parser = duration)]
    terminal_recheck: Duration,
    /// Transient error backoff base.
    #[arg(long, env = "BACKOFF_BASE", default_value = "2s", value_parser = duration)]
    backoff_base: Duration,
    /// Transient error backoff cap.
    #[arg(long, env = "BACKOFF_MAX", default_value = "5m", value_parser = duration)]
    backoff_max: Duration,
    /// Timeout of one Azure HTTP request.
    #[arg(long, env = "AZURE_HTTP_TIMEOUT", default_value = "30s", value_parser = duration)]
    http_timeout: Duration,
    /// ARM read budget per subscription and principal: bucket size (ARM's default is 250).
    #[arg(long, env = "ARM_READ_BURST", default_value_t = 250.0)]
    arm_read_burst: f64,
    /// ARM reads refilled per second per subscription and principal (ARM's default is 25).
    #[arg(long, env = "ARM_READS_PER_SECOND", default_value_t = 25.0)]
    arm_reads_per_second: f64,
    /// ARM write (and, separately, delete) budget per subscription and principal: bucket size (ARM's default is 200).
    #[arg(long, env = "ARM_WRITE_BURST", default_value_t = 200.0)]
    arm_write_burst: f64,
    /// ARM writes (and deletes) refilled per second per subscription and principal (ARM's default is 10).
    #[arg(long, env = "ARM_WRITES_PER_SECOND", default_value_t = 10.0)]
    arm_writes_per_second: f64,
    /// Max concurrent reconciles per kind (0 = unbounded). Reconciles never wait on Azure's
    /// long-running operations, so a few suffice; a bound keeps memory flat under bursts.
    #[arg(long, env = "CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// JSON logs (same as --log-format json).
    #[arg(long, env = "LOG_JSON", default_value_t = false)]
    log_json: bool,
    /// Log format: text or json.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn operator_namespace(flag: Option<String>) -> String {
    flag.or_else(|| {
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .ok()
            .map(|s| s.trim().to_string())
    })
    .filter(|s| !s.is_empty())
    .unwrap_or_else(|| "default".into())
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    aoai_operator::telemetry::init(
        a.log_json || a.log_format == "json",
        "info,kube_runtime=warn,kube_client=warn",
    );
    let client = kube::Client::try_default().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot load Kubernetes configuration (set KUBECONFIG or run in a cluster): {e}"
        )
    })?;
    let mut azure = AzureSettings::from_env();
    if a.azure_cloud.is_some() {
        azure.cloud_name = a.azure_cloud;
    }
    azure.resource_manager_endpoint = a.arm_endpoint.or(azure.resource_manager_endpoint);
    azure.resource_manager_audience = a.arm_audience.or(azure.resource_manager_audience);
    azure.authority_host = a.authority_host.or(azure.authority_host);
    azure.key_vault_suffix = a.key_vault_suffix.or(azure.key_vault_suffix);
    azure.ca_file = a.ca_file.or(azure.ca_file);
    let in_cluster = std::env::var("KUBERNETES_SERVICE_HOST").is_ok();
    let namespace = operator_namespace(a.namespace);
    let mut config = Config::new(client, azure);
    config.metrics_addr = Some(a.metrics_addr.unwrap_or_else(|| {
        if in_cluster {
            SocketAddr::from(([0, 0, 0, 0], 8080))
        } else {
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    }));
    config.timing = Timing {
        resync: a.resync,
        account_resync: a.account_resync,
        poll_interval: a.poll_interval,
        max_poll_interval: a.max_poll_interval,
        write_slot_retry: a.write_slot_retry,
        backoff_base: a.backoff_base,
        backoff_max: a.backoff_max,
        terminal_recheck: a.terminal_recheck,
        http_timeout: a.http_timeout,
        max_write_hold: Duration::from_secs(3600),
    };
    config.budget = aoai_operator::azure::budget::BudgetConfig {
        read_capacity: a.arm_read_burst,
        reads_per_second: a.arm_reads_per_second,
        write_capacity: a.arm_write_burst,
        writes_per_second: a.arm_writes_per_second,
        delete_capacity: a.arm_write_burst,
        deletes_per_second: a.arm_writes_per_second,
        ..Default::default()
    };
    config.operator_namespace = namespace.clone();
    config.cluster_name = a.cluster_name;
    config.openai_api_version = a.openai_api_version;
    config.concurrency = a.concurrency;
    if a.leader_election {
        config.leader_election = Some(LeaderSettings {
            lease_name: a.lease_name,
            namespace: a.leader_election_namespace.unwrap_or(namespace),
            identity: format!("{}-{}", config.instance, std::process::id()),
            lease_duration: Duration::from_secs(15),
            grace: Duration::from_secs(5),
        });
    }
    let op = aoai_operator::start(config).await?;
    if let Some(addr) = op.metrics_addr {
        tracing::info!(%addr, "serving /metrics /healthz /readyz");
    }
    let token = op.shutdown_token();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutting down");
        token.cancel();
    });
    op.wait().await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", aoai_operator::crd::crd_yaml());
            Ok(())
        }
        Command::Run(a) => run(a).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(
            super::duration("500ms").unwrap(),
            std::time::Duration::from_millis(500)
        );
        assert_eq!(
            super::duration("5m").unwrap(),
            std::time::Duration::from_secs(300)
        );
        assert_eq!(
            super::duration("7").unwrap(),
            std::time::Duration::from_secs(7)
        );
        assert!(super::duration("5x").is_err());
        assert_eq!(
            super::duration("1h30m").unwrap(),
            std::time::Duration::from_secs(5400)
        );
    }

    #[test]
    fn leader_election_flag_forms() {
        use clap::Parser;
        let parse = |args: &[&str]| match super::Cli::try_parse_from(args).unwrap().command {
            super::Command::Run(a) => a.leader_election,
            super::Command::Crd => unreachable!(),
        };
        assert!(parse(&["aoai-operator", "run", "--leader-election"]));
        assert!(!parse(&["aoai-operator", "run", "--leader-election=false"]));
        assert!(parse(&[
            "aoai-operator",
            "run",
            "--log-format",
            "json",
            "--metrics-addr",
            "127.0.0.1:0"
        ]));
    }
}
