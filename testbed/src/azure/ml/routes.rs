//! ARM entry point of `Microsoft.MachineLearningServices`: bearer-token check (shared with the
//! Cognitive Services surface), api-version check (2026-09-01, validated against the spec, and
//! the older versions Microsoft's `azure-ai-ml` pins, served with the same shapes), and the
//! dispatch of every path to its module.
use std::sync::Arc;

use super::errors::{arm_error, not_found};
use super::state::{Scope, key, workspace_id};
use super::{
    deployments, endpoints, marketplace, operations, quota, registry, resource, serverless,
    workspaces,
};
use crate::azure::server::{Req, Resp};
use crate::azure::{Inner, arm};

/// The stable api-version whose spec is in `azure-specs-ml`.
pub const SPEC_API_VERSION: &str = "2026-09-01";

/// Older api-versions accepted as ARM does: those `azure-ai-ml` pins (online endpoints
/// 2022-02-01-preview, online deployments 2023-04-01-preview, serverless endpoints and
/// marketplace subscriptions 2024-01-01-preview, workspaces 2024-10-01-preview, ...), its
/// generated client's default (2025-12-01), the registry data plane's 2021-10-01-dataplanepreview
/// and the stable versions of the spec's examples.
pub const OLDER_API_VERSIONS: &[&str] = &[
    "2021-03-01-preview",
    "2021-10-01-dataplanepreview",
    "2022-02-01-preview",
    "2022-05-01",
    "2022-10-01",
    "2022-10-01-preview",
    "2023-02-01-preview",
    "2023-04-01",
    "2023-04-01-preview",
    "2023-06-01-preview",
    "2023-08-01-preview",
    "2023-10-01",
    "2024-01-01-preview",
    "2024-04-01",
    "2024-04-01-preview",
    "2024-10-01",
    "2024-10-01-preview",
    "2025-01-01-preview",
    "2025-12-01",
    "2026-03-01",
    "2026-07-01",
];

pub(crate) fn accepts(api_version: &str) -> bool {
    api_version == SPEC_API_VERSION || OLDER_API_VERSIONS.contains(&api_version)
}

/// What every handler gets.
pub(crate) struct Ctx<'a> {
    pub inner: &'a Arc<Inner>,
    pub req: &'a Req,
    pub api_version: String,
    pub principal: String,
    /// Reached through registry discovery (a registry's management front end), not ARM.
    pub mfe: bool,
}

/// Audience of Azure Machine Learning's own services (registry discovery and management front
/// end), which take ARM tokens too.
const AML_AUDIENCE: &str = "https://ml.azure.com";

/// ARM's token check; the registry services also accept an `https://ml.azure.com` token.
#[allow(clippy::result_large_err)]
fn authenticate(inner: &Inner, req: &Req, mfe: bool) -> Result<serde_json::Value, Resp> {
    let arm = arm::authenticate(inner, req);
    match (&arm, mfe, req.bearer()) {
        (Err(_), true, Some(token)) => inner.signer.validate(&token, &[AML_AUDIENCE]).or(arm),
        _ => arm,
    }
}

pub(crate) fn handle(inner: &Arc<Inner>, req: &Req) -> Resp {
    let is_write = req.method != "GET" && req.method != "HEAD";
    // A registry's management front end serves the ARM paths under its own prefix.
    let path = req
        .path
        .strip_prefix(super::MFE_PREFIX)
        .unwrap_or(&req.path);
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(arm::percent_decode)
        .collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let resource = resource_of(&segs, &lower);
    let mfe =
        path.len() != req.path.len() || lower.first().is_some_and(|s| s == "registrymanagement");
    let claims = match authenticate(inner, req, mfe) {
        Ok(c) => c,
        Err(r) => return arm::finish(r, None, resource, is_write),
    };
    let principal = claims["appid"].as_str().unwrap_or_default().to_string();
    let p = Some(principal.clone());
    if let ["registrymanagement", "v1.0", "registries", _, "discovery"] = lower
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        return arm::finish(registry::discovery(inner, &segs[3]), p, None, false);
    }
    let api_version = match req.query("api-version") {
        None => {
            let r = arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
            return arm::finish(r, p, resource, is_write);
        }
        Some(v) if !accepts(&v) => {
            let r = arm_error(
                400,
                "NoRegisteredProviderFound",
                &format!(
                    "No registered resource provider found for location 'eastus' and API version '{v}' for type '{}'. The supported api-versions are '{SPEC_API_VERSION}, {}'.",
                    resource_type(&lower),
                    OLDER_API_VERSIONS.join(", ")
                ),
            );
            return arm::finish(r, p, resource, is_write);
        }
        Some(v) => v,
    };
    let ctx = Ctx {
        inner,
        req,
        api_version,
        principal,
        mfe,
    };
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let resp = match l.as_slice() {
        [
            "subscriptions",
            _,
            "providers",
            "microsoft.machinelearningservices",
            rest @ ..,
        ] => subscription_level(&ctx, &segs[1], rest, &segs[4..]),
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.machinelearningservices",
            rest @ ..,
        ] => group_level(&ctx, &segs[1], &segs[3], rest, &segs[6..]),
        _ => unknown_type(&ctx, &l),
    };
    arm::finish(resp, p, resource, is_write)
}

/// ARM id of the online/serverless endpoint or workspace a path concerns (for the request log).
fn resource_of(segs: &[String], lower: &[String]) -> Option<String> {
    if lower.len() < 8
        || lower[0] != "subscriptions"
        || lower[2] != "resourcegroups"
        || lower[6] != "workspaces"
    {
        return None;
    }
    let ws = workspace_id(&segs[1], &segs[3], &segs[7]);
    match lower.get(8).map(String::as_str) {
        Some("onlineendpoints") if segs.len() > 9 => {
            Some(format!("{ws}/onlineEndpoints/{}", segs[9]))
        }
        Some("serverlessendpoints") if segs.len() > 9 => {
            Some(format!("{ws}/serverlessEndpoints/{}", segs[9]))
        }
        _ => Some(ws),
    }
}

fn resource_type(lower: &[String]) -> String {
    let types = [
        "deployments",
        "onlineendpoints",
        "serverlessendpoints",
        "marketplacesubscriptions",
        "registries",
        "locations",
    ];
    types
        .iter()
        .find(|t| lower.iter().any(|s| s == *t))
        .map(|t| t.to_string())
        .unwrap_or_else(|| "workspaces".into())
}

fn unknown_type(ctx: &Ctx, rest: &[&str]) -> Resp {
    arm_error(
        404,
        "InvalidResourceType",
        &format!(
            "The resource type '{}' could not be found in the namespace 'Microsoft.MachineLearningServices' for api version '{}'.",
            rest.iter()
                .rev()
                .find(|s| s.chars().all(|c| c.is_ascii_alphabetic()))
                .unwrap_or(&""),
            ctx.api_version
        ),
    )
}

fn method_not_allowed() -> Resp {
    arm_error(
        405,
        "MethodNotAllowed",
        "The requested method is not allowed.",
    )
}

fn subscription_level(ctx: &Ctx, sub: &str, rest: &[&str], raw: &[String]) -> Resp {
    match (ctx.req.method.as_str(), rest) {
        ("GET", ["workspaces"]) => workspaces::list(ctx, sub, None),
        ("GET", ["locations", _, "usages"]) => quota::usages(ctx, sub, &raw[1]),
        ("GET", ["locations", _, "vmsizes"]) => quota::vm_sizes(ctx, &raw[1]),
        ("GET", ["locations", _, "mfeoperationsstatus", _]) => operations::status(ctx, &raw[3]),
        ("GET", ["locations", _, "mfeoperationresults", _]) => operations::result(ctx, &raw[3]),
        _ => unknown_type(ctx, rest),
    }
}

fn group_level(ctx: &Ctx, sub: &str, rg: &str, rest: &[&str], raw: &[String]) -> Resp {
    let m = ctx.req.method.as_str();
    match (m, rest) {
        ("GET", ["workspaces"]) => workspaces::list(ctx, sub, Some(rg)),
        ("GET", ["workspaces", _]) => workspaces::get(ctx, sub, rg, &raw[1]),
        (_, ["workspaces", _]) => method_not_allowed(),
        (_, ["workspaces", _, tail @ ..]) => {
            let scope = {
                let mut w = ctx.inner.ml.world.lock();
                w.settle();
                match w.workspace(sub, rg, &raw[1]) {
                    Some(ws) => ws.scope.clone(),
                    None => return not_found(rg, &format!("workspaces/{}", raw[1])),
                }
            };
            workspace_level(ctx, &scope, tail, &raw[2..])
        }
        ("GET", ["registries", _, "models"]) => registry::containers(ctx, sub, rg, &raw[1]),
        ("GET", ["registries", _, "models", _]) => {
            registry::container(ctx, sub, rg, &raw[1], &raw[3])
        }
        ("GET", ["registries", _, "models", _, "versions"]) => {
            registry::versions(ctx, sub, rg, &raw[1], &raw[3])
        }
        ("GET", ["registries", _, "models", _, "versions", _]) => {
            registry::version(ctx, sub, rg, &raw[1], &raw[3], &raw[5])
        }
        _ => unknown_type(ctx, rest),
    }
}

fn workspace_level(ctx: &Ctx, scope: &Scope, rest: &[&str], raw: &[String]) -> Resp {
    let m = ctx.req.method.as_str();
    match (m, rest) {
        ("GET", ["onlineendpoints"]) => resource::list(ctx, scope, |w| &w.endpoints),
        (_, ["onlineendpoints", _]) => match m {
            "GET" => resource::get(ctx, scope, &raw[1], |w| &w.endpoints),
            "PUT" => endpoints::put(ctx, scope, &raw[1]),
            "PATCH" => endpoints::patch(ctx, scope, &raw[1]),
            "DELETE" => endpoints::delete(ctx, scope, &raw[1]),
            _ => method_not_allowed(),
        },
        ("POST", ["onlineendpoints", _, "listkeys"]) => endpoints::list_keys(ctx, scope, &raw[1]),
        ("POST", ["onlineendpoints", _, "regeneratekeys"]) => {
            endpoints::regenerate_keys(ctx, scope, &raw[1])
        }
        ("POST", ["onlineendpoints", _, "token"]) => endpoints::token(ctx, scope, &raw[1]),
        ("GET", ["onlineendpoints", _, "deployments"]) => deployments::list(ctx, scope, &raw[1]),
        (_, ["onlineendpoints", _, "deployments", _]) => match m {
            "GET" => deployments::get(ctx, scope, &raw[1], &raw[3]),
            "PUT" => deployments::put(ctx, scope, &raw[1], &raw[3], false),
            "PATCH" => deployments::put(ctx, scope, &raw[1], &raw[3], true),
            "DELETE" => deployments::delete(ctx, scope, &raw[1], &raw[3]),
            _ => method_not_allowed(),
        },
        ("GET", ["onlineendpoints", _, "deployments", _, "skus"]) => {
            deployments::skus(ctx, scope, &raw[1], &raw[3])
        }
        ("GET", ["serverlessendpoints"]) => resource::list(ctx, scope, |w| &w.serverless),
        (_, ["serverlessendpoints", _]) => match m {
            "GET" => resource::get(ctx, scope, &raw[1], |w| &w.serverless),
            "PUT" => serverless::put(ctx, scope, &raw[1], false),
            "PATCH" => serverless::put(ctx, scope, &raw[1], true),
            "DELETE" => serverless::delete(ctx, scope, &raw[1]),
            _ => method_not_allowed(),
        },
        ("POST", ["serverlessendpoints", _, "listkeys"]) => {
            serverless::list_keys(ctx, scope, &raw[1])
        }
        ("POST", ["serverlessendpoints", _, "regeneratekeys"]) => {
            serverless::regenerate_keys(ctx, scope, &raw[1])
        }
        ("GET", ["marketplacesubscriptions"]) => resource::list(ctx, scope, |w| &w.subscriptions),
        (_, ["marketplacesubscriptions", _]) => match m {
            "GET" => resource::get(ctx, scope, &raw[1], |w| &w.subscriptions),
            "PUT" => marketplace::put(ctx, scope, &raw[1]),
            "DELETE" => marketplace::delete(ctx, scope, &raw[1]),
            _ => method_not_allowed(),
        },
        _ => unknown_type(ctx, rest),
    }
}

/// Lower-case ARM id of a workspace child (`{workspace}/{collection}/{name}`).
pub(crate) fn child_key(scope: &Scope, collection: &str, name: &str) -> String {
    key(&format!("{}/{collection}/{name}", scope.workspace_id()))
}
