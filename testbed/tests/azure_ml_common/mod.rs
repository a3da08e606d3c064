//! Shared helpers for the Azure Machine Learning emulator tests (on top of `azure_common`): ARM
//! paths of the seeded project workspace, request bodies of online endpoints, deployments,
//! serverless endpoints and marketplace subscriptions, writes that wait for their long-running
//! operation, and calls to an endpoint's data plane.
#![allow(dead_code)]
use serde_json::{Value, json};

use crate::azure_common::{Az, Reply};

pub const PHI: &str = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1";
pub const LLAMA_70B: &str = "azureml://registries/azureml/models/Llama-3.3-70B-Instruct/versions/4";
pub const MISTRAL: &str = "azureml://registries/azureml-mistral/models/Mistral-Large-2411";
pub const COHERE: &str = "azureml://registries/azureml-cohere/models/Cohere-command-r-plus-08-2024";
pub const NC24: &str = "Standard_NC24ads_A100_v4";
pub const NC48: &str = "Standard_NC48ads_A100_v4";
pub const NC96: &str = "Standard_NC96ads_A100_v4";
pub const A100_FAMILY: &str = "standardNCADSA100v4Family";

/// ARM path (no leading slash) of the seeded project workspace.
pub fn ws_path(az: &Az) -> String {
    az.emu
        .ml_env()
        .workspace_id()
        .trim_start_matches('/')
        .to_string()
}

pub fn endpoint_path(az: &Az, name: &str) -> String {
    format!("{}/onlineEndpoints/{name}", ws_path(az))
}

pub fn endpoint_id(az: &Az, name: &str) -> String {
    format!("/{}", endpoint_path(az, name))
}

pub fn deployment_path(az: &Az, endpoint: &str, name: &str) -> String {
    format!("{}/deployments/{name}", endpoint_path(az, endpoint))
}

pub fn serverless_path(az: &Az, name: &str) -> String {
    format!("{}/serverlessEndpoints/{name}", ws_path(az))
}

pub fn marketplace_path(az: &Az, name: &str) -> String {
    format!("{}/marketplaceSubscriptions/{name}", ws_path(az))
}

pub fn endpoint_body(auth_mode: &str, traffic: Value) -> Value {
    json!({"location": "eastus", "properties": {"authMode": auth_mode, "traffic": traffic}})
}

pub fn online_deployment_body(model: &str, instance_type: &str, count: u32) -> Value {
    json!({
        "location": "eastus",
        "sku": {"name": "Default", "capacity": count},
        "properties": {"endpointComputeType": "Managed", "model": model, "instanceType": instance_type},
    })
}

pub fn serverless_body(model_id: &str) -> Value {
    json!({"location": "eastus", "sku": {"name": "Consumption"}, "properties": {"authMode": "Key", "modelSettings": {"modelId": model_id}}})
}

pub fn marketplace_body(model_id: &str) -> Value {
    json!({"properties": {"modelId": model_id}})
}

/// Waits for the operation of a 2xx write (its Azure-AsyncOperation URL); returns its status.
pub async fn settle(az: &Az, reply: &Reply) -> String {
    assert!(
        reply.status < 300,
        "write failed: {} {:?}",
        reply.status,
        reply.body
    );
    match reply.header("azure-asyncoperation") {
        Some(url) => az.wait_operation(&url).await["status"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        None => "Succeeded".into(),
    }
}

/// PUT (or PATCH/DELETE) and wait for the operation to succeed; returns the first reply.
pub async fn write_ok(az: &Az, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let r = az.arm(method, path, body).await;
    assert_eq!(settle(az, &r).await, "Succeeded", "{method} {path}");
    r
}

/// PUT of an online endpoint (not waited for).
pub async fn put_endpoint(az: &Az, name: &str, auth_mode: &str, traffic: Value) -> Reply {
    az.arm(
        "PUT",
        &endpoint_path(az, name),
        Some(&endpoint_body(auth_mode, traffic)),
    )
    .await
}

/// PUT of an online deployment (not waited for).
pub async fn put_deployment(
    az: &Az,
    endpoint: &str,
    name: &str,
    model: &str,
    instance_type: &str,
    count: u32,
) -> Reply {
    let body = online_deployment_body(model, instance_type, count);
    az.arm("PUT", &deployment_path(az, endpoint, name), Some(&body))
        .await
}

/// Creates (or updates) an online endpoint and waits for it.
pub async fn create_endpoint(az: &Az, name: &str, auth_mode: &str, traffic: Value) -> Reply {
    let r = put_endpoint(az, name, auth_mode, traffic).await;
    assert_eq!(settle(az, &r).await, "Succeeded", "endpoint {name}");
    r
}

/// Creates (or updates) an online deployment and waits for it.
pub async fn create_deployment(
    az: &Az,
    endpoint: &str,
    name: &str,
    model: &str,
    instance_type: &str,
    count: u32,
) -> Reply {
    let r = put_deployment(az, endpoint, name, model, instance_type, count).await;
    assert_eq!(
        settle(az, &r).await,
        "Succeeded",
        "deployment {endpoint}/{name}"
    );
    r
}

/// The status of an ARM call without a body.
pub async fn status(az: &Az, method: &str, path: &str) -> u16 {
    az.arm(method, path, None).await.status
}

/// Creates endpoint `name` (authMode Key) and deployment `deployment` of `model` on
/// `instance_type` x `count` with 100 % of the traffic; returns the scoring URI.
pub async fn endpoint_with_deployment(
    az: &Az,
    name: &str,
    deployment: &str,
    model: &str,
    instance_type: &str,
    count: u32,
) -> String {
    create_endpoint(az, name, "Key", json!({})).await;
    create_deployment(az, name, deployment, model, instance_type, count).await;
    let r = create_endpoint(az, name, "Key", json!({ deployment: 100 })).await;
    r.body["properties"]["scoringUri"]
        .as_str()
        .expect("scoringUri")
        .to_string()
}

/// POST to a data-plane URL with `Authorization: Bearer <credential>` and optional headers.
pub async fn post(
    az: &Az,
    url: &str,
    credential: Option<&str>,
    headers: &[(&str, &str)],
    body: &Value,
) -> Reply {
    let mut req = az.http.post(url).json(body);
    if let Some(c) = credential {
        req = req.bearer_auth(c);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("data-plane request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

pub fn chat(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}
