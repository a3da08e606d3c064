//! WATCH: initial events (or `sendInitialEvents` + the initial-events-end bookmark), replay
//! from a resourceVersion (410 Expired once out of the window), selector transitions
//! (leaving the selector is DELETED), periodic BOOKMARKs, `timeoutSeconds`, and
//! emulator-wide stream drops for chaos tests.
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::Inner;
use super::error::ApiError;
use super::ops::present;
use super::registry::{Builtin, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{EventType, ns_of};

pub struct WatchOpts {
    pub label: LabelSelector,
    pub field: FieldSelector,
    pub rv: Option<String>,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub partial_metadata: bool,
    /// `as=Table` watches (kubectl get --watch): each object is a one-row Table.
    pub table: Option<String>,
}

fn frame_raw(etype: &str, obj_json: &[u8]) -> Bytes {
    let mut s = Vec::with_capacity(obj_json.len() + 32);
    s.extend_from_slice(b"{\"type\":\"");
    s.extend_from_slice(etype.as_bytes());
    s.extend_from_slice(b"\",\"object\":");
    s.extend_from_slice(obj_json);
    s.extend_from_slice(b"}\n");
    Bytes::from(s)
}

fn frame(etype: &str, obj: &Value) -> Bytes {
    let mut s = serde_json::to_vec(&json!({"type": etype, "object": obj})).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

fn to_partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool, partial: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    if partial {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
    } else {
        json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta})
    }
}

fn expired(rv: u64, oldest: u64) -> Value {
    ApiError::gone(format!("too old resource version: {rv} ({oldest})")).to_status()
}

pub type BodyStream = futures::stream::BoxStream<'static, Result<Bytes, Infallible>>;

pub fn watch(
    inner: Arc<Inner>,
    rt: Arc<ResourceType>,
    ns: Option<String>,
    opts: WatchOpts,
) -> Result<BodyStream, ApiError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    let mut rv_rx = inner.notify.subscribe();
    let mut drop_rx = inner.drop_epoch.subscribe();
    let matches = {
        let rt = rt.clone();
        let ns = ns.clone();
        let label = opts.label.clone();
        let field = opts.field.clone();
        move |storage: &(String, String), obj_ns: &str, view: &Value| -> bool {
            storage == &rt.storage
                && (!rt.namespaced || ns.as_deref().is_none_or(|n| n == obj_ns))
                && label.matches(view)
                && field.matches(view)
        }
    };
    let mut initial: Vec<Bytes> = vec![];
    let last_rv: u64;
    {
        let st = inner.state.lock();
        let rv_param = opts.rv.clone().unwrap_or_default();
        let from_now = rv_param.is_empty() || rv_param == "0";
        if opts.send_initial_events || from_now {
            let items = st.list(
                &rt.storage,
                if rt.namespaced { ns.as_deref() } else { None },
            );
            for it in items {
                let view = present(&rt, &it);
                if matches(&rt.storage, ns_of(&it), &view) {
                    let v = if let Some(inc) = &opts.table {
                        super::table::table(&rt, std::slice::from_ref(&view), json!({}), inc)
                    } else if opts.partial_metadata {
                        to_partial(&view)
                    } else {
                        view
                    };
                    initial.push(frame("ADDED", &v));
                }
            }
            last_rv = st.rv;
            if opts.send_initial_events {
                initial.push(frame(
                    "BOOKMARK",
                    &bookmark(&rt, last_rv, true, opts.partial_metadata),
                ));
            }
        } else {
            let rv: u64 = rv_param.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {rv_param}"))
            })?;
            if st.events_since(rv).is_none() {
                let body = frame("ERROR", &expired(rv, st.oldest_replayable));
                return Ok(Box::pin(futures::stream::iter(vec![Ok(body)])));
            }
            last_rv = rv;
        }
        rv_rx.mark_changed();
        drop_rx.borrow_and_update();
    }
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let bookmark_every = *inner.bookmark_interval.lock();
    tokio::spawn(async move {
        for b in initial {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
        let mut last = last_rv;
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = drop_rx.changed() => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if opts.bookmarks => {
                    if tx.send(Ok(frame("BOOKMARK", &bookmark(&rt, last, false, opts.partial_metadata)))).await.is_err() {
                        return;
                    }
                }
                r = rv_rx.changed() => {
                    if r.is_err() { return; }
                    let (events, oldest, current) = {
                        let st = inner.state.lock();
                        (st.events_since(last), st.oldest_replayable, st.rv)
                    };
                    let Some(events) = events else {
                        let _ = tx.send(Ok(frame("ERROR", &expired(last, oldest)))).await;
                        return;
                    };
                    for ev in events {
                        last = ev.rv;
                        if ev.storage != rt.storage {
                            continue;
                        }
                        // Stored objects are served as they are unless the view converts them.
                        let as_stored = rt.builtin != Some(Builtin::EventsEvent)
                            && ev.object.get("apiVersion").and_then(|a| a.as_str()) == Some(rt.api_version().as_str());
                        let view_owned;
                        let view: &Value = if as_stored {
                            &ev.object
                        } else {
                            view_owned = present(&rt, &ev.object);
                            &view_owned
                        };
                        let now_match = matches(&ev.storage, &ev.namespace, view);
                        let old_match = ev.old.as_ref().map(|o| {
                            if as_stored {
                                matches(&ev.storage, &ev.namespace, o)
                            } else {
                                matches(&ev.storage, &ev.namespace, &present(&rt, o))
                            }
                        });
                        let etype = match (ev.etype, old_match, now_match) {
                            (EventType::Deleted, Some(true), _) => "DELETED",
                            (EventType::Deleted, _, _) => continue,
                            (_, Some(true), true) => "MODIFIED",
                            (_, Some(true), false) => "DELETED",
                            (_, _, true) => "ADDED",
                            _ => continue,
                        };
                        let bytes = if let Some(inc) = &opts.table {
                            frame(etype, &super::table::table(&rt, std::slice::from_ref(view), json!({}), inc))
                        } else if opts.partial_metadata {
                            frame(etype, &to_partial(view))
                        } else if as_stored {
                            let json = ev.json.get_or_init(|| Bytes::from(serde_json::to_vec(&*ev.object).unwrap_or_default()));
                            frame_raw(etype, json)
                        } else {
                            frame(etype, view)
                        };
                        if tx.send(Ok(bytes)).await.is_err() {
                            return;
                        }
                    }
                    let _ = current;
                }
            }
        }
    });
    Ok(Box::pin(futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
    })))
}
