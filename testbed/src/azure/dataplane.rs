//! Azure OpenAI data plane of one account: `POST /openai/deployments/{name}/chat/completions`
//! and `/embeddings`. Authentication as Azure does it: `api-key` (key1 or key2 — a regenerated
//! key fails at once; refused with 403 AuthenticationTypeDisabled when the account has
//! `disableLocalAuth: true`) or a bearer token for `https://cognitiveservices.azure.com` whose
//! principal holds an inference role on the account (else 401 PermissionDenied naming the data
//! action). Then per deployment: 404 DeploymentNotFound until it is provisioned, 400 when
//! paused, OperationNotSupported for an operation the model or SKU does not serve (batch
//! deployments answer no direct requests), the error an admin switch set ("fail this
//! deployment"), and a request counter. The answers themselves are in `inference`.
use std::sync::Arc;

use serde_json::json;

use super::server::{Req, Resp, json_response};
use super::{Inner, LogInfo, authorization, inference};

const AUDIENCES: &[&str] = &[
    "https://cognitiveservices.azure.com",
    "https://ai.azure.com",
];

/// Per deployment: requests that reached it, and the error it answers when told to fail.
#[derive(Clone, Debug, Default)]
pub(crate) struct Serving {
    pub requests: u64,
    pub failure: Option<Failure>,
}

#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

fn error(status: u16, code: &str, message: &str) -> Resp {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

fn not_found() -> Resp {
    error(404, "404", "Resource not found")
}

/// The operations of the data plane: (path suffix, data action, capability).
const OPERATIONS: &[(&str, &str, &str)] = &[
    ("chat/completions", "chat/completions", "chatCompletion"),
    ("embeddings", "embeddings", "embeddings"),
];

pub(crate) fn handle(inner: &Arc<Inner>, account_key: &str, req: &Req) -> Resp {
    let (account_id, key1, key2, local_auth_disabled) = {
        let w = inner.world.lock();
        match w.accounts.get(account_key) {
            Some(a) => (
                a.id.clone(),
                a.key1.clone(),
                a.key2.clone(),
                a.prop("disableLocalAuth") == &json!(true),
            ),
            None => return not_found(),
        }
    };
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let (deployment, op) = match segs.as_slice() {
        ["openai", "deployments", d, rest @ ..] => (d.to_string(), rest.join("/")),
        _ => return with_log(not_found(), None, &account_id),
    };
    let operation = OPERATIONS.iter().find(|(suffix, _, _)| *suffix == op);
    let principal = match authenticate(
        inner,
        req,
        &account_id,
        &key1,
        &key2,
        local_auth_disabled,
        operation,
    ) {
        Ok(p) => p,
        Err(r) => return with_log(r, None, &account_id),
    };
    let resp = match operation {
        Some(operation) if req.method == "POST" && req.query("api-version").is_some() => {
            serve(inner, account_key, &deployment, operation, req)
        }
        _ => not_found(),
    };
    with_log(resp, Some(principal), &account_id)
}

/// The caller's principal ("api-key" or the token's client id), or Azure's refusal.
#[allow(clippy::result_large_err)]
fn authenticate(
    inner: &Inner,
    req: &Req,
    account_id: &str,
    key1: &str,
    key2: &str,
    local_auth_disabled: bool,
    operation: Option<&(&str, &str, &str)>,
) -> Result<String, Resp> {
    if let Some(key) = req.header("api-key") {
        if local_auth_disabled {
            return Err(error(
                403,
                "AuthenticationTypeDisabled",
                "Key based authentication is disabled for this resource.",
            ));
        }
        if key != key1 && key != key2 {
            return Err(error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
            ));
        }
        return Ok("api-key".to_string());
    }
    let Some(token) = req.bearer() else {
        return Err(error(
            401,
            "401",
            "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
        ));
    };
    let claims = inner.signer.validate(&token, AUDIENCES).map_err(|_| {
        error(
            401,
            "401",
            "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired.",
        )
    })?;
    let oid = claims["oid"].as_str().unwrap_or_default();
    if !authorization::grants_data_access(inner, account_id, oid) {
        let (action, route) = match operation {
            Some((suffix, action, _)) => (
                format!("Microsoft.CognitiveServices/accounts/OpenAI/deployments/{action}/action"),
                format!(
                    "{} /openai/deployments/{{deployment-id}}/{suffix}",
                    req.method
                ),
            ),
            None => (
                "Microsoft.CognitiveServices/accounts/OpenAI/*/read".to_string(),
                format!("{} {}", req.method, req.path),
            ),
        };
        return Err(error(
            401,
            "PermissionDenied",
            &format!(
                "The principal `{oid}` lacks the required data action `{action}` to perform `{route}` operation."
            ),
        ));
    }
    Ok(claims["appid"].as_str().unwrap_or(oid).to_string())
}

fn with_log(mut resp: Resp, principal: Option<String>, account_id: &str) -> Resp {
    resp.extensions_mut().insert(LogInfo {
        principal,
        account_id: Some(account_id.to_string()),
        is_write: false,
    });
    resp
}

fn serve(
    inner: &Arc<Inner>,
    account_key: &str,
    deployment: &str,
    (suffix, _, capability): &(&str, &str, &str),
    req: &Req,
) -> Resp {
    let (body, failure) = {
        let mut w = inner.world.lock();
        w.settle();
        let acc = w.accounts.get_mut(account_key).expect("account");
        let lname = deployment.to_ascii_lowercase();
        let body = match acc.deployments.get(&lname) {
            Some(d)
                if d.body["properties"]["provisioningState"] == "Succeeded"
                    || d.body["properties"]["provisioningState"] == "Accepted" =>
            {
                d.body.clone()
            }
            _ => {
                return error(
                    404,
                    "DeploymentNotFound",
                    "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
                );
            }
        };
        let serving = acc.serving.entry(lname).or_default();
        serving.requests += 1;
        (body, serving.failure.clone())
    };
    if let Some(f) = failure {
        return error(f.status, &f.code, &f.message);
    }
    if body["properties"]["deploymentState"] == "Paused" {
        return error(
            400,
            "DeploymentPaused",
            &format!(
                "The deployment '{deployment}' is paused. Resume it to accept inference requests."
            ),
        );
    }
    let model = body["properties"]["model"]["name"]
        .as_str()
        .unwrap_or("model");
    let operation = if *suffix == "embeddings" {
        "embeddings"
    } else {
        "chatCompletion"
    };
    let sku = body["sku"]["name"].as_str().unwrap_or("");
    if sku.ends_with("Batch") {
        return error(
            400,
            "OperationNotSupported",
            &format!(
                "The {operation} operation does not work with the specified deployment '{deployment}' of SKU '{sku}': batch deployments take batch jobs (POST /openai/batches), not direct requests."
            ),
        );
    }
    // A deployment of a model outside the catalog (put out of band) has no capabilities: chat.
    let caps = &body["properties"]["capabilities"];
    let served = if caps.is_object() {
        caps[*capability] == "true"
    } else {
        *capability == "chatCompletion"
    };
    if !served {
        return error(
            400,
            "OperationNotSupported",
            &format!(
                "The {operation} operation does not work with the specified model, {model}. Please choose different model and try again. You can learn more about which models can be used with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993."
            ),
        );
    }
    let request = match req.json() {
        Ok(v) if v.is_object() => v,
        _ => return error(400, "BadRequest", "The request body is not valid JSON."),
    };
    let answer = if *suffix == "embeddings" {
        inference::embeddings(&body, &request)
    } else {
        inference::chat(deployment, &body, &request)
    };
    match answer {
        Ok(v) => json_response(200, v),
        Err(message) => error(400, "BadRequest", &message),
    }
}
