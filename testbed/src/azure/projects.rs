//! Foundry projects (`accounts/{a}/projects/{p}`): list, GET, PUT (create 201 + long-running
//! operation; update 200), PATCH (202 + long-running operation) and DELETE (202 +
//! long-running operation), only on an account with `allowProjectManagement: true`. A project
//! carries its endpoint (`properties.endpoints["AI Foundry API"]`, the account endpoint +
//! `api/projects/{name}`); the account's first project becomes its `defaultProject`, and
//! `associatedProjects` lists them all.
use chrono::Utc;
use serde_json::{Value, json};

use super::arm::{Ctx, arm_error, lro_headers, start_operation};
use super::paging;
use super::server::{Resp, empty_response, json_response};
use super::world::{Account, Target, assigned_identity, new_etag, normalize_location, timestamp};

fn not_found(account: &str, name: &str) -> Resp {
    arm_error(
        404,
        "NotFound",
        &format!("The project '{name}' was not found on account '{account}'."),
    )
}

fn not_allowed(account: &str) -> Resp {
    arm_error(
        400,
        "BadRequest",
        &format!(
            "Account '{account}' does not allow project management: set properties.allowProjectManagement to true on the account (kind AIServices) before creating projects."
        ),
    )
}

pub(crate) fn handle(ctx: &Ctx, key: &str, rest: &[&str], raw: &[String]) -> Resp {
    match (ctx.req.method.as_str(), rest) {
        ("GET", ["projects"]) => {
            let items: Vec<(String, Value)> = ctx.inner.world.lock().accounts[key]
                .projects
                .iter()
                .map(|(k, p)| (k.clone(), p.clone()))
                .collect();
            paging::page(ctx.inner, ctx.req, items)
        }
        ("GET", ["projects", _]) => {
            let mut w = ctx.inner.world.lock();
            w.settle();
            let acc = &w.accounts[key];
            match acc.projects.get(&raw[1].to_ascii_lowercase()) {
                Some(p) => json_response(200, p.clone()),
                None => not_found(&acc.id, &raw[1]),
            }
        }
        ("PUT", ["projects", _]) => write(ctx, key, &raw[1], false),
        ("PATCH", ["projects", _]) => write(ctx, key, &raw[1], true),
        ("DELETE", ["projects", _]) => delete(ctx, key, &raw[1]),
        _ => arm_error(
            405,
            "MethodNotAllowed",
            "The requested method is not allowed.",
        ),
    }
}

/// Removes a deleted project from the account's `associatedProjects` / `defaultProject`.
pub(crate) fn unlink(acc: &mut Account, name: &str) {
    let props = &mut acc.body["properties"];
    if let Some(list) = props["associatedProjects"].as_array_mut() {
        list.retain(|p| !p.as_str().is_some_and(|p| p.eq_ignore_ascii_case(name)));
    }
    if props["defaultProject"]
        .as_str()
        .is_some_and(|p| p.eq_ignore_ascii_case(name))
        && let Some(o) = props.as_object_mut()
    {
        o.remove("defaultProject");
    }
}

fn link(acc: &mut Account, name: &str) -> bool {
    let props = &mut acc.body["properties"];
    if !props["associatedProjects"].is_array() {
        props["associatedProjects"] = json!([]);
    }
    let list = props["associatedProjects"].as_array_mut().expect("array");
    if !list
        .iter()
        .any(|p| p.as_str().is_some_and(|p| p.eq_ignore_ascii_case(name)))
    {
        list.push(json!(name));
    }
    if props["defaultProject"].as_str().is_none() {
        props["defaultProject"] = json!(name);
    }
    props["defaultProject"]
        .as_str()
        .is_some_and(|p| p.eq_ignore_ascii_case(name))
}

fn write(ctx: &Ctx, key: &str, name: &str, patch: bool) -> Resp {
    let request = match ctx.body(true) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let lname = name.to_ascii_lowercase();
    let mut w = ctx.inner.world.lock();
    w.settle();
    let acc = w.accounts.get_mut(key).expect("account");
    if acc.prop("allowProjectManagement") != &json!(true) {
        return not_allowed(&acc.id);
    }
    let existing = acc.projects.get(&lname).cloned();
    if patch && existing.is_none() {
        return not_found(&acc.id, name);
    }
    if let Some(loc) = request["location"].as_str()
        && normalize_location(loc) != normalize_location(&acc.location)
    {
        return arm_error(
            400,
            "BadRequest",
            &format!(
                "The project location '{loc}' must be the account's location '{}'.",
                acc.location
            ),
        );
    }
    // PATCH merges into what is there; PUT replaces.
    let base = match (&existing, patch) {
        (Some(old), true) => old.clone(),
        _ => json!({}),
    };
    let mut props = base["properties"].as_object().cloned().unwrap_or_default();
    for (k, v) in request["properties"].as_object().into_iter().flatten() {
        if !["provisioningState", "endpoints", "isDefault"].contains(&k.as_str()) {
            props.insert(k.clone(), v.clone());
        }
    }
    let is_default = link(acc, name);
    let state = match (&existing, patch) {
        (None, _) => "Creating",
        (Some(_), true) => "Accepted",
        (Some(_), false) => "Succeeded",
    };
    props.insert("provisioningState".into(), json!(state));
    props.insert(
        "endpoints".into(),
        json!({"AI Foundry API": format!("{}api/projects/{name}", acc.endpoint)}),
    );
    props.insert("isDefault".into(), json!(is_default));
    let now = timestamp(Utc::now());
    let created = existing
        .as_ref()
        .and_then(|e| e["systemData"]["createdAt"].as_str().map(str::to_string))
        .unwrap_or_else(|| now.clone());
    let mut project = json!({
        "id": format!("{}/projects/{name}", acc.id),
        "name": name,
        "type": "Microsoft.CognitiveServices/accounts/projects",
        "location": acc.location,
        "etag": new_etag(),
        "properties": Value::Object(props),
        "systemData": {
            "createdBy": ctx.principal, "createdByType": "Application", "createdAt": created,
            "lastModifiedBy": ctx.principal, "lastModifiedByType": "Application", "lastModifiedAt": now,
        },
    });
    for field in ["tags", "identity"] {
        let v = request
            .get(field)
            .or_else(|| base.get(field))
            .filter(|v| v.is_object());
        if let Some(v) = v {
            project[field] = if field == "identity" && request.get(field).is_some() {
                assigned_identity(v)
            } else {
                v.clone()
            };
        }
    }
    let (sub, loc) = (acc.subscription.clone(), acc.location.clone());
    acc.projects.insert(lname.clone(), project.clone());
    if state == "Succeeded" {
        return json_response(200, project);
    }
    let op = start_operation(
        ctx,
        &mut w,
        key,
        &sub,
        &loc,
        Target::Project {
            name: lname,
            delete: false,
        },
    );
    let status = if patch { 202 } else { 201 };
    lro_headers(ctx, json_response(status, project), &sub, &loc, &op, patch)
}

fn delete(ctx: &Ctx, key: &str, name: &str) -> Resp {
    let lname = name.to_ascii_lowercase();
    let mut w = ctx.inner.world.lock();
    w.settle();
    let acc = w.accounts.get_mut(key).expect("account");
    let Some(p) = acc.projects.get_mut(&lname) else {
        return empty_response(204);
    };
    p["properties"]["provisioningState"] = json!("Deleting");
    let (sub, loc) = (acc.subscription.clone(), acc.location.clone());
    let op = start_operation(
        ctx,
        &mut w,
        key,
        &sub,
        &loc,
        Target::Project {
            name: lname,
            delete: true,
        },
    );
    lro_headers(ctx, empty_response(202), &sub, &loc, &op, true)
}
