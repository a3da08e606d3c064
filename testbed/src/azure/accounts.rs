//! ARM accounts (`Microsoft.CognitiveServices/accounts/{a}`): create (201 + long-running
//! operation), update by PUT (200, replaces the body) or PATCH (202 + long-running operation,
//! merges tags, sku and properties), delete (202 + long-running operation), listKeys and
//! regenerateKey. Azure's checks: the location must be a region that offers the resource type
//! (`LocationNotAvailableForResourceType`), and a `customSubDomainName` held by another account
//! is refused (409 `CustomDomainInUse`, the message Azure gives); `checkDomainAvailability`
//! answers whether a subdomain is free.
use serde_json::{Value, json};

use super::AccountSeed;
use super::arm::{Ctx, arm_error, conflict, lro_headers, not_found_account, start_operation};
use super::catalog;
use super::server::{Listener, Resp, empty_response, json_response};
use super::world::{self, Target, World};

/// Properties the server owns; a PATCH does not set them.
const READ_ONLY: &[&str] = &[
    "provisioningState",
    "endpoint",
    "endpoints",
    "internalId",
    "dateCreated",
    "capabilities",
    "isMigrated",
];

fn location_not_available(location: &str) -> Resp {
    arm_error(
        400,
        "LocationNotAvailableForResourceType",
        &format!(
            "The provided location '{location}' is not available for resource type 'Microsoft.CognitiveServices/accounts'. List of available regions for the resource type is '{}'.",
            catalog::REGIONS.join(",")
        ),
    )
}

/// Whether an account other than `key` holds the subdomain `wanted`.
fn held_by_other(w: &World, key: &str, wanted: &str) -> bool {
    w.accounts.iter().any(|(k, a)| {
        k != key
            && a.prop("customSubDomainName")
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(wanted))
    })
}

/// 409 CustomDomainInUse when another account than `key` holds the subdomain `body` asks for.
fn subdomain_taken(w: &World, key: &str, body: &Value) -> Option<Resp> {
    let wanted = body["properties"]["customSubDomainName"].as_str()?;
    held_by_other(w, key, wanted).then(|| {
        arm_error(
            409,
            "CustomDomainInUse",
            &format!(
                "Please pick a different name. The subdomain name '{wanted}' is not available as it's already used by a resource. If the resource using the name was deleted in the last 48 hours, you may need to purge the deleted resource. Learn more at \"https://go.microsoft.com/fwlink/?linkid=2215493\""
            ),
        )
    })
}

pub(crate) fn put(ctx: &Ctx, sub: &str, rg: &str, name: &str) -> Resp {
    let body = match ctx.body(true) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(location) = body["location"].as_str().map(str::to_string) else {
        return arm_error(
            400,
            "LocationRequired",
            "The location property is required for this definition.",
        );
    };
    if !catalog::is_region(&location) {
        return location_not_available(&location);
    }
    let kind = body["kind"].as_str().unwrap_or("AIServices").to_string();
    let id = world::account_id(sub, rg, name);
    let key = id.to_ascii_lowercase();
    let (exists, endpoint) = {
        let mut w = ctx.inner.world.lock();
        w.settle();
        if w.in_flight(&key) > 0 {
            return conflict(&id);
        }
        if let Some(r) = subdomain_taken(&w, &key, &body) {
            return r;
        }
        (
            w.accounts.contains_key(&key),
            w.accounts.get(&key).map(|a| a.endpoint.clone()),
        )
    };
    let endpoint = match endpoint {
        Some(e) => e,
        None => match ctx.inner.spawn(Listener::Data(key.clone()), true) {
            Ok(addr) => format!("https://127.0.0.1:{}/", addr.port()),
            Err(e) => return arm_error(500, "InternalServerError", &e.to_string()),
        },
    };
    let seed = AccountSeed {
        subscription_id: sub.to_string(),
        resource_group: rg.to_string(),
        name: name.to_string(),
        location: location.clone(),
        kind,
    };
    let mut w = ctx.inner.world.lock();
    let state = if exists { "Succeeded" } else { "Creating" };
    w.insert_account_with(&seed, &endpoint, state, &body);
    if exists {
        return json_response(200, w.accounts[&key].body.clone());
    }
    let op = start_operation(
        ctx,
        &mut w,
        &key,
        sub,
        &location,
        Target::Account { delete: false },
    );
    let resp = json_response(201, w.accounts[&key].body.clone());
    lro_headers(ctx, resp, sub, &location, &op, true)
}

pub(crate) fn patch(ctx: &Ctx, key: &str, rg: &str, name: &str) -> Resp {
    let body = match ctx.body(false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut w = ctx.inner.world.lock();
    w.settle();
    let Some((id, sub, loc)) = w
        .accounts
        .get(key)
        .map(|a| (a.id.clone(), a.subscription.clone(), a.location.clone()))
    else {
        return not_found_account(rg, name);
    };
    if w.in_flight(key) > 0 {
        return conflict(&id);
    }
    if let Some(r) = subdomain_taken(&w, key, &body) {
        return r;
    }
    let a = w.accounts.get_mut(key).expect("account");
    if let Some(tags) = body.get("tags") {
        a.body["tags"] = tags.clone();
    }
    if let Some(sku) = body.get("sku") {
        a.body["sku"] = sku.clone();
    }
    if let Some(identity) = body.get("identity") {
        a.body["identity"] = identity.clone();
    }
    if let Some(props) = body["properties"].as_object() {
        for (k, v) in props
            .iter()
            .filter(|(k, _)| !READ_ONLY.contains(&k.as_str()))
        {
            a.body["properties"][k] = v.clone();
        }
    }
    a.body["etag"] = json!(world::new_etag());
    a.body["properties"]["provisioningState"] = json!("Accepted");
    let answer = a.body.clone();
    let op = start_operation(
        ctx,
        &mut w,
        key,
        &sub,
        &loc,
        Target::Account { delete: false },
    );
    lro_headers(ctx, json_response(202, answer), &sub, &loc, &op, true)
}

pub(crate) fn delete(ctx: &Ctx, key: &str) -> Resp {
    let mut w = ctx.inner.world.lock();
    w.settle();
    let Some((id, sub, loc)) = w
        .accounts
        .get(key)
        .map(|a| (a.id.clone(), a.subscription.clone(), a.location.clone()))
    else {
        return empty_response(204);
    };
    if w.in_flight(key) > 0 {
        return conflict(&id);
    }
    w.accounts.get_mut(key).expect("account").body["properties"]["provisioningState"] =
        json!("Deleting");
    let op = start_operation(
        ctx,
        &mut w,
        key,
        &sub,
        &loc,
        Target::Account { delete: true },
    );
    lro_headers(ctx, empty_response(202), &sub, &loc, &op, true)
}

pub(crate) fn list_keys(ctx: &Ctx, key: &str) -> Resp {
    let w = ctx.inner.world.lock();
    let a = &w.accounts[key];
    json_response(200, json!({"key1": a.key1, "key2": a.key2}))
}

pub(crate) fn regenerate_key(ctx: &Ctx, key: &str) -> Resp {
    let body = match ctx.body(false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let key1 = match body["keyName"].as_str() {
        Some(k) if k.eq_ignore_ascii_case("key1") => true,
        Some(k) if k.eq_ignore_ascii_case("key2") => false,
        _ => {
            return arm_error(
                400,
                "InvalidRequestContent",
                "The request content was invalid: 'keyName' must be 'Key1' or 'Key2'.",
            );
        }
    };
    let mut w = ctx.inner.world.lock();
    let a = w.accounts.get_mut(key).expect("account");
    a.regenerate(key1);
    json_response(200, json!({"key1": a.key1, "key2": a.key2}))
}

/// `POST /subscriptions/{s}/providers/Microsoft.CognitiveServices/checkDomainAvailability`.
pub(crate) fn check_domain_availability(ctx: &Ctx) -> Resp {
    let body = match ctx.body(false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = body["subdomainName"].as_str().unwrap_or_default();
    let taken = held_by_other(&ctx.inner.world.lock(), "", name);
    let mut answer = json!({
        "isSubdomainAvailable": !taken,
        "subdomainName": name,
        "type": body["type"],
    });
    if let Some(kind) = body.get("kind").filter(|k| k.is_string()) {
        answer["kind"] = kind.clone();
    }
    if taken {
        answer["reason"] = json!(format!(
            "Sub domain name '{name}' is already in use. Please pick a different name."
        ));
    }
    json_response(200, answer)
}
