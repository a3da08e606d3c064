//! ARM throttling on the Azure emulator: per (subscription, principal) token buckets for reads
//! and writes with `x-ms-ratelimit-remaining-subscription-*` headers, 429
//! SubscriptionRequestsThrottled with Retry-After when empty, and refill over time.
mod azure_common;

use std::time::Duration;

use azure_common::*;
use testbed::azure::AzureConfig;

#[tokio::test]
async fn read_bucket_empties_answers_429_and_refills() {
    let az = Az::start(AzureConfig {
        read_capacity: 3,
        read_refill_per_sec: 2,
        ..Default::default()
    })
    .await;
    let token = az.token("https://management.azure.com").await;
    let path = az.account_path();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = az.arm_with(&token, "GET", &path, None).await;
        assert_eq!(r.status, 200);
        remaining.push(
            r.header("x-ms-ratelimit-remaining-subscription-reads")
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert_eq!(remaining, vec![2, 1, 0]);
    let throttled = az.arm_with(&token, "GET", &path, None).await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.code(), "SubscriptionRequestsThrottled");
    assert!(
        throttled
            .message()
            .contains("Number of 'read' requests for subscription")
    );
    let wait: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // Writes have their own bucket.
    let w = az
        .arm_with(
            &token,
            "PUT",
            &az.deployment_path("w"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    assert_eq!(w.status, 201);
    assert_eq!(
        w.header("x-ms-ratelimit-remaining-subscription-writes")
            .as_deref(),
        Some("199")
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = az.arm_with(&token, "GET", &path, None).await;
    assert_eq!(after.status, 200, "bucket refilled");
}

#[tokio::test]
async fn buckets_are_per_principal() {
    let az = Az::start(AzureConfig {
        write_capacity: 1,
        write_refill_per_sec: 0,
        ..Default::default()
    })
    .await;
    let a = az.token("https://management.azure.com").await;
    let body = deployment_body("gpt-4o-mini", None, "GlobalStandard", 1);
    assert_eq!(
        az.arm_with(&a, "PUT", &az.deployment_path("x"), Some(&body))
            .await
            .status,
        201
    );
    let r = az
        .arm_with(&a, "PUT", &az.deployment_path("x"), Some(&body))
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.header("x-ms-ratelimit-remaining-subscription-writes")
            .as_deref(),
        Some("0")
    );
    // Another principal (a different token subject) has its own bucket.
    az.emu
        .add_client("11111111-2222-3333-4444-555555555555", "s3cret");
    let url = format!(
        "{}{}/oauth2/v2.0/token",
        az.env.authority_host, az.env.tenant_id
    );
    let other: serde_json::Value = az
        .http
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("client_secret", "s3cret"),
            ("scope", "https://management.azure.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other = other["access_token"].as_str().unwrap();
    assert_eq!(
        az.arm_with(other, "PUT", &az.deployment_path("x"), Some(&body))
            .await
            .status,
        200
    );
}
