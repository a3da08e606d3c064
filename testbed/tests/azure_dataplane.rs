//! Azure OpenAI data plane on the Azure emulator: chat completions with api-key (either key)
//! or bearer auth, deterministic answer, DeploymentNotFound, 401 for wrong and rotated keys,
//! the account endpoint ARM reports; embeddings (float and base64), operations a model or a
//! batch SKU does not serve, the "fail this deployment" switch and the request counter.
mod azure_common;

use azure_common::*;
use serde_json::{Value, json};

async fn chat(
    az: &Az,
    endpoint: &str,
    deployment: &str,
    key: Option<&str>,
    bearer: Option<&str>,
) -> (u16, Value) {
    let mut req = az
        .http
        .post(format!(
            "{endpoint}openai/deployments/{deployment}/chat/completions?api-version=2024-10-21"
        ))
        .json(&json!({"messages": [{"role": "user", "content": "ping"}]}));
    if let Some(k) = key {
        req = req.header("api-key", k);
    }
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn chat_completion_with_keys_tokens_and_rotation() {
    let az = Az::default().await;
    let account = az.emu.default_account_id();
    az.arm(
        "PUT",
        &az.deployment_path("chat"),
        Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
    )
    .await;
    let acc = az.arm("GET", &az.account_path(), None).await;
    let endpoint = acc.body["properties"]["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(endpoint, az.env.openai_endpoint);
    let keys = az
        .arm("POST", &format!("{}/listKeys", az.account_path()), None)
        .await;
    let (k1, k2) = (
        keys.body["key1"].as_str().unwrap().to_string(),
        keys.body["key2"].as_str().unwrap().to_string(),
    );
    assert_eq!(az.emu.account_keys(&account), (k1.clone(), k2.clone()));

    let (s, body) = chat(&az, &endpoint, "chat", Some(&k1), None).await;
    assert_eq!(s, 200, "{body:?}");
    assert_eq!(body["object"], "chat.completion");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        content,
        "Hello from deployment 'chat' (gpt-4o-mini 2024-07-18). You said: ping"
    );
    assert_eq!(chat(&az, &endpoint, "chat", Some(&k2), None).await.0, 200);
    // A token works once its principal holds an inference role on the account (azure_rbac.rs
    // tests the refusals).
    let token = az.token("https://cognitiveservices.azure.com").await;
    az.emu
        .assign_role(&account, &token_oid(&token), OPENAI_USER);
    assert_eq!(
        chat(&az, &endpoint, "chat", None, Some(&token)).await.0,
        200
    );
    let arm_token = az.token("https://management.azure.com").await;
    let (s, body) = chat(&az, &endpoint, "chat", None, Some(&arm_token)).await;
    assert_eq!(s, 401);
    assert_eq!(
        body["error"]["message"],
        "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired."
    );

    let (s, body) = chat(&az, &endpoint, "chat", Some("wrong"), None).await;
    assert_eq!(s, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid subscription key")
    );
    let (s, body) = chat(&az, &endpoint, "nope", Some(&k1), None).await;
    assert_eq!(s, 404);
    assert_eq!(body["error"]["code"], "DeploymentNotFound");

    // Rotation through ARM: the old key1 stops working, key2 still works.
    let regen = az
        .arm(
            "POST",
            &format!("{}/regenerateKey", az.account_path()),
            Some(&json!({"keyName": "Key1"})),
        )
        .await;
    assert_eq!(regen.status, 200);
    assert_ne!(regen.body["key1"], k1.as_str());
    assert_eq!(chat(&az, &endpoint, "chat", Some(&k1), None).await.0, 401);
    assert_eq!(chat(&az, &endpoint, "chat", Some(&k2), None).await.0, 200);
    // Rotation through the handle.
    az.emu.regenerate_key(&account, false);
    assert_eq!(chat(&az, &endpoint, "chat", Some(&k2), None).await.0, 401);
}

#[tokio::test]
async fn deployment_being_created_is_not_served_yet() {
    let az = Az::start(testbed::azure::AzureConfig {
        provisioning_delay: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("late"),
            Some(&deployment_body("gpt-4o", None, "Standard", 1)),
        )
        .await;
    let (k1, _) = az.emu.account_keys(&az.emu.default_account_id());
    assert_eq!(
        chat(&az, &az.env.openai_endpoint, "late", Some(&k1), None)
            .await
            .0,
        404
    );
    az.wait_operation(&r.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(
        chat(&az, &az.env.openai_endpoint, "late", Some(&k1), None)
            .await
            .0,
        200
    );
}

async fn post(az: &Az, deployment: &str, op: &str, body: Value) -> (u16, Value) {
    let (k1, _) = az.emu.account_keys(&az.emu.default_account_id());
    let r = az
        .http
        .post(format!(
            "{}openai/deployments/{deployment}/{op}?api-version=2024-10-21",
            az.env.openai_endpoint
        ))
        .header("api-key", k1)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn put_deployment(az: &Az, name: &str, model: &str, sku: &str) {
    az.emu.put_deployment_out_of_band(
        &az.emu.default_account_id(),
        name,
        deployment_body(model, None, sku, 1),
    );
}

#[tokio::test]
async fn embeddings_in_floats_and_base64_and_operations_a_deployment_does_not_serve() {
    use base64::Engine;
    let az = Az::default().await;
    put_deployment(&az, "embed", "text-embedding-3-small", "GlobalStandard");
    put_deployment(&az, "chat", "gpt-4o-mini", "GlobalStandard");
    put_deployment(&az, "batch", "gpt-4o-mini", "GlobalBatch");
    let (s, v) = post(
        &az,
        "embed",
        "embeddings",
        json!({"input": ["a", "b"], "dimensions": 8}),
    )
    .await;
    assert_eq!(s, 200, "{v:?}");
    assert_eq!(v["object"], "list");
    let first: Vec<f64> = v["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(first.len(), 8);
    let norm: f64 = first.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-4, "unit vector: {norm}");
    assert_ne!(v["data"][0]["embedding"], v["data"][1]["embedding"]);
    // The same input gives the same vector, in base64 as little-endian float32 too.
    let (_, b) = post(
        &az,
        "embed",
        "embeddings",
        json!({"input": "a", "dimensions": 8, "encoding_format": "base64"}),
    )
    .await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    assert!(
        decoded
            .iter()
            .zip(&first)
            .all(|(a, b)| (a - b).abs() < 1e-6)
    );
    // A chat model does not embed, an embedding model does not chat, a batch deployment
    // answers no direct request.
    let (s, e) = post(&az, "chat", "embeddings", json!({"input": "a"})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("OperationNotSupported"))
    );
    assert!(e["error"]["message"].as_str().unwrap().starts_with(
        "The embeddings operation does not work with the specified model, gpt-4o-mini."
    ));
    let msg = json!({"messages": [{"role": "user", "content": "hi"}]});
    let (s, e) = post(&az, "embed", "chat/completions", msg.clone()).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("OperationNotSupported"))
    );
    let (s, e) = post(&az, "batch", "chat/completions", msg.clone()).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("OperationNotSupported"))
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GlobalBatch")
    );
    // max_tokens bounds the answer.
    let (s, c) = post(
        &az,
        "chat",
        "chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(c["choices"][0]["finish_reason"], "length");
    assert_eq!(c["usage"]["completion_tokens"], 1);
}

#[tokio::test]
async fn a_deployment_told_to_fail_answers_the_error_and_requests_are_counted() {
    let az = Az::default().await;
    let acc = az.emu.default_account_id();
    put_deployment(&az, "chat", "gpt-4o-mini", "GlobalStandard");
    let msg = json!({"messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        post(&az, "chat", "chat/completions", msg.clone()).await.0,
        200
    );
    az.emu.fail_deployment(
        &acc,
        "chat",
        503,
        "ServiceUnavailable",
        "The model is overloaded. Try again later.",
    );
    let (s, e) = post(&az, "chat", "chat/completions", msg.clone()).await;
    assert_eq!(s, 503);
    assert_eq!(
        e["error"]["message"],
        "The model is overloaded. Try again later."
    );
    az.emu.clear_deployment_failure(&acc, "chat");
    assert_eq!(
        post(&az, "chat", "chat/completions", msg.clone()).await.0,
        200
    );
    assert_eq!(az.emu.data_plane_requests(&acc, "chat"), 3);
    assert_eq!(az.emu.data_plane_requests(&acc, "other"), 0);
    // The admin routes do the same for other processes.
    let admin = az.emu.admin_url();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{admin}deployment-failure?name=chat"))
        .json(&json!({"status": 400, "code": "ContentFilter", "message": "blocked"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        post(&az, "chat", "chat/completions", msg.clone()).await.0,
        400
    );
    http.delete(format!("{admin}deployment-failure?name=chat"))
        .send()
        .await
        .unwrap();
    let n: Value = http
        .get(format!("{admin}deployment-requests?name=chat"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(n["requests"], 4);
}
