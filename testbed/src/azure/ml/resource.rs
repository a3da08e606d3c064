//! ARM plumbing the ML handlers share: reading a request body (JSON object, validated against
//! the spec when its api-version has one), the `location` a tracked resource needs, rendering
//! `systemData` and a system-assigned identity, keys, and the per-endpoint data-plane listener
//! (kept for the endpoint's ARM id across delete and re-create, like Azure's DNS name).
use chrono::Utc;
use serde_json::{Value, json};

use super::errors::{arm_error, invalid_content};
use super::routes::Ctx;
use super::state::MlWorld;
use crate::azure::server::{Listener, Resp};
use crate::azure::world::timestamp;
use crate::azure::{Surface, random_secret};

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
