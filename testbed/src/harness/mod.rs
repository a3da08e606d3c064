//! The Rust test harness on the real control plane: [`Cluster`] is one control plane per test
//! binary, shared by its tests (across processes when the `testbed` binary is at hand, see
//! `shared`; in-process otherwise), or one of a test's own ([`Cluster::owned`], for tests that
//! kill the apiserver). Each test takes its own names ([`Cluster::unique`],
//! [`Cluster::namespace`]), admin clients, ServiceAccount tokens from the TokenRequest API, and,
//! around anything cluster-wide (an operator watches every namespace), [`Cluster::exclusive`].
pub mod shared;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};

pub use crate::controlplane::server::client_from_yaml;
use crate::controlplane::server::compact_etcd;
use crate::controlplane::{ControlPlane, Options};
use crate::proxy::Proxy;

/// Label on every namespace a test creates through the harness.
pub const TEST_LABEL: &str = "testbed.aoai.dev/test";

enum Backing {
    /// Another process runs it (`testbed kube`); this process holds a users lock.
    Shared,
    /// This process runs it.
    Owned(Arc<ControlPlane>),
}

/// A handle on a running control plane.
pub struct Cluster {
    backing: Backing,
    dir: PathBuf,
    url: String,
    kubeconfig: PathBuf,
    kubeconfig_yaml: String,
    etcd_url: String,
    audit_log: Option<PathBuf>,
}

fn in_process() -> &'static Mutex<HashMap<Options, Arc<tokio::sync::OnceCell<Arc<ControlPlane>>>>> {
    static CELLS: OnceLock<Mutex<HashMap<Options, Arc<tokio::sync::OnceCell<Arc<ControlPlane>>>>>> =
        OnceLock::new();
    CELLS.get_or_init(Default::default)
}

impl Cluster {
    /// The control plane of this test binary with default [`Options`].
    pub async fn shared() -> Result<Cluster> {
        Self::shared_with(Options::default()).await
    }

    /// The control plane of this test binary with these options (one per distinct options).
    pub async fn shared_with(options: Options) -> Result<Cluster> {
        let dir = shared::shared_dir(&options);
        if let Some(bin) = shared::testbed_bin() {
            let (d, o) = (dir.clone(), options.clone());
            let state = tokio::task::spawn_blocking(move || shared::attach(&d, &bin, &o)).await??;
            let yaml = std::fs::read_to_string(&state.kubeconfig)
                .with_context(|| format!("reading {}", state.kubeconfig.display()))?;
            return Ok(Cluster {
                backing: Backing::Shared,
                dir,
                url: state.url,
                kubeconfig: state.kubeconfig,
                kubeconfig_yaml: yaml,
                etcd_url: state.etcd_url,
                audit_log: state.audit_log,
            });
        }
        let cell = in_process()
            .lock()
            .unwrap()
            .entry(options.clone())
            .or_default()
            .clone();
        let dir = dir.with_file_name(format!(
            "{}-process-{}",
            dir.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let cp = cell
            .get_or_try_init(|| async {
                ControlPlane::start(&dir.join("cluster"), options.clone())
                    .await
                    .map(Arc::new)
            })
            .await?
            .clone();
        Ok(Self::from_owned(cp, dir))
    }

    /// A control plane of this test's own (started now, stopped when dropped): for tests that
    /// kill or restart the apiserver, which would disturb tests sharing one.
    pub async fn owned(options: Options) -> Result<Cluster> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = shared::shared_dir(&options).with_file_name(format!(
            "{}-owned-{}-{n}",
            shared::shared_dir(&options)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy(),
            std::process::id()
        ));
        let cp = Arc::new(ControlPlane::start(&dir.join("cluster"), options).await?);
        Ok(Self::from_owned(cp, dir))
    }

    fn from_owned(cp: Arc<ControlPlane>, dir: PathBuf) -> Cluster {
        Cluster {
            dir,
            url: cp.url(),
            kubeconfig: cp.kubeconfig_path(),
            kubeconfig_yaml: cp.admin_kubeconfig_yaml(),
            etcd_url: cp.etcd_url(),
            audit_log: cp.audit_log_path(),
            backing: Backing::Owned(cp),
        }
    }

    /// The control plane itself when this process runs it ([`Cluster::owned`], or the
    /// in-process fallback): apiserver kill/restart live there.
    pub fn control_plane(&self) -> Option<&ControlPlane> {
        match &self.backing {
            Backing::Owned(cp) => Some(cp),
            Backing::Shared => None,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig_yaml
    }

    /// The same admin kubeconfig with another server URL (e.g. a [`Proxy`] in front of the apiserver).
    pub fn kubeconfig_yaml_via(&self, server: &str) -> String {
        replace_server(&self.kubeconfig_yaml, &self.url, server)
    }

    /// `kubeconfig_yaml` (one of this cluster's) with the server replaced by `proxy`.
    pub fn through(&self, kubeconfig_yaml: &str, proxy: &Proxy) -> String {
        replace_server(kubeconfig_yaml, &self.url, &proxy.url())
    }

    /// etcd's client URL (its JSON gateway; see [`crate::controlplane::server::compact_etcd`]).
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The audit log ([`Options::audit_log`]).
    pub fn audit_log(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// A new admin client (user `admin`, group `system:masters`). Make one per tokio runtime.
    pub async fn client(&self) -> Result<kube::Client> {
        client_from_yaml(&self.kubeconfig_yaml).await
    }

    /// An admin client whose connections go through `proxy`.
    pub async fn client_via(&self, proxy: &Proxy) -> Result<kube::Client> {
        client_from_yaml(&self.kubeconfig_yaml_via(&proxy.url())).await
    }

    /// Start a [`Proxy`] in front of this cluster's apiserver.
    pub async fn proxy(&self) -> Result<Proxy> {
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("apiserver URL has no port")?;
        Proxy::start(([127, 0, 0, 1], port).into()).await
    }

    /// `base` plus a suffix no other test (process or thread) gets: a DNS label of ≤ 63 chars.
    pub fn unique(&self, base: &str) -> String {
        unique(base)
    }

    /// Create a namespace named `unique(base)` with `labels` (plus [`TEST_LABEL`]); returns its name.
    pub async fn namespace(&self, base: &str, labels: &[(&str, &str)]) -> Result<String> {
        let name = self.unique(base);
        let mut l: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert(TEST_LABEL.into(), "true".into());
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: Some(l),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client().await?)
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(name)
    }

    /// Create the ServiceAccount `namespace/name` unless it exists.
    pub async fn service_account(&self, namespace: &str, name: &str) -> Result<()> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client().await?, namespace);
        let sa = ServiceAccount {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e).with_context(|| format!("creating ServiceAccount {namespace}/{name}")),
        }
    }

    /// A bearer token for ServiceAccount `namespace/name` (created if missing) from the
    /// TokenRequest API, valid for an hour: what kubelet mounts into a pod running as it.
    pub async fn token(&self, namespace: &str, name: &str) -> Result<String> {
        self.service_account(namespace, name).await?;
        let api: Api<ServiceAccount> = Api::namespaced(self.client().await?, namespace);
        let req = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![],
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = api
            .create_token_request(name, &PostParams::default(), &req)
            .await
            .with_context(|| format!("TokenRequest for ServiceAccount {namespace}/{name}"))?;
        r.status
            .map(|s| s.token)
            .context("the TokenRequest answer has no status.token")
    }

    /// A kubeconfig that authenticates as ServiceAccount `namespace/name` (token from TokenRequest).
    pub async fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> Result<String> {
        let token = self.token(namespace, name).await?;
        Ok(token_kubeconfig(
            &self.kubeconfig_yaml,
            &format!("system:serviceaccount:{namespace}:{name}"),
            &token,
        ))
    }

    /// A client that authenticates as ServiceAccount `namespace/name`.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client> {
        client_from_yaml(&self.service_account_kubeconfig(namespace, name).await?).await
    }

    /// Compact etcd's history up to now: watches resumed from older resourceVersions end with
    /// `410 Expired` where etcd serves them (see [`Options::watch_cache`]). Returns the revision.
    pub async fn compact(&self) -> Result<i64> {
        compact_etcd(&self.etcd_url).await
    }

    /// Hold the cluster-wide lock of this control plane until the guard is dropped: one holder at
    /// a time across every process and thread using it. Take it around anything that acts on
    /// the whole cluster (an operator, which watches every namespace).
    pub async fn exclusive(&self) -> Result<Exclusive> {
        let path = self.dir.join("exclusive.lock");
        std::fs::create_dir_all(&self.dir)?;
        let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File> {
            let f = std::fs::File::create(&path)?;
            f.lock()?;
            Ok(f)
        })
        .await??;
        Ok(Exclusive { _file: file })
    }

    /// Create or update CRDs (server-side apply) and wait until each is Established and served.
    pub async fn apply_crds(&self, crds: &[CustomResourceDefinition]) -> Result<()> {
        let client = self.client().await?;
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let pp = PatchParams::apply("testbed").force();
        for crd in crds {
            let name = crd.metadata.name.clone().context("CRD without a name")?;
            api.patch(&name, &pp, &Patch::Apply(crd))
                .await
                .with_context(|| format!("applying CRD {name}"))?;
        }
        for crd in crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let start = Instant::now();
            loop {
                let c = api.get(&name).await?;
                let established = c.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
                if established && served(&client, crd).await {
                    break;
                }
                if start.elapsed() > Duration::from_secs(60) {
                    bail!(
                        "CRD {name} not Established and served after 60s: {:?}",
                        c.status
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Remove every object of `resource` (all namespaces): finalizers are cleared first so no
    /// controller is needed. For leftovers of an earlier test that failed before cleaning up.
    pub async fn purge(&self, resource: &ApiResource) -> Result<usize> {
        let api: Api<DynamicObject> = Api::all_with(self.client().await?, resource);
        let items = api.list(&ListParams::default()).await?.items;
        for o in &items {
            let name = o.metadata.name.clone().unwrap_or_default();
            let scoped: Api<DynamicObject> = match &o.metadata.namespace {
                Some(ns) => Api::namespaced_with(self.client().await?, ns, resource),
                None => Api::all_with(self.client().await?, resource),
            };
            if o.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty())
            {
                let _ = scoped
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
                    )
                    .await;
            }
            let _ = scoped.delete(&name, &DeleteParams::default()).await;
        }
        Ok(items.len())
    }

    /// Delete every namespace a test created through the harness ([`TEST_LABEL`]).
    pub async fn delete_test_namespaces(&self) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client().await?);
        let lp = ListParams::default().labels(&format!("{TEST_LABEL}=true"));
        for ns in api.list(&lp).await?.items {
            if ns.metadata.deletion_timestamp.is_none()
                && let Some(n) = ns.metadata.name
            {
                let _ = api.delete(&n, &DeleteParams::default()).await;
            }
        }
        Ok(())
    }
}

async fn served(client: &kube::Client, crd: &CustomResourceDefinition) -> bool {
    let Some(v) = crd.spec.versions.iter().find(|v| v.served) else {
        return false;
    };
    let ar = ApiResource {
        group: crd.spec.group.clone(),
        version: v.name.clone(),
        api_version: format!("{}/{}", crd.spec.group, v.name),
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    };
    Api::<DynamicObject>::all_with(client.clone(), &ar)
        .list(&ListParams::default().limit(1))
        .await
        .is_ok()
}

/// Guard of [`Cluster::exclusive`].
pub struct Exclusive {
    _file: std::fs::File,
}

/// `base-xxxxx`: `base` cut so the result is a DNS label, plus five random base-36 characters.
pub fn unique(base: &str) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect();
    let base: String = base.chars().take(57).collect();
    format!("{}-{suffix}", base.trim_end_matches('-'))
}

fn replace_server(yaml: &str, from: &str, to: &str) -> String {
    yaml.replace(&format!("server: {from}\n"), &format!("server: {to}\n"))
}

/// The admin kubeconfig `admin_yaml` with its user replaced by a bearer token.
fn token_kubeconfig(admin_yaml: &str, user: &str, token: &str) -> String {
    let mut kc: serde_yaml::Value = serde_yaml::from_str(admin_yaml).expect("our own kubeconfig");
    kc["users"] = serde_yaml::to_value(vec![
        serde_json::json!({"name": user, "user": {"token": token}}),
    ])
    .expect("yaml");
    kc["contexts"][0]["context"]["user"] = user.into();
    serde_yaml::to_string(&kc).expect("yaml")
}
