//! ARM plumbing the ML handlers share: GET and list of a workspace's child resources and their
//! 404, reading a request body (JSON object, validated against the spec when its api-version
//! has one), the `location` a tracked resource needs, enum spellings, rendering `systemData`
//! and a system-assigned identity, keys and key-regeneration requests, and the per-endpoint
//! data-plane listener (kept for the endpoint's ARM id across delete and re-create, like
//! Azure's DNS name).
use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::{Value, json};

use super::errors::{arm_error, invalid_content, not_found, user_error};
use super::routes::{Ctx, child_key};
use super::state::{MlWorld, Scope};
use crate::azure::server::{Listener, Resp, json_response};
use crate::azure::world::timestamp;
use crate::azure::{Surface, random_secret};

/// A resource kept under a workspace (online endpoint, serverless endpoint, marketplace
/// subscription), in a map of the ML world keyed by lower-case ARM id.
pub(crate) trait Child {
    /// Its collection in ARM paths, e.g. `onlineEndpoints`.
    const COLLECTION: &'static str;
    fn scope(&self) -> &Scope;
    fn body(&self) -> &Value;
}

/// ARM's 404 for `{collection}/{name}` (and deeper) under the workspace of `scope`.
pub(crate) fn missing_at(scope: &Scope, path: &str) -> Resp {
    not_found(
        &scope.resource_group,
        &format!("workspaces/{}/{path}", scope.workspace),
    )
}

pub(crate) fn missing<T: Child>(scope: &Scope, name: &str) -> Resp {
    missing_at(scope, &format!("{}/{name}", T::COLLECTION))
}

/// GET of a child resource.
pub(crate) fn get<T: Child>(
    ctx: &Ctx,
    scope: &Scope,
    name: &str,
    pick: impl Fn(&MlWorld) -> &BTreeMap<String, T>,
) -> Resp {
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    match pick(&w).get(&child_key(scope, T::COLLECTION, name)) {
        Some(c) => json_response(200, c.body().clone()),
        None => missing::<T>(scope, name),
    }
}

/// List of a workspace's child resources of one kind.
pub(crate) fn list<T: Child>(
    ctx: &Ctx,
    scope: &Scope,
    pick: impl Fn(&MlWorld) -> &BTreeMap<String, T>,
) -> Resp {
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    let ws = scope.workspace_key();
    let value: Vec<Value> = pick(&w)
        .values()
        .filter(|c| c.scope().workspace_key() == ws)
        .map(|c| c.body().clone())
        .collect();
    json_response(200, json!({"value": value}))
}

/// `value` spelt as Azure spells one of `allowed` (compared case-insensitively).
pub(crate) fn canonical(value: &str, allowed: &[&'static str]) -> Option<&'static str> {
    allowed
        .iter()
        .copied()
        .find(|a| a.eq_ignore_ascii_case(value))
}

/// A `regenerateKeys` body: (primary?, requested `keyValue`).
pub(crate) fn key_request(ctx: &Ctx) -> Result<(bool, Option<String>), Resp> {
    let request = body(ctx)?;
    let primary = match request["keyType"]
        .as_str()
        .and_then(|k| canonical(k, &["Primary", "Secondary"]))
    {
        Some(k) => k == "Primary",
        None => {
            return Err(user_error(
                "BadArgument",
                "keyType must be Primary or Secondary.",
            ));
        }
    };
    let value = request["keyValue"]
        .as_str()
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    Ok((primary, value))
}

/// The request body as a JSON object; Err = Azure's 400.
pub(crate) fn body(ctx: &Ctx) -> Result<Value, Resp> {
    let body = match ctx.req.json() {
        Ok(b) if b.is_object() => b,
        Ok(_) => return Err(invalid_content("a JSON object is required")),
        Err(e) => return Err(invalid_content(&e)),
    };
    match ctx.inner.check_request(Surface::Arm, ctx.req) {
        Some(r) => Err(r),
        None => Ok(body),
    }
}

/// `location` of a tracked resource's PUT body; Err = ARM's 400.
pub(crate) fn location(body: &Value) -> Result<String, Resp> {
    body["location"]
        .as_str()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            arm_error(
                400,
                "LocationRequired",
                "The location property is required for this definition.",
            )
        })
}

/// `systemData`, keeping the creation fields of `existing`.
pub(crate) fn system_data(existing: Option<&Value>, actor: &str) -> Value {
    let now = timestamp(Utc::now());
    let created = |field: &str, default: &str| {
        existing
            .and_then(|e| e["systemData"][field].as_str())
            .unwrap_or(default)
            .to_string()
    };
    json!({
        "createdBy": created("createdBy", actor),
        "createdByType": created("createdByType", "Application"),
        "createdAt": created("createdAt", &now),
        "lastModifiedBy": actor,
        "lastModifiedByType": "Application",
        "lastModifiedAt": now,
    })
}

/// The request's identity with server fields filled (Azure gives online endpoints a
/// system-assigned identity when none is asked for); an existing identity of the same type
/// is kept as it is (same principal).
pub(crate) fn identity(requested: Option<&Value>, existing: Option<&Value>, tenant: &str) -> Value {
    let same_type = |old: &&Value| requested.is_none_or(|r| r["type"] == old["type"]);
    if let Some(old) = existing.filter(|o| o.is_object()).filter(same_type) {
        return old.clone();
    }
    let mut identity = requested
        .filter(|i| i.is_object())
        .cloned()
        .unwrap_or_else(|| json!({"type": "SystemAssigned"}));
    if identity["type"]
        .as_str()
        .is_some_and(|t| t.contains("SystemAssigned"))
    {
        identity["principalId"] = json!(uuid::Uuid::new_v4().to_string());
        identity["tenantId"] = json!(tenant);
    }
    identity
}

/// A new endpoint key.
pub(crate) fn new_key() -> String {
    random_secret()
}

/// The key after `regenerateKeys`: `keyValue` when it names a new value, else a fresh key
/// (azure-ai-ml sends the current key as `keyValue`, and expects a rotation).
pub(crate) fn rotated(current: &str, requested: Option<String>) -> String {
    requested.filter(|v| v != current).unwrap_or_else(new_key)
}

/// Base URL of the data-plane listener of `key` (an endpoint's lower-case ARM id), started on
/// first use.
pub(crate) fn listener(ctx: &Ctx, w: &mut MlWorld, key: &str) -> Result<String, Resp> {
    if let Some(url) = w.listeners.get(key) {
        return Ok(url.clone());
    }
    let addr = ctx
        .inner
        .spawn(Listener::Ml(key.to_string()), true)
        .map_err(|e| arm_error(500, "InternalServerError", &e.to_string()))?;
    let url = format!("https://127.0.0.1:{}/", addr.port());
    w.listeners.insert(key.to_string(), url.clone());
    Ok(url)
}

/// Copies `tags` from a request (when it has them) into `body`.
pub(crate) fn copy_tags(request: &Value, body: &mut Value) {
    if let Some(tags) = request.get("tags").filter(|t| t.is_object()) {
        body["tags"] = tags.clone();
    }
}
