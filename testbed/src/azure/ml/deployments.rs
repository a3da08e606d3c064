//! Managed online deployments (`onlineEndpoints/{e}/deployments`): PUT/PATCH/GET/list/DELETE
//! as long-running operations that keep the endpoint busy. A write is checked as Azure checks
//! it: the model asset must be in the registry catalogue and offered on managed compute, the
//! instance type must be a known VM size the model allows, `instanceType` cannot change in
//! place (create-only in the spec), and the VM family's vCPU quota must hold the deployment
//! (`sku.capacity` instances plus Azure's 20 % upgrade reserve). A deployment that takes
//! traffic cannot be deleted.
use parking_lot::MutexGuard;
use serde_json::{Map, Value, json};

use super::errors::{busy, user_error};
use super::operations::{self, Poll};
use super::quota;
use super::registry::{self, parse_model_ref};
use super::resource::{self, copy_tags, system_data};
use super::routes::{Ctx, child_key};
use super::state::{Deployment, MlWorld, Scope, Target};
use crate::azure::server::{Resp, empty_response, json_response};

pub(crate) const TYPE: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments";

/// Azure's default instance type (the spec's default for `instanceType`).
const DEFAULT_INSTANCE_TYPE: &str = "Standard_F4s_v2";

fn missing(scope: &Scope, endpoint: &str, name: Option<&str>) -> Resp {
    let mut path = format!("onlineEndpoints/{endpoint}");
    if let Some(n) = name {
        path.push_str(&format!("/deployments/{n}"));
    }
    resource::missing_at(scope, &path)
}

/// The ML world, settled and locked, and the key of the endpoint a deployment request names;
/// Err = ARM's 404 when there is no such endpoint.
fn locked<'a>(
    ctx: &'a Ctx,
    scope: &Scope,
    endpoint: &str,
) -> Result<(MutexGuard<'a, MlWorld>, String), Resp> {
    let mut w = ctx.inner.ml.world.lock();
    w.settle();
    let key = child_key(scope, "onlineEndpoints", endpoint);
    if !w.endpoints.contains_key(&key) {
        return Err(missing(scope, endpoint, None));
    }
    Ok((w, key))
}

pub(crate) fn list(ctx: &Ctx, scope: &Scope, endpoint: &str) -> Resp {
    let (w, key) = match locked(ctx, scope, endpoint) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let value: Vec<Value> = w.endpoints[&key]
        .deployments
        .values()
        .map(|d| d.body.clone())
        .collect();
    json_response(200, json!({"value": value}))
}

pub(crate) fn get(ctx: &Ctx, scope: &Scope, endpoint: &str, name: &str) -> Resp {
    let (w, key) = match locked(ctx, scope, endpoint) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match w.endpoints[&key]
        .deployments
        .get(&name.to_ascii_lowercase())
    {
        Some(d) => json_response(200, d.body.clone()),
        None => missing(scope, endpoint, Some(name)),
    }
}

/// `deployments/{d}/skus`: the instance counts the deployment can scale to.
pub(crate) fn skus(ctx: &Ctx, scope: &Scope, endpoint: &str, name: &str) -> Resp {
    let (w, key) = match locked(ctx, scope, endpoint) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !w.endpoints[&key]
        .deployments
        .contains_key(&name.to_ascii_lowercase())
    {
        return missing(scope, endpoint, Some(name));
    }
    json_response(
        200,
        json!({"value": [{
            "resourceType": TYPE,
            "sku": {"name": "Default", "tier": "Standard"},
            "capacity": {"minimum": 1, "maximum": 20, "default": 1, "scaleType": "Manual"},
        }]}),
    )
}

/// The request after PATCH semantics: the stored deployment with `sku` and `tags` merged in.
fn merged_patch(existing: &Value, request: &Value) -> Value {
    let mut merged = existing.clone();
    if let Some(sku) = request["sku"].as_object() {
        for (k, v) in sku {
            merged["sku"][k] = v.clone();
        }
    }
    copy_tags(request, &mut merged);
    merged
}

/// What a valid write asks for.
struct Plan {
    instance_type: String,
    instances: u32,
}

/// Azure's checks of a deployment write (catalogue, instance type, in-place change, quota).
fn check(
    w: &MlWorld,
    scope: &Scope,
    endpoint_key: &str,
    name: &str,
    request: &Value,
    existing: Option<&Deployment>,
) -> Result<Plan, Resp> {
    let props = &request["properties"];
    let compute = props["endpointComputeType"].as_str().unwrap_or("Managed");
    if !compute.eq_ignore_ascii_case("Managed") {
        return Err(user_error(
            "BadArgument",
            &format!(
                "endpointComputeType '{compute}' is not supported on this endpoint: managed online endpoints take deployments with endpointComputeType Managed."
            ),
        ));
    }
    let instance_type = props["instanceType"]
        .as_str()
        .unwrap_or(DEFAULT_INSTANCE_TYPE)
        .to_string();
    let instances = match &request["sku"]["capacity"] {
        Value::Null => 1,
        v => match v.as_u64() {
            Some(c) if c >= 1 => c as u32,
            _ => {
                return Err(user_error(
                    "BadArgument",
                    &format!(
                        "Invalid instance count {v} (sku.capacity) for deployment '{name}': it must be an integer of at least 1."
                    ),
                ));
            }
        },
    };
    let Some(model_id) = props["model"].as_str().filter(|m| !m.is_empty()) else {
        return Err(user_error(
            "BadArgument",
            &format!(
                "Deployment '{name}' has no model: set properties.model to a registry model asset id such as azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1."
            ),
        ));
    };
    let model = parse_model_ref(model_id)
        .and_then(|r| registry::resolve(&w.catalog, &r))
        .ok_or_else(|| {
            user_error(
                "NotFound",
                &format!("Model '{model_id}' was not found: no such model version in the registry catalogue. Use an asset id of the form azureml://registries/<registry>/models/<name>/versions/<version> naming a published model."),
            )
        })?;
    if model.managed_compute_skus.is_empty() {
        return Err(user_error(
            "BadArgument",
            &format!(
                "Model '{}' ({}) is not offered for deployment to managed compute (managed online endpoints). Deploy it as a serverless API (serverlessEndpoints) instead.",
                model.name,
                model.asset_id()
            ),
        ));
    }
    let Some(size) = w.vm_size(&instance_type) else {
        return Err(user_error(
            "BadArgument",
            &format!(
                "Instance type '{instance_type}' is not a VM size managed online endpoints support in region '{}'. List the sizes with locations/{}/vmSizes.",
                scope.location, scope.location
            ),
        ));
    };
    if !model.allows_instance_type(&size.name) {
        return Err(user_error(
            "BadArgument",
            &format!(
                "Instance type '{}' is not supported for model '{}' (version {}): the model needs one of {}. Choose one of them in properties.instanceType.",
                size.name,
                model.name,
                model.version,
                model.managed_compute_skus.join(", ")
            ),
        ));
    }
    if let Some(old) = existing
        && !old.instance_type().eq_ignore_ascii_case(&size.name)
    {
        return Err(user_error(
            "BadArgument",
            &format!(
                "The instance type of deployment '{name}' cannot be updated (instanceType is set at creation): it runs on {}, the request asks for {}. Create a new deployment with the new instance type and move the endpoint's traffic to it.",
                old.instance_type(),
                size.name
            ),
        ));
    }
    let (sub, loc) = (&scope.subscription, &scope.location);
    let needed = quota::reserved_vcpus(size, instances);
    let others = w.family_usage(
        sub,
        loc,
        &size.family,
        Some((endpoint_key, &name.to_ascii_lowercase())),
    );
    let limit = w.family_limit(sub, loc, &size.family);
    if others + needed > limit {
        let current = w.family_usage(sub, loc, &size.family, None);
        let held = existing
            .map(|d| quota::reserved_vcpus(size, d.instance_count()))
            .unwrap_or(0);
        return Err(quota::out_of_quota(
            &size.name,
            sub,
            current,
            limit,
            needed.saturating_sub(held),
        ));
    }
    Ok(Plan {
        instance_type: size.name.clone(),
        instances,
    })
}

fn defaults(p: &mut Map<String, Value>) {
    let probe = json!({"failureThreshold": 30, "successThreshold": 1, "timeout": "PT2S", "period": "PT10S", "initialDelay": "PT10S"});
    let fill = |p: &mut Map<String, Value>, field: &str, default: Value| {
        let mut v = default;
        if let Some(given) = p.get(field).and_then(Value::as_object) {
            for (k, x) in given {
                if !x.is_null() {
                    v[k] = x.clone();
                }
            }
        }
        p.insert(field.into(), v);
    };
    fill(p, "livenessProbe", probe.clone());
    fill(p, "readinessProbe", probe);
    fill(
        p,
        "requestSettings",
        json!({"maxConcurrentRequestsPerInstance": 1, "requestTimeout": "PT5S", "maxQueueWait": "PT0.5S"}),
    );
    fill(p, "scaleSettings", json!({"scaleType": "Default"}));
    p.entry("appInsightsEnabled").or_insert(json!(false));
    p.entry("egressPublicNetworkAccess")
        .or_insert(json!("Enabled"));
}

pub(crate) fn put(ctx: &Ctx, scope: &Scope, endpoint: &str, name: &str, patch: bool) -> Resp {
    let request = match resource::body(ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let lname = name.to_ascii_lowercase();
    let (mut w, ekey) = match locked(ctx, scope, endpoint) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let e = &w.endpoints[&ekey];
    let endpoint_scope = e.scope.clone();
    let existing_body = e.deployments.get(&lname).map(|d| d.body.clone());
    if let Some(running) = w.note_write(&ekey) {
        return busy(endpoint, &running.target.describe());
    }
    let request = if patch {
        match &existing_body {
            Some(old) => merged_patch(old, &request),
            None => return missing(scope, endpoint, Some(name)),
        }
    } else {
        request
    };
    let location = match resource::location(&request) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let existing = w.endpoints[&ekey].deployments.get(&lname);
    let plan = match check(&w, &endpoint_scope, &ekey, name, &request, existing) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let state = match existing {
        None => "Creating",
        Some(old)
            if old.instance_count() != plan.instances
                && old.body["properties"]["model"] == request["properties"]["model"] =>
        {
            "Scaling"
        }
        Some(_) => "Updating",
    };
    let mut p: Map<String, Value> = request["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    p.remove("provisioningState");
    p.insert("endpointComputeType".into(), json!("Managed"));
    p.insert("instanceType".into(), json!(plan.instance_type));
    p.insert("provisioningState".into(), json!(state));
    defaults(&mut p);
    let mut sku = request["sku"].as_object().cloned().unwrap_or_default();
    sku.entry("name").or_insert(json!("Default"));
    sku.insert("capacity".into(), json!(plan.instances));
    let mut body = json!({
        "id": format!("{}/onlineEndpoints/{endpoint}/deployments/{name}", scope.workspace_id()),
        "name": name,
        "type": TYPE,
        "location": location,
        "kind": request["kind"].as_str().unwrap_or("Managed"),
        "tags": {},
        "sku": Value::Object(sku),
        "properties": Value::Object(p),
        "systemData": system_data(existing_body.as_ref(), &ctx.principal),
    });
    copy_tags(&request, &mut body);
    if let Some(identity) = request.get("identity").filter(|i| i.is_object()) {
        let old = existing_body.as_ref().map(|b| &b["identity"]);
        body["identity"] = resource::identity(Some(identity), old, &ctx.inner.tenant_id);
    }
    w.endpoints
        .get_mut(&ekey)
        .expect("endpoint")
        .deployments
        .insert(lname.clone(), Deployment { body: body.clone() });
    let target = Target::Deployment {
        endpoint: ekey,
        name: lname,
        delete: false,
    };
    let (status, poll) = match (patch, existing_body.is_some()) {
        (true, _) => (202, Poll::Location),
        (false, true) => (200, Poll::AsyncOperation),
        (false, false) => (201, Poll::AsyncOperation),
    };
    let resp = json_response(status, body);
    operations::begin(
        ctx,
        &mut w,
        &scope.subscription,
        &endpoint_scope.location,
        target,
        poll,
        resp,
    )
}

pub(crate) fn delete(ctx: &Ctx, scope: &Scope, endpoint: &str, name: &str) -> Resp {
    let lname = name.to_ascii_lowercase();
    let (mut w, ekey) = match locked(ctx, scope, endpoint) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let e = &w.endpoints[&ekey];
    if !e.deployments.contains_key(&lname) {
        return empty_response(204);
    }
    let location = e.scope.location.clone();
    let routed: Vec<(String, i64)> = e
        .traffic()
        .into_iter()
        .chain(mirror(e.body.get("properties")))
        .filter(|(d, pct)| d.eq_ignore_ascii_case(name) && *pct > 0)
        .collect();
    if let Some(running) = w.note_write(&ekey) {
        return busy(endpoint, &running.target.describe());
    }
    if let Some((_, pct)) = routed.first() {
        return user_error(
            "BadArgument",
            &format!(
                "Deployment '{name}' cannot be deleted while endpoint '{endpoint}' routes {pct}% of its traffic to it. Set its traffic to 0 on the endpoint first, then delete it."
            ),
        );
    }
    let d = w
        .endpoints
        .get_mut(&ekey)
        .and_then(|e| e.deployments.get_mut(&lname))
        .expect("deployment");
    d.body["properties"]["provisioningState"] = json!("Deleting");
    let target = Target::Deployment {
        endpoint: ekey,
        name: lname,
        delete: true,
    };
    operations::begin(
        ctx,
        &mut w,
        &scope.subscription,
        &location,
        target,
        Poll::Location,
        empty_response(202),
    )
}

fn mirror(props: Option<&Value>) -> Vec<(String, i64)> {
    props
        .and_then(|p| p["mirrorTraffic"].as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}
