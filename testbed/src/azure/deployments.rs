//! ARM deployments of an account (`accounts/{a}/deployments/{d}`): GET, PUT and PATCH (quota
//! on every PUT, catalog and capacity rules, the capacity-or-model rule, a `raiPolicyName`
//! that must exist), DELETE, pause/resume and the deployment's SKUs; writes are long-running
//! operations and a second write while one is in flight on the account gets 409
//! RequestConflict.
use serde_json::{Value, json};

use super::arm::{
    Ctx, arm_error, conflict, deployment_not_found, lro_headers, render_for_version,
    start_operation,
};
use super::catalog;
use super::paging;
use super::rai;
use super::server::{Resp, empty_response, json_response};
use super::world::{self, Target, World, render_deployment, resolve_model};

pub(crate) fn one(ctx: &Ctx, key: &str, name: &str) -> Resp {
    match ctx.req.method.as_str() {
        "GET" => {
            let mut w = ctx.inner.world.lock();
            w.settle();
            match w.accounts[key].deployments.get(&name.to_ascii_lowercase()) {
                Some(d) => json_response(200, render_for_version(&ctx.api_version, d.body.clone())),
                None => deployment_not_found(&w.accounts[key].id, name),
            }
        }
        "PUT" => put(ctx, key, name, false),
        "PATCH" => put(ctx, key, name, true),
        "DELETE" => delete(ctx, key, name),
        _ => arm_error(
            405,
            "MethodNotAllowed",
            "The requested method is not allowed.",
        ),
    }
}

/// Counts a deployment write for the concurrency high-water mark; true when another write is
/// in flight on the account (the caller answers 409).
fn note_write(w: &mut World, key: &str) -> bool {
    let in_flight = w.in_flight(key);
    w.max_concurrent = w.max_concurrent.max(in_flight + 1);
    in_flight > 0
}

fn put(ctx: &Ctx, key: &str, name: &str, patch: bool) -> Resp {
    let request = match ctx.body(true) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let default_quota = ctx.inner.config.lock().default_quota;
    let mut w = ctx.inner.world.lock();
    w.settle();
    let lname = name.to_ascii_lowercase();
    let (acc_id, sub, loc, acc_state) = {
        let a = &w.accounts[key];
        (
            a.id.clone(),
            a.subscription.clone(),
            a.location.clone(),
            a.provisioning_state().to_string(),
        )
    };
    if note_write(&mut w, key) || acc_state != "Succeeded" {
        return conflict(&acc_id);
    }
    let existing = w.accounts[key]
        .deployments
        .get(&lname)
        .map(|d| d.body.clone());
    // PATCH: merge sku/tags into the existing deployment.
    let request = if patch {
        let Some(existing) = existing.clone() else {
            return deployment_not_found(&acc_id, name);
        };
        let mut merged =
            json!({"properties": existing["properties"].clone(), "sku": existing["sku"].clone()});
        if let Some(t) = existing.get("tags") {
            merged["tags"] = t.clone();
        }
        if let Some(sku) = request["sku"].as_object() {
            for (k, v) in sku {
                merged["sku"][k] = v.clone();
            }
        }
        if let Some(tags) = request.get("tags") {
            merged["tags"] = tags.clone();
        }
        merged
    } else {
        request
    };
    let model_req = &request["properties"]["model"];
    let Some(model_name) = model_req["name"].as_str().filter(|s| !s.is_empty()) else {
        return arm_error(
            400,
            "InvalidResourceProperties",
            "The deployment model is required: set properties.model.format, properties.model.name and optionally properties.model.version.",
        );
    };
    let format = model_req["format"].as_str().unwrap_or("OpenAI").to_string();
    let Some(sku_name) = request["sku"]["name"].as_str().map(str::to_string) else {
        return arm_error(
            400,
            "InvalidResourceProperties",
            "The deployment SKU is required: set sku.name and sku.capacity.",
        );
    };
    let requested_capacity = match &request["sku"]["capacity"] {
        Value::Null => 1,
        v => match v.as_i64() {
            Some(c) => c,
            None => {
                return arm_error(
                    400,
                    "InvalidResourceProperties",
                    &format!(
                        "The specified capacity '{v}' of account deployment is invalid. The capacity must be an integer."
                    ),
                );
            }
        },
    };
    let acc = &w.accounts[key];
    let Some(model) = resolve_model(acc, &request) else {
        let version = model_req["version"].as_str().unwrap_or("");
        return arm_error(
            400,
            "DeploymentModelNotSupported",
            &format!(
                "The model 'Format: {format}, Name: {model_name}, Version: {version}' of account deployment is not supported."
            ),
        );
    };
    if !model.skus.iter().any(|s| s.eq_ignore_ascii_case(&sku_name)) {
        return arm_error(
            400,
            "InvalidResourceProperties",
            &format!(
                "The specified SKU '{sku_name}' for model '{} {}' is not supported in this region '{}'.",
                model.name,
                model.version,
                world::normalize_location(&loc)
            ),
        );
    }
    if let Err(message) = model.rule(&sku_name).check(requested_capacity) {
        return arm_error(400, "InvalidCapacity", &message);
    }
    let capacity = requested_capacity as u32;
    if let Some(old) = &existing {
        let om = &old["properties"]["model"];
        let same_model = om["format"]
            .as_str()
            .unwrap_or("OpenAI")
            .eq_ignore_ascii_case(&format)
            && om["name"]
                .as_str()
                .unwrap_or("")
                .eq_ignore_ascii_case(model_name);
        if !same_model {
            return arm_error(
                400,
                "CannotChangeDeploymentModel",
                "The model of deployment cannot be changed.",
            );
        }
        let version_changed = !om["version"]
            .as_str()
            .unwrap_or("")
            .eq_ignore_ascii_case(&model.version);
        let capacity_changed = old["sku"]["capacity"].as_u64().unwrap_or(0) != capacity as u64;
        if version_changed && capacity_changed {
            return arm_error(
                400,
                "InvalidResourceProperties",
                &format!(
                    "Cannot change capacity and model at the same time for deployment '{name}'. Update the capacity and the model version in separate requests."
                ),
            );
        }
    }
    if let Some(policy) = request["properties"]["raiPolicyName"].as_str()
        && !rai::policy_exists(&w.accounts[key], policy)
    {
        return rai::policy_not_found(&acc_id, policy);
    }
    // Quota, checked on every PUT (a PUT that changes nothing included).
    let usage = catalog::usage_name(&model.format, &sku_name, &model.name);
    let limit = w.quota_limit(&sub, &loc, &usage, default_quota);
    let others = w.usage(&sub, &loc, &usage, Some((key, &lname)));
    if others + capacity > limit {
        let display = catalog::quota_display_name(&model.name, &sku_name);
        let current = w.usage(&sub, &loc, &usage, None);
        return arm_error(
            400,
            "InsufficientQuota",
            &format!(
                "This operation require {capacity} new capacity in quota {display}, which is bigger than the current available capacity {}. The current quota usage is {current} and the quota limit is {limit} for quota {display}.",
                limit.saturating_sub(others)
            ),
        );
    }
    let state = if existing.is_some() {
        "Accepted"
    } else {
        "Creating"
    };
    let acc = &w.accounts[key];
    let body = render_deployment(
        acc,
        name,
        &request,
        existing.as_ref(),
        Some(&model),
        state,
        &ctx.principal,
        "Application",
    );
    w.accounts
        .get_mut(key)
        .expect("account")
        .deployments
        .insert(lname.clone(), world::Deployment { body: body.clone() });
    let op = start_operation(
        ctx,
        &mut w,
        key,
        &sub,
        &loc,
        Target::Deployment {
            name: lname,
            delete: false,
        },
    );
    let body = render_for_version(&ctx.api_version, body);
    if patch {
        return lro_headers(ctx, json_response(202, body), &sub, &loc, &op, true);
    }
    let status = if existing.is_some() { 200 } else { 201 };
    lro_headers(ctx, json_response(status, body), &sub, &loc, &op, false)
}

fn delete(ctx: &Ctx, key: &str, name: &str) -> Resp {
    let mut w = ctx.inner.world.lock();
    w.settle();
    let lname = name.to_ascii_lowercase();
    let (acc_id, sub, loc) = {
        let a = &w.accounts[key];
        (a.id.clone(), a.subscription.clone(), a.location.clone())
    };
    if !w.accounts[key].deployments.contains_key(&lname) {
        return empty_response(204);
    }
    if note_write(&mut w, key) {
        return conflict(&acc_id);
    }
    if let Some(d) = w
        .accounts
        .get_mut(key)
        .expect("account")
        .deployments
        .get_mut(&lname)
    {
        d.body["properties"]["provisioningState"] = json!("Deleting");
    }
    let op = start_operation(
        ctx,
        &mut w,
        key,
        &sub,
        &loc,
        Target::Deployment {
            name: lname,
            delete: true,
        },
    );
    lro_headers(ctx, empty_response(202), &sub, &loc, &op, true)
}

pub(crate) fn pause_resume(ctx: &Ctx, key: &str, name: &str, pause: bool) -> Resp {
    let mut w = ctx.inner.world.lock();
    w.settle();
    let lname = name.to_ascii_lowercase();
    let acc_id = w.accounts[key].id.clone();
    if !w.accounts[key].deployments.contains_key(&lname) {
        return deployment_not_found(&acc_id, name);
    }
    if note_write(&mut w, key) {
        return conflict(&acc_id);
    }
    let d = w
        .accounts
        .get_mut(key)
        .expect("account")
        .deployments
        .get_mut(&lname)
        .expect("deployment");
    d.body["properties"]["deploymentState"] = json!(if pause { "Paused" } else { "Running" });
    d.body["etag"] = json!(world::new_etag());
    json_response(200, render_for_version(&ctx.api_version, d.body.clone()))
}

pub(crate) fn skus(ctx: &Ctx, key: &str, name: &str) -> Resp {
    let mut w = ctx.inner.world.lock();
    w.settle();
    let acc = &w.accounts[key];
    let Some(d) = acc.deployments.get(&name.to_ascii_lowercase()) else {
        return deployment_not_found(&acc.id, name);
    };
    let model = resolve_model(acc, &d.body);
    let items: Vec<(String, Value)> = model
        .map(|m| m.sku_resources_json())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, v)| (paging::ordinal(i), v))
        .collect();
    drop(w);
    paging::page(ctx.inner, ctx.req, items)
}
