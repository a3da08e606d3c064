//! Data planes of the ML endpoints, one loopback listener per endpoint.
//! Online endpoint: `POST /score` (and the OpenAI-style `/v1/chat/completions`) with
//! `Authorization: Bearer <key | AML token | Entra token>` per the endpoint's `authMode`;
//! routed to the deployment named by `azureml-model-deployment`, else by the traffic split
//! (smooth weighted round-robin); answers as a chat model, tells which deployment served in
//! the `azureml-model-deployment` response header, and records every request.
//! Serverless endpoint: `POST /chat/completions` (also `/v1/...`, `/models/...`) with the key
//! (`Authorization: Bearer` or `api-key`) or an Entra token, and `GET /info`.
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::endpoints::aml_token_audience;
use super::errors::arm_error;
use super::state::{OnlineEndpoint, Served, ServerlessEndpoint};
use crate::azure::server::{Req, Resp, json_response, with_header};
use crate::azure::{Inner, LogInfo};

/// Entra audiences of the ML data planes (Azure's `https://ml.azure.com`).
const AAD_AUDIENCES: &[&str] = &[
    "https://ml.azure.com",
    "https://cognitiveservices.azure.com",
];

pub(crate) fn handle(inner: &Arc<Inner>, key: &str, req: &Req) -> Resp {
    let (resp, id) = {
        let mut w = inner.ml.world.lock();
        w.settle();
        if w.endpoints.contains_key(key) {
            let (resp, deployment, id) =
                online(inner, w.endpoints.get_mut(key).expect("endpoint"), req);
            if req.path.trim_end_matches('/') != "/swagger.json" {
                w.served.push(Served {
                    endpoint: id.clone(),
                    deployment,
                    status: resp.status().as_u16(),
                    at: Instant::now(),
                });
            }
            (resp, Some(id))
        } else if let Some(s) = w.serverless.get(key) {
            (
                serverless(inner, s, req),
                s.body["id"].as_str().map(str::to_string),
            )
        } else {
            (
                arm_error(404, "NotFound", "The endpoint does not exist."),
                None,
            )
        }
    };
    let mut resp = resp;
    resp.extensions_mut().insert(LogInfo {
        principal: None,
        account_id: id,
        is_write: false,
    });
    resp
}

/// Whether the bearer / api-key credential of `req` is accepted.
fn authorized(inner: &Inner, req: &Req, keys: &[&str], token_audiences: &[String]) -> bool {
    let presented = req.bearer().or_else(|| req.header("api-key"));
    let Some(credential) = presented else {
        return false;
    };
    if keys.iter().any(|k| !k.is_empty() && *k == credential) {
        return true;
    }
    let auds: Vec<&str> = token_audiences.iter().map(String::as_str).collect();
    !auds.is_empty() && inner.signer.validate(&credential, &auds).is_ok()
}

/// The last user message of a chat-style body (`messages`, or the `input_data.input_string`
/// of Azure ML's curated chat containers), else the body's `prompt`/`inputs` text.
fn prompt(body: &Value) -> String {
    let messages = body["messages"]
        .as_array()
        .or_else(|| body["input_data"]["input_string"].as_array());
    let text = messages.and_then(|m| {
        m.iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| match &m["content"] {
                Value::String(s) => Some(s.clone()),
                Value::Array(parts) => parts
                    .iter()
                    .find_map(|p| p["text"].as_str().map(str::to_string)),
                _ => None,
            })
    });
    text.or_else(|| body["prompt"].as_str().map(str::to_string))
        .or_else(|| body["inputs"].as_str().map(str::to_string))
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

fn chat_completion(model: &str, content: &str, body: &Value) -> Value {
    let prompt_tokens = body.to_string().split_whitespace().count() as u64;
    let completion_tokens = content.split_whitespace().count() as u64;
    json!({
        "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "tool_calls": null},
            "finish_reason": "stop",
            "logprobs": null,
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    })
}

/// Picks the deployment for a request without a deployment header (smooth weighted
/// round-robin over the serving deployments with positive traffic).
fn route(e: &mut OnlineEndpoint) -> Option<String> {
    let weights: Vec<(String, i64)> = e
        .traffic()
        .into_iter()
        .map(|(d, w)| (d.to_ascii_lowercase(), w))
        .filter(|(d, w)| *w > 0 && e.deployments.get(d).is_some_and(|x| x.serves()))
        .collect();
    let total: i64 = weights.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    for (d, w) in &weights {
        *e.rr.entry(d.clone()).or_insert(0) += w;
    }
    let (best, _) = weights
        .iter()
        .max_by_key(|(d, _)| (e.rr[d], std::cmp::Reverse(d.clone())))?
        .clone();
    *e.rr.get_mut(&best).expect("weight") -= total;
    Some(best)
}

/// Answers one online-endpoint request; (response, deployment that served, endpoint id).
fn online(inner: &Inner, e: &mut OnlineEndpoint, req: &Req) -> (Resp, Option<String>, String) {
    let id = e.id.clone();
    let path = req.path.trim_end_matches('/').to_string();
    if req.method == "GET" && path == "/swagger.json" {
        let doc = json!({"swagger": "2.0", "info": {"title": e.name, "version": "1.0"}, "paths": {"/score": {"post": {"responses": {"200": {"description": "OK"}}}}}});
        return (json_response(200, doc), None, id);
    }
    if req.method != "POST" || !(path == "/score" || path == "/v1/chat/completions") {
        return (
            arm_error(
                404,
                "NotFound",
                "Not found: the scoring route is POST /score.",
            ),
            None,
            id,
        );
    }
    let (keys, audiences): (Vec<&str>, Vec<String>) = match e.auth_mode() {
        "Key" => (
            vec![e.primary_key.as_str(), e.secondary_key.as_str()],
            vec![],
        ),
        "AMLToken" => (vec![], vec![aml_token_audience(&id)]),
        _ => (
            vec![],
            AAD_AUDIENCES.iter().map(|a| a.to_string()).collect(),
        ),
    };
    if !authorized(inner, req, &keys, &audiences) {
        let r = arm_error(
            401,
            "Unauthorized",
            &format!(
                "Unauthorized: the request to endpoint '{}' lacks a valid credential for its authMode {} (Authorization: Bearer <key or token>).",
                e.name,
                e.auth_mode()
            ),
        );
        return (r, None, id);
    }
    let target = match req
        .header("azureml-model-deployment")
        .filter(|d| !d.is_empty())
    {
        Some(d) => match e.deployments.get(&d.to_ascii_lowercase()) {
            Some(x) if x.serves() => Some(d.to_ascii_lowercase()),
            _ => {
                let r = arm_error(
                    404,
                    "DeploymentNotFound",
                    &format!(
                        "Deployment '{d}' of endpoint '{}' was not found or is not ready to serve.",
                        e.name
                    ),
                );
                return (r, None, id);
            }
        },
        None => route(e),
    };
    let Some(deployment) = target else {
        let r = arm_error(
            404,
            "NoValidDeployments",
            "No valid deployments to route to. Please check that the endpoint has at least one deployment with positive weight values or use a deployment specific header to route.",
        );
        return (r, None, id);
    };
    let body = match req.json() {
        Ok(v) if v.is_object() => v,
        _ => {
            return (
                arm_error(400, "BadRequest", "The request body must be a JSON object."),
                Some(deployment),
                id,
            );
        }
    };
    let d = &e.deployments[&deployment];
    let name = d.body["name"].as_str().unwrap_or(&deployment).to_string();
    let model = d.body["properties"]["model"].as_str().unwrap_or("model");
    let content = format!(
        "Hello from deployment '{name}' of endpoint '{}' ({model} on {} x{}). You said: {}",
        e.name,
        d.instance_type(),
        d.instance_count(),
        prompt(&body)
    );
    let short_model = model
        .rsplit("/models/")
        .next()
        .unwrap_or(model)
        .replace("/versions/", ":");
    let answer = if body.get("input_data").is_some() {
        json!({"output": content})
    } else {
        chat_completion(&short_model, &content, &body)
    };
    let resp = with_header(
        json_response(200, answer),
        "azureml-model-deployment",
        &name,
    );
    (resp, Some(name), id)
}

fn serverless(inner: &Inner, s: &ServerlessEndpoint, req: &Req) -> Resp {
    let path = req.path.trim_end_matches('/');
    let path = path
        .strip_prefix("/v1")
        .or_else(|| path.strip_prefix("/models"))
        .unwrap_or(path);
    let props = &s.body["properties"];
    let (keys, audiences): (Vec<&str>, Vec<String>) =
        match props["authMode"].as_str().unwrap_or("Key") {
            "AAD" => (
                vec![],
                AAD_AUDIENCES.iter().map(|a| a.to_string()).collect(),
            ),
            "KeyAndAAD" => (
                vec![s.primary_key.as_str(), s.secondary_key.as_str()],
                AAD_AUDIENCES.iter().map(|a| a.to_string()).collect(),
            ),
            _ => (
                vec![s.primary_key.as_str(), s.secondary_key.as_str()],
                vec![],
            ),
        };
    if !authorized(inner, req, &keys, &audiences) {
        return arm_error(
            401,
            "Unauthorized",
            "Access denied due to invalid or missing key. Send the endpoint's key as 'Authorization: Bearer <key>' or 'api-key: <key>'.",
        );
    }
    if props["endpointState"] != "Online" {
        return arm_error(
            404,
            "EndpointNotReady",
            &format!(
                "Serverless endpoint '{}' is not online (state {}).",
                s.name, props["endpointState"]
            ),
        );
    }
    let model_id = props["modelSettings"]["modelId"].as_str().unwrap_or("");
    let model = model_id.rsplit('/').next().unwrap_or(model_id);
    match (req.method.as_str(), path) {
        ("GET", "/info") => json_response(
            200,
            json!({"model_name": model, "model_type": "chat-completion", "model_provider_name": model_id}),
        ),
        ("POST", "/chat/completions") => {
            let body = match req.json() {
                Ok(v) if v.is_object() => v,
                _ => {
                    return arm_error(400, "BadRequest", "The request body must be a JSON object.");
                }
            };
            if body["messages"].as_array().is_none_or(|m| m.is_empty()) {
                return arm_error(400, "BadRequest", "'messages' is a required property");
            }
            let content = format!(
                "Hello from serverless endpoint '{}' ({model}). You said: {}",
                s.name,
                prompt(&body)
            );
            json_response(200, chat_completion(model, &content, &body))
        }
        _ => arm_error(
            404,
            "NotFound",
            "Not found: the inference routes are POST /chat/completions and GET /info.",
        ),
    }
}
