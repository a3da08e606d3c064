//! One running control plane: etcd, kube-apiserver and kube-controller-manager on loopback
//! with free ports, TLS, RBAC, a service-account issuer and signing key (TokenRequest works),
//! and `DIR/kubeconfig` for the admin. Ready only once `/readyz` answers ok and the
//! controller manager is working (it created the `default` ServiceAccount). Faults for tests:
//! kill/stop and restart the apiserver (same port, same etcd data), and etcd compaction so a
//! watch resumed from an old resourceVersion ends with `410 Expired`.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::build::{self, Binaries};
use super::pki::{Credential, Pki, kubeconfig_yaml};
use super::process::{Proc, Spawner};

/// Knobs of a control plane (all default to what a real cluster does).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Options {
    /// The apiserver's watch cache (`--watch-cache`). Off, watches are served by etcd, so a
    /// watch resumed from a compacted resourceVersion gets `410 Expired` right after
    /// [`ControlPlane::compact`]; on, the cache keeps serving its own window.
    pub watch_cache: bool,
    /// Write an audit log (`DIR/controlplane/audit.log`, every request but leases, Metadata level).
    pub audit_log: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            watch_cache: true,
            audit_log: false,
        }
    }
}

impl Options {
    /// The flags of `testbed kube` that select these options.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if !self.watch_cache {
            args.push("--no-watch-cache".to_string());
        }
        if self.audit_log {
            args.push("--audit-log".to_string());
        }
        args
    }
}

struct Procs {
    etcd: Option<Proc>,
    apiserver: Option<Proc>,
    controller_manager: Option<Proc>,
}

/// A running control plane. Dropping it stops every process it started.
pub struct ControlPlane {
    dir: PathBuf,
    work: PathBuf,
    binaries: Binaries,
    pki: Pki,
    options: Options,
    etcd_port: u16,
    apiserver_port: u16,
    procs: Mutex<Procs>,
    // Declared last: dropped after the processes were stopped.
    spawner: Spawner,
}

const READY_TIMEOUT: Duration = Duration::from_secs(120);

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl ControlPlane {
    /// Build the binaries if needed, then start everything with its files in `dir`
    /// (`dir/kubeconfig`, `dir/controlplane/…`).
    pub async fn start(dir: &Path, options: Options) -> Result<ControlPlane> {
        let binaries = tokio::task::spawn_blocking(build::build).await??;
        Self::start_with(dir, options, binaries).await
    }

    pub async fn start_with(
        dir: &Path,
        options: Options,
        binaries: Binaries,
    ) -> Result<ControlPlane> {
        std::fs::create_dir_all(dir)?;
        let dir = std::fs::canonicalize(dir)?;
        let work = dir.join("controlplane");
        if work.exists() {
            std::fs::remove_dir_all(&work)
                .with_context(|| format!("removing the old {}", work.display()))?;
        }
        std::fs::create_dir_all(&work)?;
        let pki = Pki::generate(&work.join("pki"))?;
        let cp = ControlPlane {
            dir: dir.clone(),
            work,
            binaries,
            pki,
            options,
            etcd_port: free_port()?,
            apiserver_port: free_port()?,
            procs: Mutex::new(Procs {
                etcd: None,
                apiserver: None,
                controller_manager: None,
            }),
            spawner: Spawner::new(),
        };
        std::fs::write(cp.kubeconfig_path(), cp.admin_kubeconfig_yaml())?;
        std::fs::write(cp.work.join("etcd.url"), cp.etcd_url())?;
        std::fs::write(
            cp.work.join("kcm.kubeconfig"),
            kubeconfig_yaml(
                &cp.url(),
                &cp.pki.ca_pem,
                "system:kube-controller-manager",
                Credential::Cert(&cp.pki.controller_manager),
            ),
        )?;
        cp.start_etcd().await?;
        cp.start_apiserver().await?;
        cp.start_controller_manager().await?;
        Ok(cp)
    }

    /// `https://127.0.0.1:PORT` of the apiserver.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    pub fn apiserver_port(&self) -> u16 {
        self.apiserver_port
    }

    /// etcd's client URL (`http://127.0.0.1:PORT`; its JSON gateway is under `/v3/`).
    pub fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// `DIR/kubeconfig` (admin: user `admin`, group `system:masters`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    pub fn admin_kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(
            &self.url(),
            &self.pki.ca_pem,
            "admin",
            Credential::Cert(&self.pki.admin),
        )
    }

    /// A kubeconfig that authenticates with a bearer token (e.g. a ServiceAccount's).
    pub fn token_kubeconfig_yaml(&self, user: &str, token: &str) -> String {
        kubeconfig_yaml(
            &self.url(),
            &self.pki.ca_pem,
            user,
            Credential::Token(token),
        )
    }

    /// The audit log, when [`Options::audit_log`] is on.
    pub fn audit_log_path(&self) -> Option<PathBuf> {
        self.options.audit_log.then(|| self.work.join("audit.log"))
    }

    /// A new admin client (create one per tokio runtime: its connections belong to it).
    pub async fn admin_client(&self) -> Result<kube::Client> {
        client_from_yaml(&self.admin_kubeconfig_yaml()).await
    }

    async fn start_etcd(&self) -> Result<()> {
        let peer = free_port()?;
        let client = self.etcd_url();
        let mut cmd = Command::new(self.binaries.etcd());
        cmd.arg("--name=testbed")
            .arg(format!(
                "--data-dir={}",
                self.work.join("etcd-data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=testbed=http://127.0.0.1:{peer}"))
            .arg("--unsafe-no-fsync=true")
            .arg("--log-level=warn");
        let mut proc = self
            .spawner
            .spawn("etcd", cmd, &self.work.join("etcd.log"))?;
        let http = crate::http_client();
        let url = format!("{client}/health");
        wait_until(&mut proc, "report healthy", || async {
            match http.get(&url).send().await {
                Ok(r) => match r.json::<Value>().await {
                    Ok(v) if v["health"] == "true" => Ok(()),
                    Ok(v) => Err(v.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
        self.procs.lock().etcd = Some(proc);
        Ok(())
    }

    fn apiserver_command(&self) -> Result<Command> {
        let p = &self.pki;
        let mut cmd = Command::new(self.binaries.kube_apiserver());
        cmd.arg(format!("--etcd-servers={}", self.etcd_url()))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={}", self.apiserver_port))
            .arg(format!("--tls-cert-file={}", p.serving_cert().display()))
            .arg(format!(
                "--tls-private-key-file={}",
                p.serving_key().display()
            ))
            .arg(format!("--client-ca-file={}", p.ca_cert().display()))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!(
                "--service-account-key-file={}",
                p.service_account_pub().display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                p.service_account_key().display()
            ))
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg(format!(
                "--cert-dir={}",
                self.work.join("apiserver-certs").display()
            ))
            .arg("--allow-privileged=true")
            .arg("--profiling=false")
            .arg(format!("--watch-cache={}", self.options.watch_cache));
        if let Some(audit) = self.audit_log_path() {
            let policy = self.work.join("audit-policy.yaml");
            std::fs::write(&policy, AUDIT_POLICY)?;
            cmd.arg(format!("--audit-policy-file={}", policy.display()))
                .arg(format!("--audit-log-path={}", audit.display()))
                .arg("--audit-log-maxsize=0")
                .arg("--audit-log-format=json");
        }
        Ok(cmd)
    }

    /// Start kube-apiserver (again, after [`Self::kill_apiserver`] or [`Self::stop_apiserver`]:
    /// same port, same etcd data) and wait for `/readyz`.
    pub async fn start_apiserver(&self) -> Result<()> {
        let mut proc = self.spawner.spawn(
            "kube-apiserver",
            self.apiserver_command()?,
            &self.work.join("kube-apiserver.log"),
        )?;
        let client = self.admin_client().await?;
        wait_until(&mut proc, "answer /readyz with ok", || readyz(&client)).await?;
        self.procs.lock().apiserver = Some(proc);
        Ok(())
    }

    async fn start_controller_manager(&self) -> Result<()> {
        let p = &self.pki;
        let mut cmd = Command::new(self.binaries.kube_controller_manager());
        cmd.arg(format!(
            "--kubeconfig={}",
            self.work.join("kcm.kubeconfig").display()
        ))
        .arg("--use-service-account-credentials=true")
        .arg(format!(
            "--service-account-private-key-file={}",
            p.service_account_key().display()
        ))
        .arg(format!("--root-ca-file={}", p.ca_cert().display()))
        .arg(format!(
            "--cluster-signing-cert-file={}",
            p.ca_cert().display()
        ))
        .arg(format!(
            "--cluster-signing-key-file={}",
            p.ca_key().display()
        ))
        .arg("--leader-elect=false")
        .arg("--secure-port=0")
        .arg("--profiling=false");
        let mut proc = self.spawner.spawn(
            "kube-controller-manager",
            cmd,
            &self.work.join("kube-controller-manager.log"),
        )?;
        // Working = its serviceaccount controller created default/default.
        let client = self.admin_client().await?;
        let sas: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
            kube::Api::namespaced(client, "default");
        wait_until(&mut proc, "create the default ServiceAccount", || async {
            match sas.get_opt("default").await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("not yet".to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
        self.procs.lock().controller_manager = Some(proc);
        Ok(())
    }

    /// SIGKILL the apiserver (a crash). Clients see connections refused until
    /// [`Self::start_apiserver`].
    pub fn kill_apiserver(&self) {
        if let Some(mut p) = self.procs.lock().apiserver.take() {
            p.kill();
        }
    }

    /// Stop the apiserver gracefully (SIGTERM: it drains, watches end).
    pub fn stop_apiserver(&self) {
        let proc = self.procs.lock().apiserver.take();
        if let Some(mut p) = proc {
            p.stop(Duration::from_secs(30));
        }
    }

    /// Kill the apiserver and start it again on the same port with the same etcd data.
    pub async fn restart_apiserver(&self) -> Result<()> {
        self.kill_apiserver();
        self.start_apiserver().await
    }

    /// etcd's current revision (= the newest resourceVersion).
    pub async fn etcd_revision(&self) -> Result<i64> {
        etcd_revision(&self.etcd_url()).await
    }

    /// See [`compact_etcd`].
    pub async fn compact(&self) -> Result<i64> {
        compact_etcd(&self.etcd_url()).await
    }

    /// Is every process still running? (None, or the name of one that exited.)
    pub fn exited_process(&self) -> Option<String> {
        let mut guard = self.procs.lock();
        let procs = &mut *guard;
        for p in [
            procs.etcd.as_mut(),
            procs.apiserver.as_mut(),
            procs.controller_manager.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(status) = p.exited() {
                return Some(format!("{} exited ({status})", p.name));
            }
        }
        None
    }

    /// Stop everything (controller manager, apiserver, etcd), each SIGTERM then SIGKILL.
    pub fn shutdown(&self) {
        let mut procs = self.procs.lock();
        for p in [
            procs.controller_manager.take(),
            procs.apiserver.take(),
            procs.etcd.take(),
        ]
        .into_iter()
        .flatten()
        {
            let mut p = p;
            p.stop(Duration::from_secs(10));
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// etcd's current revision (through its JSON gateway at `etcd_url`).
pub async fn etcd_revision(etcd_url: &str) -> Result<i64> {
    let v = etcd_post(etcd_url, "/v3/maintenance/status", json!({})).await?;
    revision_of(&v)
}

/// Compact etcd's history up to its current revision (physically), so every watch or list
/// from an older resourceVersion that etcd serves fails with `410 Expired`. Returns the revision.
pub async fn compact_etcd(etcd_url: &str) -> Result<i64> {
    let rev = etcd_revision(etcd_url).await?;
    match etcd_post(
        etcd_url,
        "/v3/kv/compaction",
        json!({"revision": rev.to_string(), "physical": true}),
    )
    .await
    {
        Ok(_) => Ok(rev),
        // Nothing was written since the last compaction: the history is already gone.
        Err(e)
            if e.to_string()
                .contains("required revision has been compacted") =>
        {
            Ok(rev)
        }
        Err(e) => Err(e),
    }
}

async fn etcd_post(etcd_url: &str, path: &str, body: Value) -> Result<Value> {
    let r = crate::http_client()
        .post(format!("{etcd_url}{path}"))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {path} to etcd at {etcd_url}"))?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("etcd {path} answered {status}: {v}");
    }
    Ok(v)
}

/// Poll `ready` until it is Ok, failing with the child's log tail if the child exits first or
/// [`READY_TIMEOUT`] passes.
async fn wait_until<F, Fut>(proc: &mut Proc, what: &str, mut ready: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), String>>,
{
    let start = Instant::now();
    loop {
        if let Some(status) = proc.exited() {
            bail!(
                "{} exited ({status}) while starting; last lines of {}:\n{}",
                proc.name,
                proc.log.display(),
                proc.log_tail(30)
            );
        }
        let last = match ready().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if start.elapsed() > READY_TIMEOUT {
            bail!(
                "{} did not {what} within {READY_TIMEOUT:?} ({last}); last lines of {}:\n{}",
                proc.name,
                proc.log.display(),
                proc.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn revision_of(v: &Value) -> Result<i64> {
    let r = &v["header"]["revision"];
    r.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| r.as_i64())
        .with_context(|| format!("no header.revision in etcd's answer {v}"))
}

async fn readyz(client: &kube::Client) -> std::result::Result<(), String> {
    let req = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    match client.request_text(req).await {
        Ok(t) if t.trim() == "ok" => Ok(()),
        Ok(t) => Err(t),
        Err(e) => Err(e.to_string()),
    }
}

/// A kube client from kubeconfig YAML.
pub async fn client_from_yaml(yaml: &str) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::from_yaml(yaml)?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    Ok(kube::Client::try_from(config)?)
}

/// Every request at Metadata level except the leases the control plane renews by itself.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  resources:
  - group: coordination.k8s.io
    resources: [leases]
- level: Metadata
";
