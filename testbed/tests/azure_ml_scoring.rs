//! Azure Machine Learning emulator, data plane of managed online endpoints: the scoring URI
//! checks the key (or AML / Entra token) of the endpoint's authMode, routes by the
//! `azureml-model-deployment` header or the traffic split, answers as a chat model naming the
//! deployment that served, and records every request, so that an instance-type change done
//! as Azure requires (new deployment, move traffic, delete the old one) is shown to leave no
//! moment in which no deployment serves.
mod azure_common;
mod azure_ml_common;

use std::time::Duration;

use azure_common::*;
use azure_ml_common::*;
use serde_json::json;
use testbed::azure::AzureConfig;

#[tokio::test]
async fn the_scoring_uri_checks_the_endpoint_key() {
    let az = Az::default().await;
    let uri = endpoint_with_deployment(&az, "k", "blue", PHI, NC24, 1).await;
    let (primary, secondary) = az.emu.online_endpoint_keys(&endpoint_id(&az, "k")).unwrap();
    assert_eq!(post(&az, &uri, None, &[], &chat("hi")).await.status, 401);
    assert_eq!(
        post(&az, &uri, Some("not-the-key"), &[], &chat("hi"))
            .await
            .status,
        401
    );
    let arm_token = az.token("https://management.azure.com").await;
    assert_eq!(
        post(&az, &uri, Some(&arm_token), &[], &chat("hi"))
            .await
            .status,
        401,
        "an ARM token is no endpoint key"
    );
    for key in [&primary, &secondary] {
        let r = post(&az, &uri, Some(key), &[], &chat("hello there")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            r.header("azureml-model-deployment").as_deref(),
            Some("blue")
        );
        let content = r.body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(
            content.contains("deployment 'blue'") && content.contains("hello there"),
            "{content}"
        );
        assert_eq!(r.body["object"], "chat.completion");
    }
    // Azure ML's curated containers take `input_data`; the OpenAI-style route works too.
    let r = post(
        &az,
        &uri,
        Some(&primary),
        &[],
        &json!({"input_data": {"input_string": [{"role": "user", "content": "x"}]}}),
    )
    .await;
    assert!(
        r.body["output"]
            .as_str()
            .unwrap()
            .contains("deployment 'blue'")
    );
    let openai = uri.replace("/score", "/v1/chat/completions");
    assert_eq!(
        post(&az, &openai, Some(&primary), &[], &chat("hi"))
            .await
            .status,
        200
    );
    // A regenerated key replaces the old one at once.
    let r = az
        .arm(
            "POST",
            &format!("{}/regenerateKeys", endpoint_path(&az, "k")),
            Some(&json!({"keyType": "Primary"})),
        )
        .await;
    settle(&az, &r).await;
    assert_eq!(
        post(&az, &uri, Some(&primary), &[], &chat("hi"))
            .await
            .status,
        401
    );
    let served = az.emu.served_requests(&endpoint_id(&az, "k"));
    assert_eq!(served.iter().filter(|s| s.status == 200).count(), 4);
    assert!(
        served
            .iter()
            .filter(|s| s.status == 401)
            .all(|s| s.deployment.is_none())
    );
}

#[tokio::test]
async fn requests_follow_the_traffic_split_or_the_deployment_header() {
    let az = Az::default().await;
    let uri = endpoint_with_deployment(&az, "split", "blue", PHI, NC24, 1).await;
    create_deployment(&az, "split", "green", PHI, NC24, 1).await;
    create_deployment(&az, "split", "canary", PHI, NC24, 1).await;
    create_endpoint(&az, "split", "Key", json!({"blue": 70, "green": 30})).await;
    let key = az
        .emu
        .online_endpoint_keys(&endpoint_id(&az, "split"))
        .unwrap()
        .0;
    az.emu.clear_served_requests();
    for _ in 0..100 {
        assert_eq!(
            post(&az, &uri, Some(&key), &[], &chat("hi")).await.status,
            200
        );
    }
    let served = az.emu.served_requests(&endpoint_id(&az, "split"));
    let count = |d: &str| {
        served
            .iter()
            .filter(|s| s.deployment.as_deref() == Some(d))
            .count()
    };
    assert_eq!(
        (count("blue"), count("green"), count("canary")),
        (70, 30, 0)
    );
    // The header reaches a deployment without traffic; an unknown one is a 404.
    let r = post(
        &az,
        &uri,
        Some(&key),
        &[("azureml-model-deployment", "canary")],
        &chat("hi"),
    )
    .await;
    assert_eq!(
        r.header("azureml-model-deployment").as_deref(),
        Some("canary")
    );
    let r = post(
        &az,
        &uri,
        Some(&key),
        &[("azureml-model-deployment", "nope")],
        &chat("hi"),
    )
    .await;
    assert_eq!(r.status, 404);
    // No deployment with positive traffic: Azure's 404.
    create_endpoint(&az, "split", "Key", json!({})).await;
    let r = post(&az, &uri, Some(&key), &[], &chat("hi")).await;
    assert_eq!(r.status, 404);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("No valid deployments to route to")
    );
}

#[tokio::test]
async fn an_instance_type_change_leaves_no_moment_without_a_serving_deployment() {
    let az = Az::start(AzureConfig {
        provisioning_delay: Duration::from_secs(3600),
        ..Default::default()
    })
    .await;
    let ep = endpoint_id(&az, "swap");
    let hold = |r: Reply| {
        assert!(r.status < 300, "{} {:?}", r.status, r.body);
        az.emu.complete_ml_operations();
    };
    hold(put_endpoint(&az, "swap", "Key", json!({})).await);
    hold(put_deployment(&az, "swap", "blue", PHI, NC24, 1).await);
    let r = put_endpoint(&az, "swap", "Key", json!({"blue": 100})).await;
    let uri = r.body["properties"]["scoringUri"]
        .as_str()
        .unwrap()
        .to_string();
    hold(r);
    let key = az.emu.online_endpoint_keys(&ep).unwrap().0;
    let score = || async { post(&az, &uri, Some(&key), &[], &chat("still there?")).await };
    az.emu.clear_served_requests();
    score().await;
    // 1. The new instance type goes to a new deployment; blue serves while green is created.
    let r = put_deployment(&az, "swap", "green", PHI, NC48, 1).await;
    assert_eq!(r.body["properties"]["provisioningState"], "Creating");
    score().await;
    az.emu.complete_ml_operations();
    score().await;
    // 2. Traffic moves; both serve while the endpoint updates.
    let r = put_endpoint(&az, "swap", "Key", json!({"green": 100, "blue": 0})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    score().await;
    az.emu.complete_ml_operations();
    score().await;
    // 3. The old deployment goes; green serves while blue is deleted.
    let r = az
        .arm("DELETE", &deployment_path(&az, "swap", "blue"), None)
        .await;
    assert_eq!(r.status, 202);
    score().await;
    az.emu.complete_ml_operations();
    score().await;
    let served = az.emu.served_requests(&ep);
    assert_eq!(served.len(), 7);
    assert!(
        served
            .iter()
            .all(|s| s.status == 200 && s.deployment.is_some()),
        "{served:?}"
    );
    let by: Vec<&str> = served
        .iter()
        .map(|s| s.deployment.as_deref().unwrap())
        .collect();
    assert_eq!(
        by,
        ["blue", "blue", "blue", "green", "green", "green", "green"]
    );
    assert!(az.emu.online_deployment(&ep, "blue").is_none());
    assert_eq!(
        az.emu.online_deployment(&ep, "green").unwrap()["properties"]["instanceType"],
        NC48
    );
}

#[tokio::test]
async fn aml_token_and_entra_token_endpoints() {
    let az = Az::default().await;
    create_endpoint(&az, "aml", "AMLToken", json!({})).await;
    create_deployment(&az, "aml", "blue", PHI, NC24, 1).await;
    let r = create_endpoint(&az, "aml", "AMLToken", json!({"blue": 100})).await;
    let uri = r.body["properties"]["scoringUri"]
        .as_str()
        .unwrap()
        .to_string();
    let token = az
        .arm(
            "POST",
            &format!("{}/token", endpoint_path(&az, "aml")),
            None,
        )
        .await
        .body["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        post(&az, &uri, Some(&token), &[], &chat("hi")).await.status,
        200
    );
    let other = az
        .arm(
            "POST",
            &format!("{}/token", endpoint_path(&az, "tok2")),
            None,
        )
        .await;
    assert_eq!(other.status, 404);
    let ml_token = az.token("https://ml.azure.com").await;
    assert_eq!(
        post(&az, &uri, Some(&ml_token), &[], &chat("hi"))
            .await
            .status,
        401,
        "AMLToken mode takes AML tokens"
    );

    create_endpoint(&az, "aad", "AADToken", json!({})).await;
    create_deployment(&az, "aad", "blue", PHI, NC24, 1).await;
    let r = create_endpoint(&az, "aad", "AADToken", json!({"blue": 100})).await;
    let uri = r.body["properties"]["scoringUri"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        post(&az, &uri, Some(&ml_token), &[], &chat("hi"))
            .await
            .status,
        200
    );
    assert_eq!(
        post(&az, &uri, Some(&token), &[], &chat("hi")).await.status,
        401,
        "an AML token of another endpoint"
    );
}
