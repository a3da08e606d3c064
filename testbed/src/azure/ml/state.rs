//! The emulated Azure Machine Learning state: workspaces, online endpoints (keys, scoring host,
//! deployments, traffic-routing state), serverless endpoints, marketplace subscriptions, the
//! registry catalogue, VM sizes and quota, long-running operations (completed lazily when their
//! time is up, like the Cognitive Services world) and the record of scoring requests served.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::quota::{self, VmSize};
use super::registry::{self, RegistryModel};
use super::resource::Child;
use crate::azure::world::normalize_location;

pub(crate) fn provider_prefix(sub: &str, rg: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices")
}

pub(crate) fn workspace_id(sub: &str, rg: &str, name: &str) -> String {
    format!("{}/workspaces/{name}", provider_prefix(sub, rg))
}

pub(crate) fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// Where a resource lives: its workspace and the workspace's coordinates.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    pub subscription: String,
    pub resource_group: String,
    pub workspace: String,
    pub location: String,
}

impl Scope {
    pub fn workspace_id(&self) -> String {
        workspace_id(&self.subscription, &self.resource_group, &self.workspace)
    }
    pub fn workspace_key(&self) -> String {
        key(&self.workspace_id())
    }
}

#[derive(Debug)]
pub(crate) struct Workspace {
    pub scope: Scope,
    pub kind: String,
    pub body: Value,
}

/// `properties.provisioningState` of a stored body.
fn provisioning_state(body: &Value) -> &str {
    body["properties"]["provisioningState"]
        .as_str()
        .unwrap_or("Succeeded")
}

#[derive(Debug)]
pub(crate) struct Deployment {
    pub body: Value,
}

impl Deployment {
    pub fn state(&self) -> &str {
        provisioning_state(&self.body)
    }
    pub fn instance_type(&self) -> &str {
        self.body["properties"]["instanceType"]
            .as_str()
            .unwrap_or("")
    }
    pub fn instance_count(&self) -> u32 {
        self.body["sku"]["capacity"].as_u64().unwrap_or(1) as u32
    }
    /// Whether it answers scoring requests: provisioned, or being scaled/updated in place
    /// (the old instances keep serving).
    pub fn serves(&self) -> bool {
        matches!(self.state(), "Succeeded" | "Scaling" | "Updating")
    }
}

#[derive(Debug)]
pub(crate) struct OnlineEndpoint {
    pub scope: Scope,
    pub name: String,
    pub id: String,
    pub body: Value,
    pub primary_key: String,
    pub secondary_key: String,
    pub deployments: BTreeMap<String, Deployment>,
    /// Smooth weighted round-robin state per deployment (traffic split).
    pub rr: HashMap<String, i64>,
}

impl OnlineEndpoint {
    pub fn auth_mode(&self) -> &str {
        self.body["properties"]["authMode"]
            .as_str()
            .unwrap_or("Key")
    }
    pub fn state(&self) -> &str {
        provisioning_state(&self.body)
    }
    /// `traffic` as (deployment name, percent).
    pub fn traffic(&self) -> Vec<(String, i64)> {
        self.body["properties"]["traffic"]
            .as_object()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub(crate) struct ServerlessEndpoint {
    pub scope: Scope,
    pub name: String,
    pub body: Value,
    pub primary_key: String,
    pub secondary_key: String,
}

#[derive(Debug)]
pub(crate) struct MarketplaceSubscription {
    pub scope: Scope,
    pub body: Value,
}

macro_rules! child {
    ($t:ty, $collection:literal) => {
        impl Child for $t {
            const COLLECTION: &'static str = $collection;
            fn scope(&self) -> &Scope {
                &self.scope
            }
            fn body(&self) -> &Value {
                &self.body
            }
        }
    };
}
child!(OnlineEndpoint, "onlineEndpoints");
child!(ServerlessEndpoint, "serverlessEndpoints");
child!(MarketplaceSubscription, "marketplaceSubscriptions");

impl MarketplaceSubscription {
    pub fn model_id(&self) -> &str {
        self.body["properties"]["modelId"].as_str().unwrap_or("")
    }
}

/// What a long-running operation changes when it completes.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Endpoint {
        key: String,
        delete: bool,
    },
    Deployment {
        endpoint: String,
        name: String,
        delete: bool,
    },
    Serverless {
        key: String,
        delete: bool,
    },
    Marketplace {
        key: String,
        delete: bool,
    },
    /// Key regeneration on an online endpoint (no state change at the end).
    EndpointKeys {
        endpoint: String,
    },
}

impl Target {
    /// The online endpoint the operation keeps busy, if any.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            Target::Endpoint { key, .. } => Some(key),
            Target::Deployment { endpoint, .. } | Target::EndpointKeys { endpoint } => {
                Some(endpoint)
            }
            _ => None,
        }
    }
    /// The resource whose URL answers the final GET (None after a delete).
    pub fn describe(&self) -> String {
        match self {
            Target::Endpoint { delete, .. } => format!("endpoint {}", verb(*delete)),
            Target::Deployment { name, delete, .. } => {
                format!("deployment '{name}' {}", verb(*delete))
            }
            Target::Serverless { delete, .. } => format!("serverless endpoint {}", verb(*delete)),
            Target::Marketplace { delete, .. } => {
                format!("marketplace subscription {}", verb(*delete))
            }
            Target::EndpointKeys { .. } => "key regeneration".into(),
        }
    }
}

fn verb(delete: bool) -> &'static str {
    if delete { "deletion" } else { "write" }
}

#[derive(Clone, Debug)]
pub(crate) struct Operation {
    pub id: String,
    pub subscription: String,
    pub location: String,
    pub target: Target,
    pub started: DateTime<Utc>,
    pub done_at: Instant,
    pub failure: Option<(String, String)>,
    pub finished: Option<DateTime<Utc>>,
}

impl Operation {
    pub fn status(&self) -> &'static str {
        crate::azure::world::operation_status(&self.finished, &self.failure)
    }
}

/// One scoring request an online endpoint answered.
#[derive(Clone, Debug)]
pub(crate) struct Served {
    pub endpoint: String,
    pub deployment: Option<String>,
    pub status: u16,
    pub at: Instant,
}

pub(crate) struct MlWorld {
    pub workspaces: BTreeMap<String, Workspace>,
    pub endpoints: BTreeMap<String, OnlineEndpoint>,
    pub serverless: BTreeMap<String, ServerlessEndpoint>,
    pub subscriptions: BTreeMap<String, MarketplaceSubscription>,
    pub catalog: Vec<RegistryModel>,
    pub vm_sizes: Vec<VmSize>,
    /// (subscription, location, family) → vCPU limit, overriding `quota::default_family_limit`.
    pub vm_quota: HashMap<(String, String, String), u32>,
    pub operations: HashMap<String, Operation>,
    pub pending: HashSet<String>,
    /// Scoring listener base URL per endpoint key, kept across delete and re-create (Azure's
    /// scoring host is derived from the endpoint name).
    pub listeners: HashMap<String, String>,
    pub served: Vec<Served>,
    /// High-water mark of writes in flight on one online endpoint (a rejected one included).
    pub max_concurrent: usize,
}

impl Default for MlWorld {
    fn default() -> Self {
        MlWorld {
            workspaces: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            serverless: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            catalog: registry::default_catalog(),
            vm_sizes: quota::default_vm_sizes(),
            vm_quota: HashMap::new(),
            operations: HashMap::new(),
            pending: HashSet::new(),
            listeners: HashMap::new(),
            served: Vec::new(),
            max_concurrent: 0,
        }
    }
}

pub(crate) fn quota_key(sub: &str, location: &str, family: &str) -> (String, String, String) {
    (
        sub.to_ascii_lowercase(),
        normalize_location(location),
        family.to_ascii_lowercase(),
    )
}

impl MlWorld {
    pub fn workspace(&self, sub: &str, rg: &str, name: &str) -> Option<&Workspace> {
        self.workspaces.get(&key(&workspace_id(sub, rg, name)))
    }

    pub fn vm_size(&self, name: &str) -> Option<&VmSize> {
        self.vm_sizes
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case(name))
    }

    pub fn family_limit(&self, sub: &str, location: &str, family: &str) -> u32 {
        self.vm_quota
            .get(&quota_key(sub, location, family))
            .copied()
            .unwrap_or_else(|| quota::default_family_limit(family))
    }

    /// vCPUs reserved in a family by the managed deployments of a (subscription, region),
    /// optionally leaving one deployment out (endpoint key, deployment name).
    pub fn family_usage(
        &self,
        sub: &str,
        location: &str,
        family: &str,
        exclude: Option<(&str, &str)>,
    ) -> u32 {
        let loc = normalize_location(location);
        self.endpoints
            .iter()
            .filter(|(_, e)| {
                e.scope.subscription.eq_ignore_ascii_case(sub)
                    && normalize_location(&e.scope.location) == loc
            })
            .flat_map(|(k, e)| e.deployments.iter().map(move |(n, d)| (k, n, d)))
            .filter(|(k, n, _)| exclude != Some((k.as_str(), n.as_str())))
            .filter_map(|(_, _, d)| {
                let size = self.vm_size(d.instance_type())?;
                size.family
                    .eq_ignore_ascii_case(family)
                    .then(|| quota::reserved_vcpus(size, d.instance_count()))
            })
            .sum()
    }

    /// Families with a quota in a region: the VM catalogue's and any set explicitly.
    pub fn families(&self, sub: &str, location: &str) -> Vec<String> {
        let loc = normalize_location(location);
        let mut out: Vec<String> = self.vm_sizes.iter().map(|v| v.family.clone()).collect();
        for (s, l, f) in self.vm_quota.keys() {
            if s.eq_ignore_ascii_case(sub) && *l == loc {
                out.push(f.clone());
            }
        }
        out.sort_by_key(|f| f.to_ascii_lowercase());
        out.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        out
    }

    /// The operation running on an online endpoint, if any.
    pub fn busy(&self, endpoint_key: &str) -> Option<&Operation> {
        self.pending
            .iter()
            .filter_map(|id| self.operations.get(id))
            .find(|o| o.finished.is_none() && o.target.endpoint() == Some(endpoint_key))
    }

    /// Counts a write on an endpoint for the concurrency high-water mark; the running
    /// operation if the endpoint is busy (the caller answers 409).
    pub fn note_write(&mut self, endpoint_key: &str) -> Option<Operation> {
        let running = self.busy(endpoint_key).cloned();
        let in_flight = usize::from(running.is_some());
        self.max_concurrent = self.max_concurrent.max(in_flight + 1);
        running
    }

    /// Completes every operation whose time is up.
    pub fn settle(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|id| {
                self.operations
                    .get(*id)
                    .is_some_and(|o| o.finished.is_none() && o.done_at <= now)
            })
            .cloned()
            .collect();
        for id in due {
            self.pending.remove(&id);
            let op = {
                let op = self.operations.get_mut(&id).expect("operation");
                op.finished = Some(Utc::now());
                op.clone()
            };
            self.complete(&op.target, op.failure.is_none());
        }
    }

    fn complete(&mut self, target: &Target, ok: bool) {
        let state = json!(if ok { "Succeeded" } else { "Failed" });
        match target {
            Target::Endpoint { key, delete } => {
                if *delete && ok {
                    self.endpoints.remove(key);
                } else if let Some(e) = self.endpoints.get_mut(key) {
                    e.body["properties"]["provisioningState"] = state;
                }
            }
            Target::Deployment {
                endpoint,
                name,
                delete,
            } => {
                let Some(e) = self.endpoints.get_mut(endpoint) else {
                    return;
                };
                if *delete && ok {
                    e.deployments.remove(name);
                    e.rr.remove(name);
                } else if let Some(d) = e.deployments.get_mut(name) {
                    d.body["properties"]["provisioningState"] = state;
                }
            }
            Target::Serverless { key, delete } => {
                if *delete && ok {
                    self.serverless.remove(key);
                } else if let Some(s) = self.serverless.get_mut(key) {
                    s.body["properties"]["provisioningState"] = state;
                    s.body["properties"]["endpointState"] =
                        json!(if ok { "Online" } else { "CreationFailed" });
                }
            }
            Target::Marketplace { key, delete } => {
                if *delete && ok {
                    self.subscriptions.remove(key);
                } else if let Some(s) = self.subscriptions.get_mut(key) {
                    s.body["properties"]["provisioningState"] = state;
                }
            }
            Target::EndpointKeys { .. } => {}
        }
    }
}
