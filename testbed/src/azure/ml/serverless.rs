//! Serverless endpoints (`workspaces/{w}/serverlessEndpoints`, "models as a service"):
//! PUT/PATCH/GET/list/DELETE as long-running operations, `modelSettings.modelId` checked
//! against the registry catalogue (offered as a serverless API; a partner model needs the
//! workspace's marketplace subscription to it first), created in a project rather than a hub,
//! `authMode` Key / AAD / KeyAndAAD, keys, and the inference endpoint URI of its own listener.
use serde_json::{Map, Value, json};

use super::errors::user_error;
use super::operations::{self, Poll};
use super::registry::{self, parse_model_ref};
use super::resource::{self, copy_tags, system_data};
use super::routes::{Ctx, child_key};
use super::state::{MlWorld, Scope, ServerlessEndpoint, Target};
use crate::azure::server::{Resp, empty_response, json_response};

pub(crate) const TYPE: &str = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints";

/// The catalogue checks of a serverless `modelId`; Ok = the marketplace subscription id it
/// runs under, if the model needs one.
fn check_model(w: &MlWorld, scope: &Scope, model_id: &str) -> Result<Option<String>, Resp> {
    let model = parse_model_ref(model_id)
        .and_then(|r| registry::resolve(&w.catalog, &r))
        .ok_or_else(|| {
            user_error(
                "NotFound",
                &format!("Model '{model_id}' was not found in the registry catalogue. Use a model id of the form azureml://registries/<registry>/models/<name>."),
            )
        })?;
    if !model.serverless {
        return Err(user_error(
            "BadArgument",
            &format!(
                "Model '{}' is not offered as a serverless API. Deploy it to managed compute (onlineEndpoints) instead.",
                model.model_id()
            ),
        ));
    }
    if model.marketplace.is_none() {
        return Ok(None);
    }
    let ws = scope.workspace_key();
    let subscribed = w.subscriptions.values().find(|s| {
        s.scope.workspace_key() == ws
            && parse_model_ref(s.model_id()).is_some_and(|r| {
                r.registry.eq_ignore_ascii_case(&model.registry)
                    && r.name.eq_ignore_ascii_case(&model.name)
            })
            && s.body["properties"]["provisioningState"] == "Succeeded"
            && s.body["properties"]["marketplaceSubscriptionStatus"] == "Subscribed"
    });
    match subscribed {
        Some(s) => Ok(s.body["id"].as_str().map(str::to_string)),
        None => Err(user_error(
            "MarketplaceSubscriptionRequired",
            &format!(
                "Model '{}' is offered through the Azure Marketplace: workspace '{}' needs a marketplace subscription to it before a serverless endpoint can be created. Create workspaces/{}/marketplaceSubscriptions/<name> with properties.modelId '{}', wait for it to succeed, then retry.",
                model.model_id(),
                scope.workspace,
                scope.workspace,
                model.model_id()
            ),
        )),
    }
}

pub(crate) fn put(ctx: &Ctx, scope: &Scope, name: &str, patch: bool) -> Resp {
    let request = match resource::body(ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let key = child_key(scope, "serverlessEndpoints", name);
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    let existing = w.serverless.get(&key).map(|s| s.body.clone());
    if patch {
        let Some(mut body) = existing else {
            return resource::missing::<ServerlessEndpoint>(scope, name);
        };
        if let Some(sku) = request["sku"].as_object() {
            for (k, v) in sku {
                body["sku"][k] = v.clone();
            }
        }
        copy_tags(&request, &mut body);
        if let Some(identity) = request.get("identity").filter(|i| i.is_object()) {
            body["identity"] = resource::identity(Some(identity), None, &ctx.inner.tenant_id);
        }
        body["properties"]["provisioningState"] = json!("Updating");
        body["systemData"] = system_data(Some(&body), &ctx.principal);
        let s = w.serverless.get_mut(&key).expect("serverless endpoint");
        s.body = body.clone();
        let location = s.scope.location.clone();
        return operations::begin(
            ctx,
            &mut w,
            &scope.subscription,
            &location,
            Target::Serverless { key, delete: false },
            Poll::Location,
            json_response(202, body),
        );
    }
    if w.workspaces
        .get(&scope.workspace_key())
        .is_some_and(|ws| ws.kind == "Hub")
    {
        return user_error(
            "BadArgument",
            &format!(
                "Serverless endpoints are created in a project workspace, not in the hub '{}'. Use one of the hub's projects.",
                scope.workspace
            ),
        );
    }
    let location = match resource::location(&request) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let props = &request["properties"];
    let auth = props["authMode"].as_str().unwrap_or("Key");
    let Some(auth) = resource::canonical(auth, &["Key", "AAD", "KeyAndAAD"]) else {
        return user_error(
            "BadArgument",
            &format!(
                "Invalid authMode '{auth}': a serverless endpoint's authMode is Key, AAD or KeyAndAAD."
            ),
        );
    };
    let Some(model_id) = props["modelSettings"]["modelId"]
        .as_str()
        .filter(|m| !m.is_empty())
    else {
        return user_error(
            "BadArgument",
            "properties.modelSettings.modelId is required: the model id the endpoint serves, e.g. azureml://registries/azureml-mistral/models/Mistral-Large-2411.",
        );
    };
    if let Some(old) = &existing
        && old["properties"]["modelSettings"]["modelId"]
            .as_str()
            .is_some_and(|m| !m.eq_ignore_ascii_case(model_id))
    {
        return user_error(
            "BadArgument",
            &format!(
                "The model of serverless endpoint '{name}' cannot be changed: it serves {}. Create another serverless endpoint for {model_id}.",
                old["properties"]["modelSettings"]["modelId"]
            ),
        );
    }
    let subscription_id = match check_model(&w, scope, model_id) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let base_url = match resource::listener(ctx, &mut w, &key) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut p: Map<String, Value> = props.as_object().cloned().unwrap_or_default();
    for ro in [
        "provisioningState",
        "endpointState",
        "inferenceEndpoint",
        "marketplaceSubscriptionId",
    ] {
        p.remove(ro);
    }
    p.insert("authMode".into(), json!(auth));
    p.insert(
        "inferenceEndpoint".into(),
        json!({"uri": base_url, "headers": {}}),
    );
    let state = if existing.is_some() {
        "Updating"
    } else {
        "Creating"
    };
    p.insert("provisioningState".into(), json!(state));
    p.insert(
        "endpointState".into(),
        json!(if existing.is_some() {
            "Online"
        } else {
            "Creating"
        }),
    );
    if let Some(sid) = subscription_id {
        p.insert("marketplaceSubscriptionId".into(), json!(sid));
    }
    let mut body = json!({
        "id": format!("{}/serverlessEndpoints/{name}", scope.workspace_id()),
        "name": name,
        "type": TYPE,
        "location": location,
        "tags": {},
        "sku": request.get("sku").filter(|s| s.is_object()).cloned().unwrap_or(json!({"name": "Consumption"})),
        "properties": Value::Object(p),
        "systemData": system_data(existing.as_ref(), &ctx.principal),
    });
    copy_tags(&request, &mut body);
    if let Some(identity) = request.get("identity").filter(|i| i.is_object()) {
        body["identity"] = resource::identity(Some(identity), None, &ctx.inner.tenant_id);
    }
    if let Some(kind) = request.get("kind").filter(|k| k.is_string()) {
        body["kind"] = kind.clone();
    }
    match w.serverless.get_mut(&key) {
        Some(s) => s.body = body.clone(),
        None => {
            w.serverless.insert(
                key.clone(),
                ServerlessEndpoint {
                    scope: Scope {
                        location: location.clone(),
                        ..scope.clone()
                    },
                    name: name.to_string(),
                    body: body.clone(),
                    primary_key: resource::new_key(),
                    secondary_key: resource::new_key(),
                },
            );
        }
    }
    let status = if existing.is_some() { 200 } else { 201 };
    operations::begin(
        ctx,
        &mut w,
        &scope.subscription,
        &location,
        Target::Serverless { key, delete: false },
        Poll::AsyncOperation,
        json_response(status, body),
    )
}

pub(crate) fn delete(ctx: &Ctx, scope: &Scope, name: &str) -> Resp {
    let key = child_key(scope, "serverlessEndpoints", name);
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    let Some(s) = w.serverless.get_mut(&key) else {
        return empty_response(204);
    };
    s.body["properties"]["provisioningState"] = json!("Deleting");
    s.body["properties"]["endpointState"] = json!("Deleting");
    let location = s.scope.location.clone();
    operations::begin(
        ctx,
        &mut w,
        &scope.subscription,
        &location,
        Target::Serverless { key, delete: true },
        Poll::Location,
        empty_response(202),
    )
}

fn with_keys(
    ctx: &Ctx,
    scope: &Scope,
    name: &str,
    f: impl FnOnce(&mut ServerlessEndpoint),
) -> Resp {
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    let Some(s) = w
        .serverless
        .get_mut(&child_key(scope, "serverlessEndpoints", name))
    else {
        return resource::missing::<ServerlessEndpoint>(scope, name);
    };
    if s.body["properties"]["authMode"] == "AAD" {
        return user_error(
            "BadArgument",
            &format!("Serverless endpoint '{name}' uses authMode AAD and has no keys."),
        );
    }
    f(s);
    json_response(
        200,
        json!({"primaryKey": s.primary_key, "secondaryKey": s.secondary_key}),
    )
}

pub(crate) fn list_keys(ctx: &Ctx, scope: &Scope, name: &str) -> Resp {
    with_keys(ctx, scope, name, |_| {})
}

/// `regenerateKeys`: answered at once with the new keys.
pub(crate) fn regenerate_keys(ctx: &Ctx, scope: &Scope, name: &str) -> Resp {
    let (primary, value) = match resource::key_request(ctx) {
        Ok(r) => r,
        Err(r) => return r,
    };
    with_keys(ctx, scope, name, |s| {
        let slot = if primary {
            &mut s.primary_key
        } else {
            &mut s.secondary_key
        };
        *slot = resource::rotated(slot, value);
    })
}
