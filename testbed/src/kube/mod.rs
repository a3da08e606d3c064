//! Kubernetes API emulator — test infrastructure, not a product.
//!
//! One in-memory API server that real clients accept: kube-runtime in-process
//! (`KubeEmulator::client()`, a `kube::Client` over the emulator's tower service, watches
//! stream), and kubectl / Helm over plain HTTP on loopback (`serve`, `serve_to_dir`).
//! Modules: `store` (objects, resourceVersion, history), `registry` (served types),
//! `discovery`, `openapi`, `ops` (verbs, finalizers, GC), `watch`, `patch`, `apply`
//! (server-side apply / managedFields), `validation` (CRD schemas, CEL), `crd`, `builtin`,
//! `rbac`, `selectors`, `table`, `http`, `error`.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use sha2::Digest;

pub mod apply;
pub mod builtin;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod http;
pub mod openapi;
pub mod ops;
pub mod patch;
pub mod proto;
pub mod rbac;
pub mod registry;
pub mod selectors;
pub mod store;
pub mod table;
pub mod validation;
pub mod watch;

use store::{EventType, State};

#[derive(Default)]
struct OpenApiCache {
    epoch: u64,
    index: Arc<Value>,
    docs: HashMap<String, Arc<Value>>,
    builtin: HashMap<String, (Arc<Value>, String)>,
}

/// Shared state behind a [`KubeEmulator`].
pub struct Inner {
    pub state: Mutex<State>,
    pub notify: tokio::sync::watch::Sender<u64>,
    pub drop_epoch: tokio::sync::watch::Sender<u64>,
    pub bookmark_interval: Mutex<Duration>,
    pub admin_token: String,
    secret: String,
    pub server_addr: Mutex<String>,
    openapi_cache: Mutex<OpenApiCache>,
}

impl Inner {
    /// Run a write under the lock, then wake the watchers.
    pub fn write<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.state.lock();
        let before = st.rv;
        let out = f(&mut st);
        let after = st.rv;
        drop(st);
        if after != before {
            self.notify.send_replace(after);
        }
        out
    }

    fn sa_signature(&self, ns: &str, name: &str) -> String {
        let h = sha2::Sha256::digest(format!("{}:{ns}:{name}", self.secret));
        h.iter().take(12).map(|b| format!("{b:02x}")).collect()
    }

    pub fn sa_token(&self, ns: &str, name: &str) -> String {
        format!("sa.{ns}.{name}.{}", self.sa_signature(ns, name))
    }

    pub fn parse_sa_token(&self, token: &str) -> Option<(String, String)> {
        let rest = token.strip_prefix("sa.")?;
        let mut parts = rest.splitn(3, '.');
        let ns = parts.next()?;
        let name = parts.next()?;
        let sig = parts.next()?;
        // names are DNS labels/subdomains; a subdomain name may contain dots, so accept the
        // signature as the last dot-separated part.
        let (name, sig) = match sig.rsplit_once('.') {
            Some((more, s)) => (format!("{name}.{more}"), s.to_string()),
            None => (name.to_string(), sig.to_string()),
        };
        (self.sa_signature(ns, &name) == sig).then(|| (ns.to_string(), name))
    }

    fn openapi_ensure(&self) -> parking_lot::MutexGuard<'_, OpenApiCache> {
        let epoch = self.state.lock().types_epoch;
        let mut cache = self.openapi_cache.lock();
        if cache.epoch != epoch {
            let reg = self.state.lock().registry.clone();
            let (idx, docs) = http::openapi_build(&reg, &mut cache.builtin);
            cache.epoch = epoch;
            cache.index = Arc::new(idx);
            cache.docs = docs;
        }
        cache
    }

    pub fn openapi_index(&self) -> Arc<Value> {
        self.openapi_ensure().index.clone()
    }

    pub fn openapi_doc(&self, key: &str) -> Option<Arc<Value>> {
        self.openapi_ensure().docs.get(key).cloned()
    }
}

/// One in-memory Kubernetes API server.
#[derive(Clone)]
pub struct KubeEmulator {
    inner: Arc<Inner>,
    router: axum::Router,
}

impl Default for KubeEmulator {
    fn default() -> Self {
        Self::new()
    }
}

impl KubeEmulator {
    /// A fresh API server with namespaces `default`, `kube-system`, `kube-public`.
    pub fn new() -> Self {
        let mut state = State::new();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let mut obj = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": store::now_rfc3339(),
                             "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            obj["metadata"]["managedFields"] = Value::Null;
            obj["metadata"]
                .as_object_mut()
                .map(|m| m.remove("managedFields"));
            state.commit(&(String::new(), "namespaces".into()), obj, EventType::Added);
        }
        let (notify, _) = tokio::sync::watch::channel(state.rv);
        let (drop_epoch, _) = tokio::sync::watch::channel(0);
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            notify,
            drop_epoch,
            bookmark_interval: Mutex::new(Duration::from_secs(1)),
            admin_token: format!("admin-{}", uuid::Uuid::new_v4().simple()),
            secret: uuid::Uuid::new_v4().simple().to_string(),
            server_addr: Mutex::new("127.0.0.1:0".into()),
            openapi_cache: Mutex::new(OpenApiCache::default()),
        });
        let router = http::router(inner.clone());
        KubeEmulator { inner, router }
    }

    /// Internal shared state (for tests that need to reach in).
    pub fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The axum router serving the API (authenticated by bearer token).
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    fn client_with_token(&self, token: String) -> kube::Client {
        use tower::ServiceExt;
        let router = self.router.clone();
        let auth = ::http::HeaderValue::from_str(&format!("Bearer {token}")).expect("token header");
        let svc = tower::service_fn(move |mut req: ::http::Request<kube::client::Body>| {
            let router = router.clone();
            req.headers_mut()
                .insert(::http::header::AUTHORIZATION, auth.clone());
            async move {
                let req = req.map(axum::body::Body::new);
                router.oneshot(req).await
            }
        });
        kube::Client::new(svc, "default")
    }

    /// Admin client, in-process over the tower service (watches stream).
    pub fn client(&self) -> kube::Client {
        self.client_with_token(self.inner.admin_token.clone())
    }

    /// Client authenticated as `system:serviceaccount:<namespace>:<name>`.
    pub fn client_for_service_account(&self, namespace: &str, name: &str) -> kube::Client {
        self.client_with_token(self.service_account_token(namespace, name))
    }

    /// Bearer token for a service account identity.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        self.inner.sa_token(namespace, name)
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> String {
        self.inner.admin_token.clone()
    }

    /// Authorize non-admin identities against stored RBAC (off by default).
    pub fn set_rbac_enforced(&self, on: bool) {
        self.inner.state.lock().rbac_enforced = on;
    }

    /// Number of events kept for watch replay; watches from older versions get 410 Expired.
    pub fn set_watch_window(&self, events: usize) {
        self.inner.state.lock().set_window(events);
    }

    /// The next watch from any resourceVersion older than the current one gets 410 Expired.
    pub fn expire_watch_history(&self) {
        self.inner.state.lock().expire_history();
    }

    /// End all open watch streams now.
    pub fn drop_watches(&self) {
        self.inner.drop_epoch.send_modify(|e| *e += 1);
    }

    /// How often watches with `allowWatchBookmarks` get a BOOKMARK (default 1s).
    pub fn set_bookmark_interval(&self, d: Duration) {
        *self.inner.bookmark_interval.lock() = d;
    }

    /// Current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.state.lock().rv
    }

    /// Plain HTTP on a loopback address.
    pub async fn serve(&self, addr: SocketAddr) -> anyhow::Result<KubeServer> {
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "the kube emulator only binds loopback addresses"
        );
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        *self.inner.server_addr.lock() = local.to_string();
        let router = self.router.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(KubeServer {
            emulator: self.clone(),
            url: format!("http://{local}"),
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running loopback listener; dropping it stops the listener.
pub struct KubeServer {
    emulator: KubeEmulator,
    url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl KubeServer {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn emulator(&self) -> &KubeEmulator {
        &self.emulator
    }

    /// A kubeconfig for this server; `None` = admin, else the given bearer token.
    ///
    /// client-go (kubectl, Helm) sends no credentials over plain HTTP, so for a
    /// service-account token the kubeconfig also names the identity with `as:`
    /// (impersonation headers are sent over HTTP); kube-rs clients send the token itself.
    pub fn kubeconfig_yaml(&self, token: Option<&str>) -> String {
        let token_s = token
            .map(String::from)
            .unwrap_or_else(|| self.emulator.admin_token());
        let mut user = format!("    token: {token_s}\n");
        if let Some((ns, name)) = token.and_then(|t| self.emulator.inner.parse_sa_token(t)) {
            user.push_str(&format!("    as: system:serviceaccount:{ns}:{name}\n"));
        }
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n    server: {}\ncontexts:\n- name: testbed\n  context:\n    cluster: testbed\n    user: testbed-user\n    namespace: default\ncurrent-context: testbed\npreferences: {{}}\nusers:\n- name: testbed-user\n  user:\n{user}",
            self.url
        )
    }

    /// Write the admin kubeconfig.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml(None))?;
        Ok(())
    }

    /// Stop the listener.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for KubeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Start a fresh emulator on 127.0.0.1:0 and write `dir/kubeconfig` (admin).
pub async fn serve_to_dir(dir: &Path) -> anyhow::Result<KubeServer> {
    let server = KubeEmulator::new().serve("127.0.0.1:0".parse()?).await?;
    server.write_kubeconfig(&dir.join("kubeconfig"))?;
    Ok(server)
}
