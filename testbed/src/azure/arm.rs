//! ARM surface for `Microsoft.CognitiveServices`: authentication, throttling, api-version
//! checks and routing; long-running operations (Azure-AsyncOperation + Location + Retry-After,
//! operation status/result URLs) shared by the resource modules (`accounts`, `deployments`,
//! `projects`, `rai`); account GET and lists, models, skus, usages, location
//! models/usages/capacities and the capacity calculator.
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde_json::{Value, json};

use super::catalog::{self, CatalogModel};
use super::entra::TokenError;
use super::ratelimit::OpKind;
use super::server::{Req, Resp, empty_response, json_response, with_header};
use super::world::{self, Operation, Target, World, timestamp};
use super::{Inner, LogInfo, Surface};
use super::{accounts, authorization, deployments, paging, projects, rai};

/// Stable api-versions whose spec is in `../shared/azure-specs`.
pub const API_VERSIONS: &[&str] = &["2025-09-01", "2026-09-01"];
const ARM_AUDIENCES: &[&str] = &[
    "https://management.azure.com",
    "https://management.core.windows.net",
];

pub(crate) fn arm_error(status: u16, code: &str, message: &str) -> Resp {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

pub(crate) fn not_found_account(rg: &str, name: &str) -> Resp {
    arm_error(
        404,
        "ResourceNotFound",
        &format!(
            "The Resource 'Microsoft.CognitiveServices/accounts/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

pub(crate) fn deployment_not_found(account_id: &str, name: &str) -> Resp {
    arm_error(
        404,
        "NotFound",
        &format!("Specified resource '{account_id}/deployments/{name}' cannot be found."),
    )
}

pub(crate) fn conflict(account_id: &str) -> Resp {
    arm_error(
        409,
        "RequestConflict",
        &format!(
            "Another operation is being performed on the parent resource '{account_id}'. Please try again later."
        ),
    )
}

fn www_authenticate(inner: &Inner, error_description: &str) -> String {
    format!(
        "Bearer authorization_uri=\"{}{}\", error=\"invalid_token\", error_description=\"{}\"",
        inner.main_url(),
        inner.tenant_id,
        error_description
    )
}

/// Validates the bearer token for ARM; Err = Azure's 401.
#[allow(clippy::result_large_err)]
pub(crate) fn authenticate(inner: &Inner, req: &Req) -> Result<Value, Resp> {
    let err = |code: &str, message: &str, desc: &str| {
        with_header(
            arm_error(401, code, message),
            "www-authenticate",
            &www_authenticate(inner, desc),
        )
    };
    let Some(token) = req.bearer() else {
        return Err(err(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
            "The authentication failed because of missing 'Authorization' header.",
        ));
    };
    // The emulator's own ARM URL is an audience too, as a custom cloud's ARM accepts the one its
    // metadata lists (clients such as azure-ai-ml derive the scope from the ARM endpoint).
    let own = inner.main_url();
    let audiences = [ARM_AUDIENCES[0], ARM_AUDIENCES[1], own.as_str()];
    match inner.signer.validate(&token, &audiences) {
        Ok(claims) => Ok(claims),
        Err(TokenError::Expired { exp }) => {
            let exp = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default();
            Err(err(
                "ExpiredAuthenticationToken",
                &format!(
                    "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                    exp.format("%-m/%-d/%Y %-I:%M:%S %p"),
                    Utc::now().format("%-m/%-d/%Y %-I:%M:%S %p")
                ),
                "The access token has expired.",
            ))
        }
        Err(TokenError::WrongAudience { aud }) => Err(err(
            "InvalidAuthenticationTokenAudience",
            &format!(
                "The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'."
            ),
            "The access token has been obtained for wrong audience or resource.",
        )),
        Err(_) => Err(err(
            "InvalidAuthenticationToken",
            "The access token is invalid.",
            "The access token is invalid.",
        )),
    }
}

/// One authenticated ARM request being answered.
pub(crate) struct Ctx<'a> {
    pub inner: &'a Arc<Inner>,
    pub req: &'a Req,
    pub api_version: String,
    /// The caller's app id (client id).
    pub principal: String,
}

impl Ctx<'_> {
    /// The request's JSON body (an object when `object` is set), validated against the spec;
    /// Err = Azure's 400.
    #[allow(clippy::result_large_err)]
    pub fn body(&self, object: bool) -> Result<Value, Resp> {
        let body = self.req.json().map_err(|e| invalid_content(&e))?;
        if object && !body.is_object() {
            return Err(invalid_content("a JSON object is required"));
        }
        match self.inner.check_request(Surface::Arm, self.req) {
            Some(r) => Err(r),
            None => Ok(body),
        }
    }
}

/// 400 InvalidApiVersionParameter, listing the versions supported.
pub(crate) fn invalid_api_version(v: &str, supported: &[&str]) -> Resp {
    arm_error(
        400,
        "InvalidApiVersionParameter",
        &format!(
            "The api-version '{v}' is invalid. The supported versions are '{}'.",
            supported.join(",")
        ),
    )
}

pub(crate) fn handle(inner: &Arc<Inner>, req: &Req) -> Resp {
    let claims = match authenticate(inner, req) {
        Ok(c) => c,
        Err(r) => return finish(r, None, None, false),
    };
    let principal = claims["appid"].as_str().unwrap_or_default().to_string();
    let actor_oid = claims["oid"].as_str().unwrap_or_default().to_string();
    let segs: Vec<String> = req
        .path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let is_write = req.method != "GET" && req.method != "HEAD";
    let account_id = account_of(&segs, &lower);
    let principal_opt = Some(principal.clone());

    // Throttling per (subscription, principal, operation type); every answer from here on
    // carries the caller's remaining count.
    let mut remaining = None;
    if lower.first().map(String::as_str) == Some("subscriptions") && segs.len() > 1 {
        match inner.throttle(&segs[1], &actor_oid, OpKind::of(&req.method)) {
            Ok(r) => remaining = Some(r),
            Err(r) => return finish(r, principal_opt, account_id, is_write),
        }
    }
    let finish = |resp: Resp| {
        let resp = match &remaining {
            Some(r) => r.apply(resp),
            None => resp,
        };
        finish(resp, principal_opt.clone(), account_id.clone(), is_write)
    };

    if authorization::owns(&lower) {
        return finish(authorization::handle(inner, req, &segs, &lower, &actor_oid));
    }
    let is_operation_url =
        lower.len() == 8 && (lower[6] == "operationstatuses" || lower[6] == "operationresults");
    let api_version = match req.query("api-version") {
        None => {
            let r = arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
            return finish(r);
        }
        Some(v) if !API_VERSIONS.contains(&v.as_str()) && !is_operation_url => {
            let r = if !looks_like_api_version(&v) {
                invalid_api_version(&v, API_VERSIONS)
            } else {
                let ty = resource_type(&lower);
                arm_error(
                    400,
                    "NoRegisteredProviderFound",
                    &format!(
                        "No registered resource provider found for location 'eastus' and API version '{v}' for type '{ty}'. The supported api-versions are '{}'. The supported locations are 'eastus, eastus2, westus, swedencentral'.",
                        API_VERSIONS.join(", ")
                    ),
                )
            };
            return finish(r);
        }
        Some(v) => v,
    };
    let ctx = Ctx {
        inner,
        req,
        api_version,
        principal: principal.clone(),
    };
    finish(route(&ctx, &segs, &lower))
}

pub(crate) fn finish(
    resp: Resp,
    principal: Option<String>,
    account_id: Option<String>,
    is_write: bool,
) -> Resp {
    let mut resp = with_header(resp, "x-ms-request-id", &uuid::Uuid::new_v4().to_string());
    resp = with_header(
        resp,
        "x-ms-correlation-request-id",
        &uuid::Uuid::new_v4().to_string(),
    );
    resp.extensions_mut().insert(LogInfo {
        principal,
        account_id,
        is_write,
    });
    resp
}

fn looks_like_api_version(v: &str) -> bool {
    let re = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}(-preview)?$").expect("regex");
    re.is_match(v)
}

pub(crate) fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

fn resource_type(lower: &[String]) -> String {
    if lower.iter().any(|s| s == "deployments") {
        "accounts/deployments".into()
    } else if lower.iter().any(|s| s == "locations") {
        "locations".into()
    } else {
        "accounts".into()
    }
}

/// ARM id of the account a path concerns, if any.
fn account_of(segs: &[String], lower: &[String]) -> Option<String> {
    if lower.len() >= 8
        && lower[0] == "subscriptions"
        && lower[2] == "resourcegroups"
        && lower[4] == "providers"
        && lower[5] == "microsoft.cognitiveservices"
        && lower[6] == "accounts"
    {
        Some(world::account_id(&segs[1], &segs[3], &segs[7]))
    } else {
        None
    }
}

fn route(ctx: &Ctx, segs: &[String], lower: &[String]) -> Resp {
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let m = ctx.req.method.as_str();
    match (m, l.as_slice()) {
        (
            _,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.cognitiveservices",
                rest @ ..,
            ],
        ) => subscription_level(ctx, &segs[1], rest, &segs[4..]),
        (
            "GET",
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.cognitiveservices",
                "accounts",
            ],
        ) => list_accounts(ctx, &segs[1], Some(&segs[3])),
        (
            _,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.cognitiveservices",
                "accounts",
                _,
                rest @ ..,
            ],
        ) => {
            let id = world::account_id(&segs[1], &segs[3], &segs[7]);
            account_level(ctx, &id, &segs[1], &segs[3], &segs[7], rest, &segs[8..])
        }
        _ => arm_error(
            404,
            "InvalidResourceType",
            &format!(
                "The resource type could not be found in the namespace 'Microsoft.CognitiveServices' for api version '{}'.",
                ctx.api_version
            ),
        ),
    }
}

fn subscription_level(ctx: &Ctx, sub: &str, rest: &[&str], raw: &[String]) -> Resp {
    let m = ctx.req.method.as_str();
    match (m, rest) {
        ("GET", ["accounts"]) => list_accounts(ctx, sub, None),
        ("GET", ["locations", _, "usages"]) => location_usages(ctx, sub, &raw[1]),
        ("GET", ["locations", _, "models"]) => location_models(ctx, sub, &raw[1]),
        ("GET", ["locations", _, "modelcapacities"]) => model_capacities(ctx, sub, &raw[1]),
        ("GET", ["locations", _, "operationstatuses", _]) => operation_status(ctx, &raw[3]),
        ("GET", ["locations", _, "operationresults", _]) => operation_result(ctx, &raw[3]),
        ("POST", ["calculatemodelcapacity"]) => calculate_capacity(ctx),
        ("POST", ["checkdomainavailability"]) => accounts::check_domain_availability(ctx),
        _ => arm_error(
            404,
            "InvalidResourceType",
            &format!(
                "The resource type '{}' could not be found in the namespace 'Microsoft.CognitiveServices' for api version '{}'.",
                rest.first().unwrap_or(&""),
                ctx.api_version
            ),
        ),
    }
}

/// Strips what the requested api-version does not have.
pub(crate) fn render_for_version(api_version: &str, mut body: Value) -> Value {
    if api_version == "2025-09-01"
        && let Some(p) = body["properties"].as_object_mut()
    {
        for k in [
            "deploymentState",
            "serviceTier",
            "routing",
            "contextCacheContainerId",
        ] {
            p.remove(k);
        }
    }
    body
}

fn list_accounts(ctx: &Ctx, sub: &str, rg: Option<&str>) -> Resp {
    let mut w = ctx.inner.world.lock();
    w.settle();
    let items: Vec<(String, Value)> = w
        .accounts
        .iter()
        .filter(|(_, a)| a.subscription.eq_ignore_ascii_case(sub))
        .filter(|(_, a)| rg.is_none_or(|rg| a.resource_group.eq_ignore_ascii_case(rg)))
        .map(|(k, a)| (k.clone(), a.body.clone()))
        .collect();
    drop(w);
    paging::page(ctx.inner, ctx.req, items)
}

fn operation_urls(ctx: &Ctx, sub: &str, location: &str, op_id: &str) -> (String, String) {
    let base = ctx.inner.main_url();
    let loc = world::normalize_location(location);
    (
        format!(
            "{base}subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/{loc}/operationStatuses/{op_id}?api-version={}",
            ctx.api_version
        ),
        format!(
            "{base}subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/{loc}/operationResults/{op_id}?api-version={}",
            ctx.api_version
        ),
    )
}

pub(crate) fn lro_headers(
    ctx: &Ctx,
    resp: Resp,
    sub: &str,
    location: &str,
    op_id: &str,
    with_location: bool,
) -> Resp {
    let (status, result) = operation_urls(ctx, sub, location, op_id);
    let retry = ctx.inner.config.lock().lro_retry_after_secs;
    let mut resp = with_header(resp, "azure-asyncoperation", &status);
    if with_location {
        resp = with_header(resp, "location", &result);
    }
    with_header(resp, "retry-after", &retry.to_string())
}

pub(crate) fn start_operation(
    ctx: &Ctx,
    w: &mut World,
    account_key: &str,
    sub: &str,
    location: &str,
    target: Target,
) -> String {
    let delay = ctx.inner.config.lock().provisioning_delay;
    let id = uuid::Uuid::new_v4().to_string();
    let failure = w.fail_next.pop_front();
    w.pending.insert(id.clone());
    w.operations.insert(
        id.clone(),
        Operation {
            id: id.clone(),
            account_key: account_key.to_string(),
            subscription: sub.to_string(),
            location: location.to_string(),
            target,
            started: Utc::now(),
            done_at: Instant::now() + delay,
            failure,
            finished: None,
        },
    );
    id
}

fn operation_status(ctx: &Ctx, op_id: &str) -> Resp {
    let mut w = ctx.inner.world.lock();
    w.settle();
    let Some(op) = w.operations.get(op_id).cloned() else {
        return arm_error(
            404,
            "OperationNotFound",
            &format!("The operation '{op_id}' could not be found."),
        );
    };
    let mut body = json!({
        "id": format!("/subscriptions/{}/providers/Microsoft.CognitiveServices/locations/{}/operationStatuses/{}", op.subscription, world::normalize_location(&op.location), op.id),
        "name": op.id,
        "status": op.status(),
        "startTime": timestamp(op.started),
    });
    if let Some(end) = op.finished {
        body["endTime"] = json!(timestamp(end));
        body["percentComplete"] = json!(100);
    }
    if let (Some(_), Some((code, message))) = (&op.finished, &op.failure) {
        body["error"] = json!({"code": code, "message": message});
    }
    let resp = json_response(200, body);
    if op.finished.is_none() {
        let retry = ctx.inner.config.lock().lro_retry_after_secs;
        return with_header(resp, "retry-after", &retry.to_string());
    }
    resp
}

fn operation_result(ctx: &Ctx, op_id: &str) -> Resp {
    let mut w = ctx.inner.world.lock();
    w.settle();
    let Some(op) = w.operations.get(op_id).cloned() else {
        return arm_error(
            404,
            "OperationNotFound",
            &format!("The operation '{op_id}' could not be found."),
        );
    };
    if op.finished.is_none() {
        let (_, result) = operation_urls(ctx, &op.subscription, &op.location, &op.id);
        let retry = ctx.inner.config.lock().lro_retry_after_secs;
        let resp = with_header(empty_response(202), "location", &result);
        return with_header(resp, "retry-after", &retry.to_string());
    }
    if let Some((code, message)) = &op.failure {
        return arm_error(400, code, message);
    }
    let acc = w.accounts.get(&op.account_key);
    match (&op.target, acc) {
        (Target::Deployment { delete: true, .. }, _)
        | (Target::Account { delete: true }, _)
        | (Target::Project { delete: true, .. }, _) => empty_response(204),
        (Target::Project { name, .. }, Some(acc)) => match acc.projects.get(name) {
            Some(p) => json_response(200, p.clone()),
            None => empty_response(204),
        },
        (Target::Deployment { name, .. }, Some(acc)) => match acc.deployments.get(name) {
            Some(d) => json_response(200, render_for_version(&ctx.api_version, d.body.clone())),
            None => empty_response(204),
        },
        (Target::Account { .. }, Some(acc)) => json_response(200, acc.body.clone()),
        _ => empty_response(204),
    }
}

#[allow(clippy::too_many_arguments)]
fn account_level(
    ctx: &Ctx,
    id: &str,
    sub: &str,
    rg: &str,
    name: &str,
    rest: &[&str],
    raw: &[String],
) -> Resp {
    let m = ctx.req.method.as_str();
    let key = id.to_ascii_lowercase();
    if rest.is_empty() {
        return match m {
            "GET" => {
                let mut w = ctx.inner.world.lock();
                w.settle();
                match w.accounts.get(&key) {
                    Some(a) => json_response(200, a.body.clone()),
                    None => not_found_account(rg, name),
                }
            }
            "PUT" => accounts::put(ctx, sub, rg, name),
            "PATCH" => accounts::patch(ctx, &key, rg, name),
            "DELETE" => accounts::delete(ctx, &key),
            _ => arm_error(
                405,
                "MethodNotAllowed",
                "The requested method is not allowed.",
            ),
        };
    }
    {
        let mut w = ctx.inner.world.lock();
        w.settle();
        if !w.accounts.contains_key(&key) {
            return not_found_account(rg, name);
        }
    }
    match (m, rest) {
        ("POST", ["listkeys"]) => accounts::list_keys(ctx, &key),
        ("POST", ["regeneratekey"]) => accounts::regenerate_key(ctx, &key),
        ("GET", ["models"]) => {
            let items: Vec<(String, Value)> = ctx.inner.world.lock().accounts[&key]
                .catalog
                .iter()
                .enumerate()
                .map(|(i, m)| (paging::ordinal(i), m.account_model_json()))
                .collect();
            paging::page(ctx.inner, ctx.req, items)
        }
        ("GET", ["skus"]) => json_response(
            200,
            json!({"value": [
                {"resourceType": "Microsoft.CognitiveServices/accounts", "sku": {"name": "F0", "tier": "Free"}},
                {"resourceType": "Microsoft.CognitiveServices/accounts", "sku": {"name": "S0", "tier": "Standard"}},
            ]}),
        ),
        ("GET", ["usages"]) => {
            let (sub, loc) = {
                let w = ctx.inner.world.lock();
                let a = &w.accounts[&key];
                (a.subscription.clone(), a.location.clone())
            };
            usages(ctx, &sub, &loc, "Global")
        }
        ("GET", ["deployments"]) => {
            let items: Vec<(String, Value)> = ctx.inner.world.lock().accounts[&key]
                .deployments
                .iter()
                .map(|(k, d)| {
                    (
                        k.clone(),
                        render_for_version(&ctx.api_version, d.body.clone()),
                    )
                })
                .collect();
            paging::page(ctx.inner, ctx.req, items)
        }
        (_, ["deployments", _]) => deployments::one(ctx, &key, &raw[1]),
        ("GET", ["deployments", _, "skus"]) => deployments::skus(ctx, &key, &raw[1]),
        ("POST", ["deployments", _, action @ ("pause" | "resume")]) => {
            deployments::pause_resume(ctx, &key, &raw[1], *action == "pause")
        }
        (_, ["raipolicies", ..] | ["raiblocklists", ..]) => rai::handle(ctx, &key, rest, raw),
        (_, ["projects", ..]) => projects::handle(ctx, &key, rest, raw),
        _ => arm_error(
            404,
            "InvalidResourceType",
            &format!(
                "The resource type '{}' could not be found in the namespace 'Microsoft.CognitiveServices' for api version '{}'.",
                rest.join("/"),
                ctx.api_version
            ),
        ),
    }
}

pub(crate) fn invalid_content(e: &str) -> Resp {
    arm_error(
        400,
        "InvalidRequestContent",
        &format!("The request content was invalid and could not be deserialized: '{e}'."),
    )
}

fn usages(ctx: &Ctx, sub: &str, location: &str, scope: &str) -> Resp {
    let default_quota = ctx.inner.config.lock().default_quota;
    let mut w = ctx.inner.world.lock();
    w.settle();
    let loc = world::normalize_location(location);
    let mut value: Vec<Value> = Vec::new();
    if scope == "Regional" {
        let count = w
            .accounts
            .values()
            .filter(|a| {
                a.subscription.eq_ignore_ascii_case(sub)
                    && world::normalize_location(&a.location) == loc
            })
            .count();
        value.push(json!({
            "name": {"value": "AccountCount", "localizedValue": "Cognitive Services total account limit"},
            "currentValue": count, "limit": 200, "unit": "Count", "scopeType": "Regional", "scopeId": loc,
        }));
    }
    for name in w.usage_names(sub, &loc) {
        let parts: Vec<&str> = name.splitn(3, '.').collect();
        let display = if parts.len() == 3 {
            catalog::quota_display_name(parts[2], parts[1])
        } else {
            name.clone()
        };
        value.push(json!({
            "name": {"value": name, "localizedValue": display},
            "currentValue": w.usage(sub, &loc, &name, None),
            "limit": w.quota_limit(sub, &loc, &name, default_quota),
            "unit": "Count",
            "quotaPeriod": "00:01:00",
            "nextResetTime": timestamp(Utc::now() + chrono::Duration::seconds(60)),
            "status": "Included",
            "scopeType": scope,
            "scopeId": if scope == "Global" { "Global".to_string() } else { loc.clone() },
        }));
    }
    drop(w);
    if scope == "Global" {
        // Accounts_ListUsages is not pageable in the spec: one answer.
        return json_response(200, json!({"value": value}));
    }
    let items = value
        .into_iter()
        .enumerate()
        .map(|(i, v)| (paging::ordinal(i), v))
        .collect();
    paging::page(ctx.inner, ctx.req, items)
}

fn location_usages(ctx: &Ctx, sub: &str, location: &str) -> Resp {
    usages(ctx, sub, location, "Regional")
}

fn catalog_for_location(w: &World, sub: &str, location: &str) -> Vec<(String, CatalogModel)> {
    let loc = world::normalize_location(location);
    let mut models: Vec<(String, CatalogModel)> = Vec::new();
    for a in w.accounts.values().filter(|a| {
        a.subscription.eq_ignore_ascii_case(sub) && world::normalize_location(&a.location) == loc
    }) {
        for m in &a.catalog {
            if !models.iter().any(|(_, x)| x == m) {
                models.push((a.kind.clone(), m.clone()));
            }
        }
    }
    if models.is_empty() {
        models = catalog::region_catalog(location)
            .into_iter()
            .map(|m| ("AIServices".to_string(), m))
            .collect();
    }
    models
}

fn location_models(ctx: &Ctx, sub: &str, location: &str) -> Resp {
    let mut w = ctx.inner.world.lock();
    w.settle();
    let items: Vec<(String, Value)> = catalog_for_location(&w, sub, location)
        .iter()
        .enumerate()
        .map(|(i, (kind, m))| (paging::ordinal(i), m.location_model_json(kind)))
        .collect();
    drop(w);
    paging::page(ctx.inner, ctx.req, items)
}

fn model_capacities(ctx: &Ctx, sub: &str, location: &str) -> Resp {
    let default_quota = ctx.inner.config.lock().default_quota;
    let (Some(format), Some(name), Some(version)) = (
        ctx.req.query("modelFormat"),
        ctx.req.query("modelName"),
        ctx.req.query("modelVersion"),
    ) else {
        return arm_error(
            400,
            "BadRequest",
            "The query parameters 'modelFormat', 'modelName' and 'modelVersion' are required.",
        );
    };
    let mut w = ctx.inner.world.lock();
    w.settle();
    let models = catalog_for_location(&w, sub, location);
    let mut value = Vec::new();
    for (_, m) in models.iter().filter(|(_, m)| {
        m.format.eq_ignore_ascii_case(&format)
            && m.name.eq_ignore_ascii_case(&name)
            && m.version.eq_ignore_ascii_case(&version)
    }) {
        for sku in &m.skus {
            let usage = catalog::usage_name(&m.format, sku, &m.name);
            let available = w
                .quota_limit(sub, location, &usage, default_quota)
                .saturating_sub(w.usage(sub, location, &usage, None));
            value.push(json!({
                "id": format!("/subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/{location}/models/{}.{}.{}/skuCapacities/{sku}", m.format, m.name, m.version),
                "name": sku,
                "type": "Microsoft.CognitiveServices/locations/models/skuCapacities",
                "location": location,
                "properties": {
                    "model": {"format": m.format, "name": m.name, "version": m.version},
                    "skuName": sku,
                    "availableCapacity": available,
                    "availableFinetuneCapacity": 0,
                    "scopeId": location,
                    "scopeType": "Regional",
                },
            }));
        }
    }
    json_response(200, json!({"value": value}))
}

fn calculate_capacity(ctx: &Ctx) -> Resp {
    let body = match ctx.body(false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let tokens_per_minute: f64 = body["workloads"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .map(|w| {
                    let rpm = w["requestPerMinute"].as_f64().unwrap_or(0.0);
                    let p = &w["requestParameters"];
                    rpm * (p["avgPromptTokens"].as_f64().unwrap_or(0.0)
                        + p["avgGeneratedTokens"].as_f64().unwrap_or(0.0))
                })
                .sum()
        })
        .unwrap_or(0.0);
    let value = (tokens_per_minute / 1000.0).ceil().max(1.0) as u64;
    let deployable = value.div_ceil(50) * 50;
    json_response(
        200,
        json!({
            "model": body["model"],
            "skuName": body["skuName"],
            "estimatedCapacity": {"value": value, "deployableValue": deployable},
        }),
    )
}
