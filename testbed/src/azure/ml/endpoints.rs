//! Managed online endpoints (`workspaces/{w}/onlineEndpoints`): PUT/PATCH/GET/list/DELETE as
//! long-running operations, one operation at a time per endpoint (409 otherwise), `authMode`
//! Key / AMLToken / AADToken, the scoring URI of the endpoint's own listener, `traffic` and
//! `mirrorTraffic` checked against the endpoint's deployments (each named deployment must
//! exist and be provisioned; live traffic sums to 100, or 0), and the key and token actions.
use serde_json::{Map, Value, json};

use super::errors::{busy, user_error};
use super::operations::{self, Poll};
use super::resource::{self, copy_tags, system_data};
use super::routes::{Ctx, child_key};
use super::state::{OnlineEndpoint, Scope, Target};
use crate::azure::entra;
use crate::azure::server::{Resp, empty_response, json_response};

pub(crate) const TYPE: &str = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints";

/// Checks `traffic` (live) or `mirrorTraffic` against the endpoint's deployments.
fn check_traffic(
    endpoint: Option<&OnlineEndpoint>,
    name: &str,
    traffic: &Value,
    mirror: bool,
) -> Result<(), Resp> {
    let Some(map) = traffic.as_object() else {
        return Ok(());
    };
    let field = if mirror { "mirrorTraffic" } else { "traffic" };
    let max = if mirror { 50 } else { 100 };
    let mut sum = 0;
    for (deployment, v) in map {
        let Some(pct) = v.as_i64().filter(|p| (0..=max).contains(p)) else {
            return Err(user_error(
                "BadArgument",
                &format!(
                    "Invalid {field} value {v} for deployment '{deployment}' of endpoint '{name}': it must be an integer from 0 to {max}."
                ),
            ));
        };
        sum += pct;
        let d = endpoint.and_then(|e| e.deployments.get(&deployment.to_ascii_lowercase()));
        match d {
            None => {
                return Err(user_error(
                    "BadArgument",
                    &format!(
                        "Invalid {field}: endpoint '{name}' has no deployment '{deployment}'. Create the deployment first, then route traffic to it."
                    ),
                ));
            }
            Some(d) if pct > 0 && !d.serves() => {
                return Err(user_error(
                    "BadArgument",
                    &format!(
                        "Invalid {field}: deployment '{deployment}' of endpoint '{name}' is in state '{}' and cannot take traffic.",
                        d.state()
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    if !mirror && sum != 0 && sum != 100 {
        return Err(user_error(
            "BadArgument",
            &format!(
                "Invalid traffic: the traffic of endpoint '{name}' sums to {sum}; the values must sum to 100 (or to 0 to route no traffic)."
            ),
        ));
    }
    Ok(())
}

pub(crate) fn put(ctx: &Ctx, scope: &Scope, name: &str) -> Resp {
    let request = match resource::body(ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let location = match resource::location(&request) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let props = &request["properties"];
    let Some(auth_mode) = props["authMode"].as_str() else {
        return user_error(
            "BadArgument",
            "properties.authMode is required: set it to Key, AMLToken or AADToken.",
        );
    };
    let Some(auth_mode) = resource::canonical(auth_mode, &["Key", "AMLToken", "AADToken"]) else {
        return user_error(
            "BadArgument",
            &format!(
                "Invalid authMode '{auth_mode}': the online endpoint's authMode must be Key, AMLToken or AADToken."
            ),
        );
    };
    let key = child_key(scope, "onlineEndpoints", name);
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    if let Some(running) = w.note_write(&key) {
        return busy(name, &running.target.describe());
    }
    let existing = w.endpoints.get(&key);
    for (field, mirror) in [("traffic", false), ("mirrorTraffic", true)] {
        if let Err(r) = check_traffic(existing, name, &props[field], mirror) {
            return r;
        }
    }
    let old_body = existing.map(|e| e.body.clone());
    let base_url = match resource::listener(ctx, &mut w, &key) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut p: Map<String, Value> = props.as_object().cloned().unwrap_or_default();
    let initial_keys = p.remove("keys");
    for ro in ["provisioningState", "scoringUri", "swaggerUri"] {
        p.remove(ro);
    }
    p.insert("authMode".into(), json!(auth_mode));
    for (field, default) in [
        ("traffic", json!({})),
        ("mirrorTraffic", json!({})),
        ("publicNetworkAccess", json!("Enabled")),
    ] {
        if p.get(field).is_none_or(Value::is_null) {
            p.insert(field.into(), default);
        }
    }
    p.insert("scoringUri".into(), json!(format!("{base_url}score")));
    p.insert(
        "swaggerUri".into(),
        json!(format!("{base_url}swagger.json")),
    );
    let state = if old_body.is_some() {
        "Updating"
    } else {
        "Creating"
    };
    p.insert("provisioningState".into(), json!(state));
    let mut body = json!({
        "id": format!("{}/onlineEndpoints/{name}", scope.workspace_id()),
        "name": name,
        "type": TYPE,
        "location": location,
        "tags": {},
        "identity": resource::identity(request.get("identity"), old_body.as_ref().map(|b| &b["identity"]), &ctx.inner.tenant_id),
        "properties": Value::Object(p),
        "systemData": system_data(old_body.as_ref(), &ctx.principal),
    });
    // A PUT replaces the resource: tags, kind and sku are what it sends.
    copy_tags(&request, &mut body);
    for field in ["kind", "sku"] {
        if let Some(v) = request.get(field) {
            body[field] = v.clone();
        }
    }
    match w.endpoints.get_mut(&key) {
        Some(e) => e.body = body.clone(),
        None => {
            let given = |k: &str| {
                initial_keys
                    .as_ref()
                    .and_then(|v| v[k].as_str())
                    .map(str::to_string)
            };
            w.endpoints.insert(
                key.clone(),
                OnlineEndpoint {
                    scope: Scope {
                        location: location.clone(),
                        ..scope.clone()
                    },
                    name: name.to_string(),
                    id: body["id"].as_str().unwrap_or_default().to_string(),
                    body: body.clone(),
                    primary_key: given("primaryKey").unwrap_or_else(resource::new_key),
                    secondary_key: given("secondaryKey").unwrap_or_else(resource::new_key),
                    deployments: Default::default(),
                    rr: Default::default(),
                },
            );
        }
    }
    let status = if old_body.is_some() { 200 } else { 201 };
    operations::begin(
        ctx,
        &mut w,
        &scope.subscription,
        &location,
        Target::Endpoint { key, delete: false },
        Poll::AsyncOperation,
        json_response(status, body),
    )
}

/// PATCH: tags and identity (and, for the older api-versions' partial bodies, traffic).
pub(crate) fn patch(ctx: &Ctx, scope: &Scope, name: &str) -> Resp {
    let request = match resource::body(ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let key = child_key(scope, "onlineEndpoints", name);
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    let Some(existing) = w.endpoints.get(&key) else {
        return resource::missing::<OnlineEndpoint>(scope, name);
    };
    let location = existing.scope.location.clone();
    if let Some(running) = w.note_write(&key) {
        return busy(name, &running.target.describe());
    }
    let existing = &w.endpoints[&key];
    for (field, mirror) in [("traffic", false), ("mirrorTraffic", true)] {
        if let Err(r) = check_traffic(Some(existing), name, &request["properties"][field], mirror) {
            return r;
        }
    }
    let e = w.endpoints.get_mut(&key).expect("endpoint");
    copy_tags(&request, &mut e.body);
    if let Some(identity) = request.get("identity").filter(|i| i.is_object()) {
        e.body["identity"] = resource::identity(Some(identity), None, &ctx.inner.tenant_id);
    }
    for field in ["traffic", "mirrorTraffic"] {
        if let Some(t) = request["properties"].get(field).filter(|t| t.is_object()) {
            e.body["properties"][field] = t.clone();
        }
    }
    e.body["properties"]["provisioningState"] = json!("Updating");
    e.body["systemData"] = system_data(Some(&e.body), &ctx.principal);
    let body = e.body.clone();
    operations::begin(
        ctx,
        &mut w,
        &scope.subscription,
        &location,
        Target::Endpoint { key, delete: false },
        Poll::Location,
        json_response(202, body),
    )
}

/// DELETE: the endpoint and all its deployments.
pub(crate) fn delete(ctx: &Ctx, scope: &Scope, name: &str) -> Resp {
    let key = child_key(scope, "onlineEndpoints", name);
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    let Some(location) = w.endpoints.get(&key).map(|e| e.scope.location.clone()) else {
        return empty_response(204);
    };
    if let Some(running) = w.note_write(&key) {
        return busy(name, &running.target.describe());
    }
    let e = w.endpoints.get_mut(&key).expect("endpoint");
    e.body["properties"]["provisioningState"] = json!("Deleting");
    for d in e.deployments.values_mut() {
        d.body["properties"]["provisioningState"] = json!("Deleting");
    }
    operations::begin(
        ctx,
        &mut w,
        &scope.subscription,
        &location,
        Target::Endpoint { key, delete: true },
        Poll::Location,
        empty_response(202),
    )
}

/// Runs `f` on an existing endpoint whose authMode is `mode`; Err = 404 or Azure's 400.
fn with_mode<T>(
    ctx: &Ctx,
    scope: &Scope,
    name: &str,
    mode: &str,
    f: impl FnOnce(&mut OnlineEndpoint) -> T,
) -> Result<T, Resp> {
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    let Some(e) = w
        .endpoints
        .get_mut(&child_key(scope, "onlineEndpoints", name))
    else {
        return Err(resource::missing::<OnlineEndpoint>(scope, name));
    };
    if e.auth_mode() != mode {
        return Err(user_error(
            "BadArgument",
            &format!(
                "Endpoint '{name}' uses authMode {}; this action needs authMode {mode}.",
                e.auth_mode()
            ),
        ));
    }
    Ok(f(e))
}

fn keys_json(e: &OnlineEndpoint) -> Value {
    json!({"primaryKey": e.primary_key, "secondaryKey": e.secondary_key})
}

pub(crate) fn list_keys(ctx: &Ctx, scope: &Scope, name: &str) -> Resp {
    match with_mode(ctx, scope, name, "Key", |e| keys_json(e)) {
        Ok(keys) => json_response(200, keys),
        Err(r) => r,
    }
}

/// `regenerateKeys` (`{"keyType": "Primary"|"Secondary", "keyValue"?}`), an operation on the
/// endpoint: the new key is in effect at once.
pub(crate) fn regenerate_keys(ctx: &Ctx, scope: &Scope, name: &str) -> Resp {
    let (primary, value) = match resource::key_request(ctx) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let key = child_key(scope, "onlineEndpoints", name);
    {
        let mut w = ctx.inner.ml.world.lock();
        w.settle();
        if w.endpoints.contains_key(&key)
            && let Some(running) = w.note_write(&key)
        {
            return busy(name, &running.target.describe());
        }
    }
    let location = match with_mode(ctx, scope, name, "Key", |e| {
        let slot = if primary {
            &mut e.primary_key
        } else {
            &mut e.secondary_key
        };
        *slot = resource::rotated(slot, value);
        e.scope.location.clone()
    }) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut w = ctx.inner.ml.world.lock();
    operations::begin(
        ctx,
        &mut w,
        &scope.subscription,
        &location,
        Target::EndpointKeys { endpoint: key },
        Poll::Location,
        empty_response(202),
    )
}

/// Lifetime of AML tokens (Azure's are valid for an hour and refreshable after half of it).
const AML_TOKEN_SECS: i64 = 3600;

/// `token`: an AML token for an AMLToken endpoint (audience = the endpoint's ARM id).
pub(crate) fn token(ctx: &Ctx, scope: &Scope, name: &str) -> Resp {
    let id = match with_mode(ctx, scope, name, "AMLToken", |e| e.id.clone()) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let now = entra::now();
    let claims = json!({
        "aud": aml_token_audience(&id), "iss": "azureml", "iat": now, "nbf": now,
        "exp": now + AML_TOKEN_SECS, "appid": ctx.principal, "jti": uuid::Uuid::new_v4().to_string(),
    });
    json_response(
        200,
        json!({
            "accessToken": ctx.inner.issue_access_token(&claims),
            "tokenType": "Bearer",
            "expiryTimeUtc": now + AML_TOKEN_SECS,
            "refreshAfterTimeUtc": now + AML_TOKEN_SECS / 2,
        }),
    )
}

/// The audience of the AML tokens of an endpoint.
pub(crate) fn aml_token_audience(endpoint_id: &str) -> String {
    format!("azureml://{}", endpoint_id.to_ascii_lowercase())
}
