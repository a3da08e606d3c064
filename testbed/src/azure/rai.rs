//! Content filters of an account: `raiPolicies` (the system-managed `Microsoft.Default`,
//! `Microsoft.DefaultV2` and `Microsoft.Nil`, plus user-managed ones), `raiBlocklists` and
//! their `raiBlocklistItems` (one by one, or in batches with `addRaiBlocklistItems` /
//! `deleteRaiBlocklistItems`). A user policy is validated before it is stored: a system base
//! policy, content filters with a known category, a `source` of Prompt or Completion, a
//! severity threshold (Low, Medium, High) for the harm categories, one filter per category and
//! source, and custom blocklists that exist on the account. Deployments name a policy that
//! must exist (`policy_exists`).
use serde_json::{Value, json};

use super::arm::{Ctx, arm_error};
use super::paging;
use super::server::{Resp, empty_response, json_response};
use super::world::{Account, Blocklist, new_etag};

pub const SYSTEM_POLICIES: &[&str] = &["Microsoft.Default", "Microsoft.DefaultV2", "Microsoft.Nil"];

/// Content filter categories and whether they take a severity threshold.
const CATEGORIES: &[(&str, bool)] = &[
    ("Hate", true),
    ("Sexual", true),
    ("Violence", true),
    ("Selfharm", true),
    ("Jailbreak", false),
    ("Indirect Attack", false),
    ("Protected Material Text", false),
    ("Protected Material Code", false),
    ("Profanity", false),
];
const SOURCES: &[&str] = &["Prompt", "Completion"];
const LEVELS: &[&str] = &["Low", "Medium", "High"];

fn system_name(name: &str) -> Option<&'static str> {
    SYSTEM_POLICIES
        .iter()
        .copied()
        .find(|p| p.eq_ignore_ascii_case(name))
}

/// Whether a deployment may name `policy` on this account.
pub(crate) fn policy_exists(acc: &Account, policy: &str) -> bool {
    system_name(policy).is_some() || acc.rai_policies.contains_key(&policy.to_ascii_lowercase())
}

/// A deployment names a policy the account does not have.
pub(crate) fn policy_not_found(account_id: &str, policy: &str) -> Resp {
    arm_error(
        400,
        "InvalidResourceProperties",
        &format!(
            "The RAI policy '{policy}' of the deployment was not found on account '{account_id}'. Create it (accounts/raiPolicies) or name one of {}.",
            SYSTEM_POLICIES.join(", ")
        ),
    )
}

fn invalid_policy(message: &str) -> Resp {
    arm_error(
        400,
        "InvalidResourceProperties",
        &format!("Resource has invalid content filter: {message}"),
    )
}

fn not_found(kind: &str, name: &str) -> Resp {
    arm_error(
        404,
        "NotFound",
        &format!("The {kind} '{name}' was not found."),
    )
}

fn system_policy_json(acc: &Account, name: &str) -> Value {
    let filters: Vec<Value> = CATEGORIES
        .iter()
        .filter(|(_, graded)| *graded)
        .flat_map(|(c, _)| {
            SOURCES.iter().map(move |s| {
                json!({"name": c, "blocking": true, "enabled": true, "severityThreshold": "Medium", "source": s})
            })
        })
        .collect();
    json!({
        "id": format!("{}/raiPolicies/{name}", acc.id),
        "name": name,
        "type": "Microsoft.CognitiveServices/accounts/raiPolicies",
        "properties": {"type": "SystemManaged", "mode": "Blocking", "contentFilters": filters},
    })
}

/// Problems with a user policy's properties, if any.
fn validate_policy(acc: &Account, props: &Value) -> Result<(), String> {
    if let Some(base) = props["basePolicyName"].as_str()
        && system_name(base).is_none()
    {
        return Err(format!(
            "basePolicyName '{base}' is not a system policy; use one of {}.",
            SYSTEM_POLICIES.join(", ")
        ));
    }
    let mut seen = Vec::new();
    for (i, f) in props["contentFilters"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = f["name"].as_str().unwrap_or("");
        let Some((category, graded)) = CATEGORIES
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(name))
        else {
            let known: Vec<&str> = CATEGORIES.iter().map(|(c, _)| *c).collect();
            return Err(format!(
                "contentFilters[{i}].name '{name}' is not a content filter category; use one of {}.",
                known.join(", ")
            ));
        };
        let source = f["source"].as_str().unwrap_or("");
        if !SOURCES.iter().any(|s| s.eq_ignore_ascii_case(source)) {
            return Err(format!(
                "contentFilters[{i}] ({category}) needs source Prompt or Completion, not '{source}'."
            ));
        }
        match f["severityThreshold"].as_str() {
            Some(l) if !LEVELS.iter().any(|x| x.eq_ignore_ascii_case(l)) => {
                return Err(format!(
                    "contentFilters[{i}] ({category}) severityThreshold '{l}' is not Low, Medium or High."
                ));
            }
            None if *graded => {
                return Err(format!(
                    "contentFilters[{i}] ({category}) needs a severityThreshold (Low, Medium or High)."
                ));
            }
            _ => {}
        }
        let pair = (category.to_ascii_lowercase(), source.to_ascii_lowercase());
        if seen.contains(&pair) {
            return Err(format!(
                "contentFilters has {category} for source {source} twice."
            ));
        }
        seen.push(pair);
    }
    for (i, b) in props["customBlocklists"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = b["blocklistName"].as_str().unwrap_or("");
        if !acc.rai_blocklists.contains_key(&name.to_ascii_lowercase()) {
            return Err(format!(
                "customBlocklists[{i}] names blocklist '{name}', which does not exist on this account: create it (accounts/raiBlocklists) first."
            ));
        }
        let source = b["source"].as_str().unwrap_or("");
        if !SOURCES.iter().any(|s| s.eq_ignore_ascii_case(source)) {
            return Err(format!(
                "customBlocklists[{i}] ({name}) needs source Prompt or Completion, not '{source}'."
            ));
        }
    }
    Ok(())
}

/// A child resource as ARM renders it.
fn child(parent_id: &str, collection: &str, name: &str, request: &Value, props: Value) -> Value {
    let mut v = json!({
        "id": format!("{parent_id}/{collection}/{name}"),
        "name": name,
        "type": format!("Microsoft.CognitiveServices/accounts/{}", collection_type(collection)),
        "etag": new_etag(),
        "properties": props,
    });
    if let Some(tags) = request.get("tags").filter(|t| t.is_object()) {
        v["tags"] = tags.clone();
    }
    v
}

fn collection_type(collection: &str) -> &str {
    match collection {
        "raiBlocklistItems" => "raiBlocklists/raiBlocklistItems",
        other => other,
    }
}

fn object(props: &Value) -> Value {
    if props.is_object() {
        props.clone()
    } else {
        json!({})
    }
}

pub(crate) fn handle(ctx: &Ctx, key: &str, rest: &[&str], raw: &[String]) -> Resp {
    let m = ctx.req.method.as_str();
    match (m, rest) {
        ("GET", ["raipolicies"]) => {
            let w = ctx.inner.world.lock();
            let acc = &w.accounts[key];
            let mut items: Vec<(String, Value)> = SYSTEM_POLICIES
                .iter()
                .map(|p| (p.to_ascii_lowercase(), system_policy_json(acc, p)))
                .collect();
            items.extend(acc.rai_policies.iter().map(|(k, p)| (k.clone(), p.clone())));
            drop(w);
            paging::page(ctx.inner, ctx.req, items)
        }
        (_, ["raipolicies", _]) => policy(ctx, key, &raw[1]),
        ("GET", ["raiblocklists"]) => {
            let items: Vec<(String, Value)> = ctx.inner.world.lock().accounts[key]
                .rai_blocklists
                .iter()
                .map(|(k, b)| (k.clone(), b.body.clone()))
                .collect();
            paging::page(ctx.inner, ctx.req, items)
        }
        (_, ["raiblocklists", _]) => blocklist(ctx, key, &raw[1]),
        (_, ["raiblocklists", _, rest @ ..]) => items(ctx, key, &raw[1], rest, &raw[2..]),
        _ => arm_error(
            405,
            "MethodNotAllowed",
            "The requested method is not allowed.",
        ),
    }
}

fn policy(ctx: &Ctx, key: &str, name: &str) -> Resp {
    let lname = name.to_ascii_lowercase();
    match ctx.req.method.as_str() {
        "GET" => {
            let w = ctx.inner.world.lock();
            let acc = &w.accounts[key];
            if let Some(system) = system_name(name) {
                return json_response(200, system_policy_json(acc, system));
            }
            match acc.rai_policies.get(&lname) {
                Some(p) => json_response(200, p.clone()),
                None => not_found("RAI policy", name),
            }
        }
        "PUT" => {
            let request = match ctx.body(false) {
                Ok(b) => b,
                Err(r) => return r,
            };
            if system_name(name).is_some() {
                return invalid_policy(&format!(
                    "'{name}' is a system-managed policy and cannot be changed; create a policy of your own with basePolicyName '{name}'."
                ));
            }
            let mut w = ctx.inner.world.lock();
            let acc = w.accounts.get_mut(key).expect("account");
            let mut props = object(&request["properties"]);
            if let Err(e) = validate_policy(acc, &props) {
                return invalid_policy(&e);
            }
            props["type"] = json!("UserManaged");
            let policy = child(&acc.id, "raiPolicies", name, &request, props);
            let status = if acc.rai_policies.insert(lname, policy.clone()).is_some() {
                200
            } else {
                201
            };
            json_response(status, policy)
        }
        "DELETE" => {
            let mut w = ctx.inner.world.lock();
            w.accounts
                .get_mut(key)
                .expect("account")
                .rai_policies
                .remove(&lname);
            empty_response(204)
        }
        _ => arm_error(
            405,
            "MethodNotAllowed",
            "The requested method is not allowed.",
        ),
    }
}

fn blocklist(ctx: &Ctx, key: &str, name: &str) -> Resp {
    let lname = name.to_ascii_lowercase();
    match ctx.req.method.as_str() {
        "GET" => match ctx.inner.world.lock().accounts[key]
            .rai_blocklists
            .get(&lname)
        {
            Some(b) => json_response(200, b.body.clone()),
            None => not_found("RAI blocklist", name),
        },
        "PUT" => {
            let request = match ctx.body(false) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let mut w = ctx.inner.world.lock();
            let acc = w.accounts.get_mut(key).expect("account");
            let body = child(
                &acc.id,
                "raiBlocklists",
                name,
                &request,
                object(&request["properties"]),
            );
            match acc.rai_blocklists.get_mut(&lname) {
                Some(b) => {
                    b.body = body.clone();
                    json_response(200, body)
                }
                None => {
                    acc.rai_blocklists.insert(
                        lname,
                        Blocklist {
                            body: body.clone(),
                            items: Default::default(),
                        },
                    );
                    json_response(201, body)
                }
            }
        }
        "DELETE" => {
            let mut w = ctx.inner.world.lock();
            let acc = w.accounts.get_mut(key).expect("account");
            let users: Vec<String> = acc
                .rai_policies
                .values()
                .filter(|p| {
                    p["properties"]["customBlocklists"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|b| {
                            b["blocklistName"]
                                .as_str()
                                .is_some_and(|n| n.eq_ignore_ascii_case(name))
                        })
                })
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect();
            if !users.is_empty() {
                return arm_error(
                    409,
                    "Conflict",
                    &format!(
                        "The RAI blocklist '{name}' is used by RAI policy {}; remove it from the policy first.",
                        users.join(", ")
                    ),
                );
            }
            acc.rai_blocklists.remove(&lname);
            empty_response(204)
        }
        _ => arm_error(
            405,
            "MethodNotAllowed",
            "The requested method is not allowed.",
        ),
    }
}

/// An item's properties, or why they are invalid (a regex pattern must compile).
#[allow(clippy::result_large_err)]
fn item_properties(props: &Value) -> Result<Value, Resp> {
    let props = object(props);
    let Some(pattern) = props["pattern"].as_str().filter(|p| !p.is_empty()) else {
        return Err(arm_error(
            400,
            "InvalidResourceProperties",
            "The blocklist item needs properties.pattern (the text or regular expression to block).",
        ));
    };
    if props["isRegex"] == json!(true)
        && let Err(e) = regex::Regex::new(pattern)
    {
        return Err(arm_error(
            400,
            "InvalidResourceProperties",
            &format!("The blocklist item's pattern is not a valid regular expression: {e}"),
        ));
    }
    Ok(props)
}

fn items(ctx: &Ctx, key: &str, list: &str, rest: &[&str], raw: &[String]) -> Resp {
    let llist = list.to_ascii_lowercase();
    let m = ctx.req.method.as_str();
    let request = if m == "PUT" || m == "POST" {
        match ctx.body(false) {
            Ok(b) => b,
            Err(r) => return r,
        }
    } else {
        Value::Null
    };
    let mut w = ctx.inner.world.lock();
    let acc = w.accounts.get_mut(key).expect("account");
    let Some(b) = acc.rai_blocklists.get_mut(&llist) else {
        return not_found("RAI blocklist", list);
    };
    let list_id = b.body["id"].as_str().unwrap_or_default().to_string();
    match (m, rest) {
        ("GET", ["raiblocklistitems"]) => {
            let items: Vec<(String, Value)> = b
                .items
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            drop(w);
            paging::page(ctx.inner, ctx.req, items)
        }
        ("GET", ["raiblocklistitems", _]) => match b.items.get(&raw[1].to_ascii_lowercase()) {
            Some(i) => json_response(200, i.clone()),
            None => not_found("RAI blocklist item", &raw[1]),
        },
        ("PUT", ["raiblocklistitems", _]) => {
            let props = match item_properties(&request["properties"]) {
                Ok(p) => p,
                Err(r) => return r,
            };
            let item = child(&list_id, "raiBlocklistItems", &raw[1], &request, props);
            let status = if b
                .items
                .insert(raw[1].to_ascii_lowercase(), item.clone())
                .is_some()
            {
                200
            } else {
                201
            };
            json_response(status, item)
        }
        ("DELETE", ["raiblocklistitems", _]) => {
            b.items.remove(&raw[1].to_ascii_lowercase());
            empty_response(204)
        }
        ("POST", ["addraiblocklistitems"]) => {
            let mut added = Vec::new();
            for entry in request.as_array().into_iter().flatten() {
                let Some(name) = entry["name"].as_str() else {
                    return arm_error(
                        400,
                        "InvalidResourceProperties",
                        "Every item of addRaiBlocklistItems needs a name.",
                    );
                };
                match item_properties(&entry["properties"]) {
                    Ok(p) => added.push((name.to_string(), p)),
                    Err(r) => return r,
                }
            }
            for (name, props) in added {
                let item = child(&list_id, "raiBlocklistItems", &name, &Value::Null, props);
                b.items.insert(name.to_ascii_lowercase(), item);
            }
            json_response(200, b.body.clone())
        }
        ("POST", ["deleteraiblocklistitems"]) => {
            for name in request
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                b.items.remove(&name.to_ascii_lowercase());
            }
            empty_response(204)
        }
        _ => arm_error(
            405,
            "MethodNotAllowed",
            "The requested method is not allowed.",
        ),
    }
}
