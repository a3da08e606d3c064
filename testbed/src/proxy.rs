//! A loopback TCP proxy for fault injection between a client (the operator) and a server (the
//! apiserver): [`Proxy::cut`] closes every open connection at once, [`Proxy::cut_quiet`] only
//! those whose client has sent nothing for a while (watch streams, mid-stream, and idle pooled
//! connections, sparing requests in flight), [`Proxy::stall`] stops moving bytes (connections stay open, nothing arrives) and
//! holds new connections until [`Proxy::resume`]. TLS passes through untouched.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

struct Conn {
    task: AbortHandle,
    /// Milliseconds since the proxy started at which the client last sent bytes.
    client_sent: Arc<AtomicU64>,
}

struct Shared {
    upstream: SocketAddr,
    started: std::time::Instant,
    conns: Mutex<Vec<Conn>>,
    stalled: watch::Sender<bool>,
    accepted: AtomicU64,
    cuts: AtomicU64,
}

/// A running proxy; dropping it stops it and closes its connections.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: AbortHandle,
}

impl Proxy {
    /// Listen on `127.0.0.1:0` and forward every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            started: std::time::Instant::now(),
            conns: Mutex::new(Vec::new()),
            stalled: watch::channel(false).0,
            accepted: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
        });
        let s = shared.clone();
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                s.accepted.fetch_add(1, Ordering::Relaxed);
                let s2 = s.clone();
                let client_sent = Arc::new(AtomicU64::new(s.started.elapsed().as_millis() as u64));
                let sent = client_sent.clone();
                let task = tokio::spawn(async move {
                    wait_unstalled(&s2.stalled).await;
                    if let Ok(server) = TcpStream::connect(s2.upstream).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        let up = pump(cr, sw, s2.stalled.subscribe(), Some((s2.started, sent)));
                        let down = pump(sr, cw, s2.stalled.subscribe(), None);
                        tokio::select! { _ = up => {}, _ = down => {} }
                    }
                });
                let mut conns = s.conns.lock();
                conns.retain(|c| !c.task.is_finished());
                conns.push(Conn {
                    task: task.abort_handle(),
                    client_sent,
                });
            }
        })
        .abort_handle();
        Ok(Proxy {
            addr,
            shared,
            acceptor,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (the apiserver's certificate names 127.0.0.1).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Close every open connection now; returns how many there were.
    pub fn cut(&self) -> usize {
        self.cut_where(|_| true)
    }

    /// Close the connections whose client has sent nothing for at least `quiet` (a watch sends
    /// its request once, then only receives; a request in flight has just been sent). Returns
    /// how many were closed.
    pub fn cut_quiet(&self, quiet: std::time::Duration) -> usize {
        let now = self.shared.started.elapsed().as_millis() as u64;
        let quiet = quiet.as_millis() as u64;
        self.cut_where(|c| now.saturating_sub(c.client_sent.load(Ordering::Relaxed)) >= quiet)
    }

    fn cut_where(&self, pick: impl Fn(&Conn) -> bool) -> usize {
        let mut conns = self.shared.conns.lock();
        conns.retain(|c| !c.task.is_finished());
        let mut n = 0;
        conns.retain(|c| {
            if pick(c) {
                c.task.abort();
                n += 1;
                false
            } else {
                true
            }
        });
        self.shared.cuts.fetch_add(1, Ordering::Relaxed);
        n
    }

    /// Stop forwarding bytes in both directions, and hold new connections, until [`Self::resume`].
    pub fn stall(&self) {
        self.shared.stalled.send_replace(true);
    }

    pub fn resume(&self) {
        self.shared.stalled.send_replace(false);
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared
            .conns
            .lock()
            .iter()
            .filter(|c| !c.task.is_finished())
            .count()
    }

    /// Connections accepted since start.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        for c in self.shared.conns.lock().drain(..) {
            c.task.abort();
        }
    }
}

async fn wait_unstalled(stalled: &watch::Sender<bool>) {
    let mut rx = stalled.subscribe();
    let _ = rx.wait_for(|s| !*s).await;
}

/// Copy `from` to `to` (holding bytes while stalled); `sent` records when bytes last came in.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
    sent: Option<(std::time::Instant, Arc<AtomicU64>)>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((started, at)) = &sent {
            at.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        if stalled.wait_for(|s| !*s).await.is_err() {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
