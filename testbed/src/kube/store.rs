//! In-memory storage: objects by (group, plural) / (namespace, name), one monotonic
//! resourceVersion, and the event history that watches replay from.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};

use super::registry::Registry;

pub type StorageKey = (String, String);
pub type ObjKey = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub storage: StorageKey,
    pub namespace: String,
    pub etype: EventType,
    pub object: Arc<Value>,
    pub old: Option<Arc<Value>>,
    /// The object serialised once, shared by every watcher that serves it unchanged.
    pub json: std::sync::OnceLock<bytes::Bytes>,
}

pub struct State {
    pub rv: u64,
    pub registry: Registry,
    pub objects: HashMap<StorageKey, BTreeMap<ObjKey, Arc<Value>>>,
    pub history: VecDeque<Arc<Event>>,
    pub window: usize,
    /// Watches from a resourceVersion older than this get 410 Expired.
    pub oldest_replayable: u64,
    pub rbac_enforced: bool,
    /// Bumped whenever the set of served types changes (discovery/OpenAPI caches).
    pub types_epoch: u64,
}

impl State {
    pub fn new() -> Self {
        State {
            rv: 0,
            registry: Registry::with_builtins(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            window: 100_000,
            oldest_replayable: 0,
            rbac_enforced: false,
            types_epoch: 1,
        }
    }

    pub fn get(&self, storage: &StorageKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(storage)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    pub fn list(&self, storage: &StorageKey, ns: Option<&str>) -> Vec<Arc<Value>> {
        match self.objects.get(storage) {
            None => vec![],
            Some(m) => match ns {
                None => m.values().cloned().collect(),
                Some(ns) => m
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v.clone())
                    .collect(),
            },
        }
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.get(&(String::new(), "namespaces".into()), "", ns)
            .is_some()
    }

    /// Store (or delete, with `etype == Deleted`) an object, assigning the next resourceVersion.
    pub fn commit(&mut self, storage: &StorageKey, mut obj: Value, etype: EventType) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let ns = str_at(&obj, &["metadata", "namespace"]).to_string();
        let name = str_at(&obj, &["metadata", "name"]).to_string();
        let obj = Arc::new(obj);
        let map = self.objects.entry(storage.clone()).or_default();
        let key = (ns.clone(), name);
        let old = if etype == EventType::Deleted {
            map.remove(&key)
        } else {
            map.insert(key, obj.clone())
        };
        self.history.push_back(Arc::new(Event {
            rv,
            storage: storage.clone(),
            namespace: ns,
            etype,
            object: obj.clone(),
            old,
            json: std::sync::OnceLock::new(),
        }));
        while self.history.len() > self.window {
            if let Some(e) = self.history.pop_front() {
                self.oldest_replayable = e.rv;
            }
        }
        obj
    }

    pub fn set_window(&mut self, n: usize) {
        self.window = n.max(1);
        while self.history.len() > self.window {
            if let Some(e) = self.history.pop_front() {
                self.oldest_replayable = e.rv;
            }
        }
    }

    pub fn expire_history(&mut self) {
        self.history.clear();
        self.oldest_replayable = self.rv;
    }

    /// Events after `rv`, or None when they are no longer all kept.
    pub fn events_since(&self, rv: u64) -> Option<Vec<Arc<Event>>> {
        if rv < self.oldest_replayable {
            return None;
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Some(self.history.range(start..).cloned().collect())
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

pub fn name_of(v: &Value) -> &str {
    str_at(v, &["metadata", "name"])
}

pub fn ns_of(v: &Value) -> &str {
    str_at(v, &["metadata", "namespace"])
}

pub fn rv_of(v: &Value) -> u64 {
    str_at(v, &["metadata", "resourceVersion"])
        .parse()
        .unwrap_or(0)
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn now_micro() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}
