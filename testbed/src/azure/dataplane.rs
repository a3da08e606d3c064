//! Azure OpenAI data plane of one account: `POST /openai/deployments/{name}/chat/completions`
//! with `api-key` (key1 or key2) or a bearer token for `https://cognitiveservices.azure.com`;
//! a small deterministic completion; 404 DeploymentNotFound; 401 for a wrong or rotated key.
use std::sync::Arc;

use serde_json::{Value, json};

use super::server::{Req, Resp, json_response};
use super::{Inner, LogInfo};

const AUDIENCES: &[&str] = &[
    "https://cognitiveservices.azure.com",
    "https://ai.azure.com",
];

fn error(status: u16, code: &str, message: &str) -> Resp {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

pub(crate) fn handle(inner: &Arc<Inner>, account_key: &str, req: &Req) -> Resp {
    let (account_id, key1, key2) = {
        let w = inner.world.lock();
        match w.accounts.get(account_key) {
            Some(a) => (a.id.clone(), a.key1.clone(), a.key2.clone()),
            None => return error(404, "404", "Resource not found"),
        }
    };
    let principal;
    if let Some(key) = req.header("api-key") {
        if key != key1 && key != key2 {
            return with_log(
                error(
                    401,
                    "401",
                    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
                ),
                None,
                &account_id,
            );
        }
        principal = Some("api-key".to_string());
    } else if let Some(token) = req.bearer() {
        match inner.signer.validate(&token, AUDIENCES) {
            Ok(c) => principal = c["appid"].as_str().map(str::to_string),
            Err(_) => {
                return with_log(
                    error(
                        401,
                        "PermissionDenied",
                        "Principal does not have access to API/Operation, or the access token is invalid or expired.",
                    ),
                    None,
                    &account_id,
                );
            }
        }
    } else {
        return with_log(
            error(
                401,
                "401",
                "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
            ),
            None,
            &account_id,
        );
    }
    let resp = route(inner, account_key, req);
    with_log(resp, principal, &account_id)
}

fn with_log(mut resp: Resp, principal: Option<String>, account_id: &str) -> Resp {
    resp.extensions_mut().insert(LogInfo {
        principal,
        account_id: Some(account_id.to_string()),
        is_write: false,
    });
    resp
}

fn route(inner: &Arc<Inner>, account_key: &str, req: &Req) -> Resp {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let (deployment, op) = match segs.as_slice() {
        ["openai", "deployments", d, rest @ ..] => (d.to_string(), rest.join("/")),
        _ => return error(404, "404", "Resource not found"),
    };
    if req.query("api-version").is_none() {
        return error(404, "404", "Resource not found");
    }
    let body = {
        let mut w = inner.world.lock();
        w.settle();
        let acc = &w.accounts[account_key];
        let d = acc.deployments.get(&deployment.to_ascii_lowercase());
        match d {
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
        }
    };
    if body["properties"]["deploymentState"] == "Paused" {
        return error(
            400,
            "DeploymentPaused",
            &format!(
                "The deployment '{deployment}' is paused. Resume it to accept inference requests."
            ),
        );
    }
    if req.method != "POST" || op != "chat/completions" {
        return error(404, "404", "Resource not found");
    }
    let request = match req.json() {
        Ok(v) if v.is_object() => v,
        _ => return error(400, "BadRequest", "The request body is not valid JSON."),
    };
    let Some(messages) = request["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error(400, "BadRequest", "'messages' is a required property");
    };
    let last = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| match &m["content"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(parts) => parts
                .iter()
                .find_map(|p| p["text"].as_str().map(str::to_string)),
            _ => None,
        })
        .unwrap_or_default();
    let model = &body["properties"]["model"];
    let model_name = model["name"].as_str().unwrap_or("model");
    let version = model["version"].as_str().unwrap_or("");
    let echo: String = last.chars().take(200).collect();
    let content =
        format!("Hello from deployment '{deployment}' ({model_name} {version}). You said: {echo}");
    let prompt_tokens = messages
        .iter()
        .map(|m| m["content"].to_string().split_whitespace().count() as u64 + 4)
        .sum::<u64>();
    let completion_tokens = content.split_whitespace().count() as u64;
    let created = chrono::Utc::now().timestamp();
    json_response(
        200,
        json!({
            "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            "object": "chat.completion",
            "created": created,
            "model": format!("{model_name}-{version}"),
            "system_fingerprint": "fp_testbed",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": null},
                "finish_reason": "stop",
                "logprobs": null,
            }],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }),
    )
}
