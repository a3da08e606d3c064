//! Azure OpenAI data plane on the Azure emulator: chat completions with api-key (either key)
//! or bearer auth, deterministic answer, DeploymentNotFound, 401 for wrong and rotated keys,
//! and the account endpoint ARM reports.
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
    let token = az.token("https://cognitiveservices.azure.com").await;
    assert_eq!(
        chat(&az, &endpoint, "chat", None, Some(&token)).await.0,
        200
    );
    let arm_token = az.token("https://management.azure.com").await;
    assert_eq!(
        chat(&az, &endpoint, "chat", None, Some(&arm_token)).await.0,
        401
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
