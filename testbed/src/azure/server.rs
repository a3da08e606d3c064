//! Loopback listeners (HTTPS with the emulator's CA; the admin listener is plain HTTP) and the
//! request pipeline shared by every surface: buffer the request, apply injected faults,
//! dispatch to the surface, validate the response against the contract, log the call.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{FaultAction, Inner, LogInfo, RequestRecord, Surface};

pub(crate) type Resp = http::Response<Full<Bytes>>;

/// A buffered request.
pub(crate) struct Req {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn query(&self, name: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub fn bearer(&self) -> Option<String> {
        let h = self.header("authorization")?;
        let (scheme, token) = h.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
    }
    pub fn json(&self) -> Result<Value, String> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| e.to_string())
    }
}

pub(crate) fn json_response(status: u16, body: Value) -> Resp {
    let bytes = serde_json::to_vec(&body).expect("json body");
    let mut resp = http::Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(bytes)))
        .expect("response");
    resp.extensions_mut()
        .insert(super::contract::ResponseJson(body));
    resp
}

pub(crate) fn empty_response(status: u16) -> Resp {
    http::Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .expect("response")
}

pub(crate) fn with_header(mut resp: Resp, name: &'static str, value: &str) -> Resp {
    if let Ok(v) = http::HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
    resp
}

/// Which listener a connection arrived on.
#[derive(Clone, Debug)]
pub(crate) enum Listener {
    /// Entra ID, managed identity and ARM.
    Main,
    /// One Key Vault (by lower-case name).
    Vault(String),
    /// One account's data plane (by lower-case ARM id).
    Data(String),
    /// One ML online or serverless endpoint's data plane (by lower-case ARM id).
    Ml(String),
    /// Plain-HTTP admin routes for the binary.
    Admin,
}

/// Binds 127.0.0.1:0 synchronously and serves `kind` until `cancel` fires.
pub(crate) fn spawn_listener(
    inner: Arc<Inner>,
    kind: Listener,
    tls: bool,
    cancel: CancellationToken,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    spawn_on(inner, kind, std_listener, tls, cancel, rt)
}

/// Serves `kind` on an already bound listener.
pub(crate) fn spawn_on(
    inner: Arc<Inner>,
    kind: Listener,
    std_listener: std::net::TcpListener,
    tls: bool,
    cancel: CancellationToken,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<SocketAddr> {
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(inner.tls.server_config.clone());
    rt.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("azure emulator listener: {e}");
                return;
            }
        };
        loop {
            let (stream, _) = tokio::select! {
                _ = cancel.cancelled() => return,
                r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            };
            let inner = inner.clone();
            let kind = kind.clone();
            let acceptor = acceptor.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let inner = inner.clone();
                    let kind = kind.clone();
                    async move { pipeline(inner, kind, req).await }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if tls {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! { _ = conn => {}, _ = cancel.cancelled() => {} }
                } else {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! { _ = conn => {}, _ = cancel.cancelled() => {} }
                }
            });
        }
    });
    Ok(addr)
}

fn surface_of(kind: &Listener, path: &str) -> Surface {
    match kind {
        Listener::Vault(_) => Surface::KeyVault,
        Listener::Data(_) | Listener::Ml(_) => Surface::DataPlane,
        Listener::Admin => Surface::Any,
        Listener::Main => {
            let p = path.to_ascii_lowercase();
            if p.starts_with("/metadata/identity") {
                Surface::ManagedIdentity
            } else if p.starts_with("/subscriptions")
                || p.starts_with("/providers")
                || super::ml::owns(&p)
            {
                Surface::Arm
            } else {
                Surface::Token
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct DroppedByFault;
impl std::fmt::Display for DroppedByFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by injected fault")
    }
}
impl std::error::Error for DroppedByFault {}

async fn pipeline(
    inner: Arc<Inner>,
    kind: Listener,
    req: http::Request<Incoming>,
) -> Result<Resp, DroppedByFault> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let req = Req {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        raw_query,
        query,
        headers: parts.headers,
        body,
    };
    if let Listener::Admin = kind {
        return Ok(super::admin::handle(&inner, &req));
    }
    let surface = surface_of(&kind, &req.path);
    let mut resp = None;
    if let Some(action) = inner.take_fault(surface, &req) {
        match action {
            FaultAction::Delay(d) => tokio::time::sleep(d).await,
            FaultAction::Drop => {
                inner.record(RequestRecord {
                    surface,
                    method: req.method.clone(),
                    path: req.path.clone(),
                    query: req.raw_query.clone(),
                    status: 0,
                    principal: None,
                    account_id: None,
                    is_write: false,
                    started,
                    finished: Instant::now(),
                });
                return Err(DroppedByFault);
            }
            FaultAction::Error {
                status,
                code,
                message,
                retry_after,
            } => {
                let body = if surface == Surface::Token || surface == Surface::ManagedIdentity {
                    serde_json::json!({"error": code, "error_description": message})
                } else {
                    serde_json::json!({"error": {"code": code, "message": message}})
                };
                let mut r = json_response(status, body);
                if let Some(s) = retry_after {
                    r = with_header(r, "retry-after", &s.to_string());
                }
                resp = Some(r);
            }
        }
    }
    let resp = match resp {
        Some(r) => r,
        None => match &kind {
            Listener::Main => match surface {
                Surface::ManagedIdentity => super::entra::managed_identity(&inner, &req),
                Surface::Arm if super::ml::owns(&req.path) => {
                    super::ml::routes::handle(&inner, &req)
                }
                Surface::Arm => super::arm::handle(&inner, &req),
                _ => super::entra::handle(&inner, &req),
            },
            Listener::Vault(name) => super::keyvault::handle(&inner, name, &req),
            Listener::Data(account) => super::dataplane::handle(&inner, account, &req),
            Listener::Ml(endpoint) => super::ml::scoring::handle(&inner, endpoint, &req),
            Listener::Admin => unreachable!(),
        },
    };
    inner.check_response(surface, &req, &resp);
    let info = resp
        .extensions()
        .get::<LogInfo>()
        .cloned()
        .unwrap_or_default();
    inner.record(RequestRecord {
        surface,
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.raw_query.clone(),
        status: resp.status().as_u16(),
        principal: info.principal,
        account_id: info.account_id,
        is_write: info.is_write,
        started,
        finished: Instant::now(),
    });
    Ok(resp)
}
