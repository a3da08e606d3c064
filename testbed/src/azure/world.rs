//! The emulated Azure state: accounts (with keys, catalog, deployments, projects, RAI policies
//! and blocklists), long-running operations (completed lazily when their time is up), quotas,
//! token buckets and Key Vaults.
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::AccountSeed;
use super::catalog::{self, CatalogModel};
use super::ratelimit::{Bucket, OpKind};

pub(crate) fn account_id(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}"
    )
}

pub(crate) fn quota_key(sub: &str, location: &str, usage: &str) -> (String, String, String) {
    (
        sub.to_ascii_lowercase(),
        normalize_location(location),
        usage.to_ascii_lowercase(),
    )
}

pub(crate) fn normalize_location(l: &str) -> String {
    l.to_ascii_lowercase().replace(' ', "")
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn new_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A requested managed identity as ARM returns it: a system-assigned one gets its principal.
pub(crate) fn assigned_identity(identity: &Value) -> Value {
    let mut identity = identity.clone();
    if identity["type"]
        .as_str()
        .is_some_and(|t| t.contains("SystemAssigned"))
    {
        identity["principalId"] = json!(uuid::Uuid::new_v4().to_string());
        identity["tenantId"] = json!("72f988bf-86f1-41af-91ab-2d7cd011db47");
    }
    identity
}

pub(crate) fn new_etag() -> String {
    format!("\"{}\"", uuid::Uuid::new_v4())
}

#[derive(Debug)]
pub(crate) struct Deployment {
    pub body: Value,
}

impl Deployment {
    pub fn prop(&self, name: &str) -> &Value {
        &self.body["properties"][name]
    }
    pub fn capacity(&self) -> u32 {
        self.body["sku"]["capacity"].as_u64().unwrap_or(0) as u32
    }
    pub fn usage_name(&self) -> String {
        let m = self.prop("model");
        catalog::usage_name(
            m["format"].as_str().unwrap_or(""),
            self.body["sku"]["name"].as_str().unwrap_or(""),
            m["name"].as_str().unwrap_or(""),
        )
    }
}

#[derive(Debug)]
pub(crate) struct Account {
    pub id: String,
    pub subscription: String,
    pub resource_group: String,
    pub location: String,
    pub kind: String,
    pub endpoint: String,
    /// ARM JSON without server-rendered parts that change (provisioningState lives inside).
    pub body: Value,
    pub key1: String,
    pub key2: String,
    pub catalog: Vec<CatalogModel>,
    pub deployments: BTreeMap<String, Deployment>,
    pub rai_policies: BTreeMap<String, Value>,
    /// Foundry projects (`accounts/projects`) by lower-case name: ARM JSON.
    pub projects: BTreeMap<String, Value>,
    /// RAI blocklists by lower-case name.
    pub rai_blocklists: BTreeMap<String, Blocklist>,
    /// Data-plane state per deployment (lower-case name): request count, injected failure.
    pub serving: BTreeMap<String, super::dataplane::Serving>,
}

/// A RAI blocklist (ARM JSON) and its items (ARM JSON by lower-case name).
#[derive(Debug, Clone)]
pub(crate) struct Blocklist {
    pub body: Value,
    pub items: BTreeMap<String, Value>,
}

impl Account {
    pub fn regenerate(&mut self, key1: bool) {
        if key1 {
            self.key1 = new_key();
        } else {
            self.key2 = new_key();
        }
    }

    /// An account property (`properties.{name}`).
    pub fn prop(&self, name: &str) -> &Value {
        &self.body["properties"][name]
    }

    pub fn provisioning_state(&self) -> &str {
        self.body["properties"]["provisioningState"]
            .as_str()
            .unwrap_or("Succeeded")
    }

    pub fn find_model(
        &self,
        format: &str,
        name: &str,
        version: Option<&str>,
    ) -> Option<&CatalogModel> {
        let candidates = self
            .catalog
            .iter()
            .filter(|m| m.format.eq_ignore_ascii_case(format) && m.name.eq_ignore_ascii_case(name));
        match version {
            Some(v) => candidates
                .into_iter()
                .find(|m| m.version.eq_ignore_ascii_case(v)),
            None => {
                let all: Vec<&CatalogModel> = candidates.collect();
                all.iter()
                    .find(|m| m.is_default)
                    .or_else(|| all.last())
                    .copied()
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Target {
    Deployment { name: String, delete: bool },
    Account { delete: bool },
    Project { name: String, delete: bool },
}

#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub id: String,
    pub account_key: String,
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
        operation_status(&self.finished, &self.failure)
    }
}

/// An ARM long-running operation's status from when it finished and how it failed (shared by the
/// Cognitive Services and the Machine Learning operations).
pub(crate) fn operation_status(
    finished: &Option<DateTime<Utc>>,
    failure: &Option<(String, String)>,
) -> &'static str {
    match (finished, failure) {
        (None, _) => "InProgress",
        (Some(_), None) => "Succeeded",
        (Some(_), Some(_)) => "Failed",
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SecretVersion {
    pub version: String,
    pub value: String,
    pub content_type: Option<String>,
    pub tags: Option<Value>,
    pub enabled: bool,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub name: String,
    pub versions: Vec<SecretVersion>,
}

#[derive(Debug, Clone)]
pub(crate) struct DeletedSecret {
    pub secret: Secret,
    pub deleted_date: i64,
}

#[derive(Debug)]
pub(crate) struct Vault {
    pub uri: String,
    pub secrets: BTreeMap<String, Secret>,
    pub deleted: BTreeMap<String, DeletedSecret>,
}

#[derive(Default)]
pub(crate) struct World {
    pub accounts: BTreeMap<String, Account>,
    pub vaults: BTreeMap<String, Vault>,
    pub operations: HashMap<String, Operation>,
    /// Ids of operations not finished yet.
    pub pending: HashSet<String>,
    pub quotas: HashMap<(String, String, String), u32>,
    /// ARM token buckets by (subscription, principal or "*", operation type).
    pub buckets: HashMap<(String, String, OpKind), Bucket>,
    pub fail_next: VecDeque<(String, String)>,
    pub max_concurrent: usize,
    /// Microsoft.Authorization role assignments by lower-case id.
    pub role_assignments: BTreeMap<String, Value>,
}

impl World {
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.get(&id.to_ascii_lowercase())
    }

    pub fn account_mut(&mut self, id: &str) -> Option<&mut Account> {
        self.accounts.get_mut(&id.to_ascii_lowercase())
    }

    pub fn vault_by_uri(&self, uri: &str) -> Option<&Vault> {
        let norm = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
        self.vaults.values().find(|v| norm(&v.uri) == norm(uri))
    }

    pub fn insert_vault(&mut self, name: &str, uri: &str) {
        self.vaults.insert(
            name.to_ascii_lowercase(),
            Vault {
                uri: uri.to_string(),
                secrets: BTreeMap::new(),
                deleted: BTreeMap::new(),
            },
        );
    }

    /// Inserts an account with server-filled fields; `extra` = the PUT body, if any.
    pub fn insert_account(&mut self, seed: &AccountSeed, endpoint: &str, state: &str) {
        self.insert_account_with(seed, endpoint, state, &Value::Null);
    }

    pub fn insert_account_with(
        &mut self,
        seed: &AccountSeed,
        endpoint: &str,
        state: &str,
        request: &Value,
    ) {
        let id = account_id(&seed.subscription_id, &seed.resource_group, &seed.name);
        let now = Utc::now();
        let mut props = request["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for ro in [
            "provisioningState",
            "endpoint",
            "internalId",
            "capabilities",
            "isMigrated",
            "dateCreated",
            "endpoints",
            "callRateLimit",
            "quotaLimit",
        ] {
            props.remove(ro);
        }
        props.insert("provisioningState".into(), json!(state));
        props.insert("endpoint".into(), json!(endpoint));
        props.insert(
            "endpoints".into(),
            json!({
                "OpenAI Language Model Instance API": endpoint,
                "OpenAI Dall-E API": endpoint,
                "AI Foundry API": endpoint,
            }),
        );
        props.insert(
            "internalId".into(),
            json!(uuid::Uuid::new_v4().simple().to_string()),
        );
        props.insert("dateCreated".into(), json!(timestamp(now)));
        props.insert("isMigrated".into(), json!(false));
        props
            .entry("customSubDomainName")
            .or_insert(json!(seed.name.to_ascii_lowercase()));
        props
            .entry("publicNetworkAccess")
            .or_insert(json!("Enabled"));
        props.insert(
            "capabilities".into(),
            json!([{"name": "VirtualNetworks"}, {"name": "CustomerManagedKey"}, {"name": "raiMonitor"}]),
        );
        let mut body = json!({
            "id": id,
            "name": seed.name,
            "type": "Microsoft.CognitiveServices/accounts",
            "location": seed.location,
            "kind": seed.kind,
            "sku": request.get("sku").cloned().unwrap_or(json!({"name": "S0"})),
            "etag": new_etag(),
            "properties": Value::Object(props),
            "systemData": {
                "createdBy": "testbed", "createdByType": "Application", "createdAt": timestamp(now),
                "lastModifiedBy": "testbed", "lastModifiedByType": "Application", "lastModifiedAt": timestamp(now),
            },
        });
        if let Some(tags) = request.get("tags").filter(|t| t.is_object()) {
            body["tags"] = tags.clone();
        }
        if let Some(identity) = request.get("identity").filter(|t| t.is_object()) {
            body["identity"] = assigned_identity(identity);
        }
        let key = id.to_ascii_lowercase();
        // A PUT on an existing account replaces its body; keys and children stay.
        if let Some(old) = self.accounts.get_mut(&key) {
            old.body = body;
            old.kind = seed.kind.clone();
            old.endpoint = endpoint.to_string();
            return;
        }
        self.accounts.insert(
            key,
            Account {
                id,
                subscription: seed.subscription_id.clone(),
                resource_group: seed.resource_group.clone(),
                location: seed.location.clone(),
                kind: seed.kind.clone(),
                endpoint: endpoint.to_string(),
                body,
                key1: new_key(),
                key2: new_key(),
                catalog: catalog::region_catalog(&seed.location),
                deployments: BTreeMap::new(),
                rai_policies: BTreeMap::new(),
                projects: BTreeMap::new(),
                rai_blocklists: BTreeMap::new(),
                serving: BTreeMap::new(),
            },
        );
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
            let ok = op.failure.is_none();
            match op.target {
                Target::Deployment { name, delete } => {
                    if let Some(acc) = self.accounts.get_mut(&op.account_key) {
                        if delete && ok {
                            acc.deployments.remove(&name);
                        } else if let Some(d) = acc.deployments.get_mut(&name) {
                            d.body["properties"]["provisioningState"] =
                                json!(if ok { "Succeeded" } else { "Failed" });
                        }
                    }
                }
                Target::Account { delete } => {
                    if delete && ok {
                        self.accounts.remove(&op.account_key);
                    } else if let Some(acc) = self.accounts.get_mut(&op.account_key) {
                        acc.body["properties"]["provisioningState"] =
                            json!(if ok { "Succeeded" } else { "Failed" });
                    }
                }
                Target::Project { name, delete } => {
                    if let Some(acc) = self.accounts.get_mut(&op.account_key) {
                        if delete && ok {
                            acc.projects.remove(&name);
                            super::projects::unlink(acc, &name);
                        } else if let Some(p) = acc.projects.get_mut(&name) {
                            p["properties"]["provisioningState"] =
                                json!(if ok { "Succeeded" } else { "Failed" });
                        }
                    }
                }
            }
        }
    }

    /// Account and deployment operations still running on an account (project operations do
    /// not hold the account's write lock).
    pub fn in_flight(&self, account_key: &str) -> usize {
        self.pending
            .iter()
            .filter_map(|id| self.operations.get(id))
            .filter(|o| o.finished.is_none() && o.account_key == account_key)
            .filter(|o| !matches!(o.target, Target::Project { .. }))
            .count()
    }

    pub fn quota_limit(&self, sub: &str, location: &str, usage: &str, default: u32) -> u32 {
        self.quotas
            .get(&quota_key(sub, location, usage))
            .copied()
            .unwrap_or(default)
    }

    /// Sum of capacities of deployments counting against a quota, optionally excluding one
    /// deployment (account key, lower-case name).
    pub fn usage(
        &self,
        sub: &str,
        location: &str,
        usage: &str,
        exclude: Option<(&str, &str)>,
    ) -> u32 {
        let loc = normalize_location(location);
        self.accounts
            .iter()
            .filter(|(_, a)| {
                a.subscription.eq_ignore_ascii_case(sub) && normalize_location(&a.location) == loc
            })
            .flat_map(|(k, a)| a.deployments.iter().map(move |(n, d)| (k, n, d)))
            .filter(|(k, n, _)| exclude != Some((k.as_str(), n.as_str())))
            .filter(|(_, _, d)| d.usage_name().eq_ignore_ascii_case(usage))
            .map(|(_, _, d)| d.capacity())
            .sum()
    }

    /// Usage names known in a (subscription, location): from catalogs and set quotas.
    pub fn usage_names(&self, sub: &str, location: &str) -> Vec<String> {
        let loc = normalize_location(location);
        let mut names: Vec<String> = self
            .accounts
            .values()
            .filter(|a| {
                a.subscription.eq_ignore_ascii_case(sub) && normalize_location(&a.location) == loc
            })
            .flat_map(|a| {
                a.catalog
                    .iter()
                    .flat_map(|m| {
                        m.skus
                            .iter()
                            .map(|s| catalog::usage_name(&m.format, s, &m.name))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for (s, l, u) in self.quotas.keys() {
            if s.eq_ignore_ascii_case(sub) && *l == loc {
                names.push(u.clone());
            }
        }
        names.sort_by_key(|n| n.to_ascii_lowercase());
        names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        names
    }

    pub fn put_out_of_band(&mut self, account_id: &str, name: &str, body: Value) {
        let Some(acc) = self.account_mut(account_id) else {
            return;
        };
        let existing = acc
            .deployments
            .get(&name.to_ascii_lowercase())
            .map(|d| d.body.clone());
        let model = resolve_model(acc, &body);
        let mut rendered = render_deployment(
            acc,
            name,
            &body,
            existing.as_ref(),
            model.as_ref(),
            "Succeeded",
            "portal-user@contoso.com",
            "User",
        );
        rendered["properties"]["provisioningState"] = json!("Succeeded");
        acc.deployments
            .insert(name.to_ascii_lowercase(), Deployment { body: rendered });
    }
}

/// The catalog entry a deployment body asks for (default version when none is given).
pub(crate) fn resolve_model(acc: &Account, body: &Value) -> Option<CatalogModel> {
    let m = &body["properties"]["model"];
    acc.find_model(
        m["format"].as_str().unwrap_or("OpenAI"),
        m["name"].as_str().unwrap_or(""),
        m["version"].as_str(),
    )
    .cloned()
}

/// Renders a deployment as ARM stores and returns it: the request's fields kept as sent
/// (tags included), read-only fields dropped, server fields filled.
#[allow(clippy::too_many_arguments)]
pub(crate) fn render_deployment(
    acc: &Account,
    name: &str,
    request: &Value,
    existing: Option<&Value>,
    model: Option<&CatalogModel>,
    state: &str,
    actor: &str,
    actor_type: &str,
) -> Value {
    let now = timestamp(Utc::now());
    let mut props: Map<String, Value> = request["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for ro in [
        "provisioningState",
        "capabilities",
        "rateLimits",
        "callRateLimit",
        "currentCapacity",
        "dynamicThrottlingEnabled",
    ] {
        props.remove(ro);
    }
    let mut model_json = props.get("model").cloned().unwrap_or(json!({}));
    if model_json.get("format").is_none() {
        model_json["format"] = json!("OpenAI");
    }
    if let Some(m) = model {
        if model_json.get("version").and_then(Value::as_str).is_none() {
            model_json["version"] = json!(m.version);
        }
        props.insert("capabilities".into(), json!(m.capabilities));
    }
    if let Some(obj) = model_json.as_object_mut() {
        obj.remove("callRateLimit");
    }
    props.insert("model".into(), model_json);
    let sku = request
        .get("sku")
        .cloned()
        .unwrap_or(json!({"name": "Standard", "capacity": 1}));
    let capacity = sku["capacity"].as_u64().unwrap_or(1);
    props
        .entry("versionUpgradeOption")
        .or_insert(json!("OnceNewDefaultVersionAvailable"));
    props
        .entry("raiPolicyName")
        .or_insert(json!("Microsoft.DefaultV2"));
    props.entry("deploymentState").or_insert(json!("Running"));
    props.insert("currentCapacity".into(), json!(capacity));
    props.insert(
        "rateLimits".into(),
        json!([
            {"key": "request", "renewalPeriod": 10, "count": capacity},
            {"key": "token", "renewalPeriod": 60, "count": capacity * 1000},
        ]),
    );
    props.insert("provisioningState".into(), json!(state));
    let created = existing
        .and_then(|e| e["systemData"]["createdAt"].as_str().map(str::to_string))
        .unwrap_or_else(|| now.clone());
    let created_by = existing
        .and_then(|e| e["systemData"]["createdBy"].as_str().map(str::to_string))
        .unwrap_or_else(|| actor.to_string());
    let created_by_type = existing
        .and_then(|e| {
            e["systemData"]["createdByType"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| actor_type.to_string());
    let mut body = json!({
        "id": format!("{}/deployments/{}", acc.id, name),
        "name": name,
        "type": "Microsoft.CognitiveServices/accounts/deployments",
        "sku": sku,
        "etag": new_etag(),
        "properties": Value::Object(props),
        "systemData": {
            "createdBy": created_by, "createdByType": created_by_type, "createdAt": created,
            "lastModifiedBy": actor, "lastModifiedByType": actor_type, "lastModifiedAt": now,
        },
    });
    if let Some(tags) = request.get("tags").filter(|t| t.is_object()) {
        body["tags"] = tags.clone();
    }
    body
}

/// A deployment body carrying every property the spec defines that a client's write must not
/// drop (model publisher/source/sourceAccount, parentDeploymentName, capacitySettings, the
/// model-router `routing`, contextCacheContainerId, spilloverDeploymentName), with values in
/// the shapes of the 2026-09-01 spec. `account_id` is the account it lives on.
pub fn held_properties_body(account_id: &str) -> Value {
    json!({
        "sku": {"name": "GlobalStandard", "capacity": 10},
        "tags": {"cost-center": "42"},
        "properties": {
            "model": {
                "format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18",
                "publisher": "OpenAI",
                "source": format!("{account_id}/deployments/origin"),
                "sourceAccount": account_id,
            },
            "parentDeploymentName": "parent-chat",
            "capacitySettings": {"designatedCapacity": 10, "priority": 1},
            "routing": {"mode": "quality", "models": [
                {"format": "OpenAI", "name": "gpt-4o", "version": "2024-08-06"},
                {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"},
            ]},
            "contextCacheContainerId": "cache-container-1",
            "spilloverDeploymentName": "overflow-chat",
            "raiPolicyName": "Microsoft.DefaultV2",
            "versionUpgradeOption": "NoAutoUpgrade",
        },
    })
}
