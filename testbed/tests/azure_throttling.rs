//! ARM throttling on the Azure emulator: per (subscription, principal) token buckets for reads,
//! writes and deletes with `x-ms-ratelimit-remaining-subscription-*` headers on every answer
//! (errors included), a subscription-wide bucket across principals, 429
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
    let other = &other_principal(&az).await;
    assert_eq!(
        az.arm_with(other, "PUT", &az.deployment_path("x"), Some(&body))
            .await
            .status,
        200
    );
}

/// An ARM token of a second registered application.
async fn other_principal(az: &Az) -> String {
    let (id, secret) = ("11111111-2222-3333-4444-555555555555", "s3cret");
    az.emu.add_client(id, secret);
    az.token_as(id, secret, "https://management.azure.com")
        .await
}

#[tokio::test]
async fn deletes_have_their_own_bucket_and_header() {
    let az = Az::start(AzureConfig {
        delete_capacity: 1,
        delete_refill_per_sec: 0,
        ..Default::default()
    })
    .await;
    let token = az.token("https://management.azure.com").await;
    let del = az
        .arm_with(&token, "DELETE", &az.deployment_path("none"), None)
        .await;
    assert_eq!(del.status, 204);
    assert_eq!(
        del.header("x-ms-ratelimit-remaining-subscription-deletes")
            .as_deref(),
        Some("0")
    );
    assert!(
        del.header("x-ms-ratelimit-remaining-subscription-writes")
            .is_none()
    );
    let again = az
        .arm_with(&token, "DELETE", &az.deployment_path("none"), None)
        .await;
    assert_eq!(again.status, 429);
    assert!(
        again.message().contains("Number of 'delete' requests"),
        "{}",
        again.message()
    );
    // Writes are untouched by the empty delete bucket.
    let put = az
        .arm_with(
            &token,
            "PUT",
            &az.deployment_path("w"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    assert_eq!(put.status, 201);
}

#[tokio::test]
async fn the_subscription_wide_bucket_holds_all_principals_together() {
    let az = Az::start(AzureConfig {
        read_capacity: 2,
        read_refill_per_sec: 0,
        global_limit_multiplier: 1,
        ..Default::default()
    })
    .await;
    let a = az.token("https://management.azure.com").await;
    let b = other_principal(&az).await;
    let path = az.account_path();
    let first = az.arm_with(&a, "GET", &path, None).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first
            .header("x-ms-ratelimit-remaining-subscription-global-reads")
            .as_deref(),
        Some("1")
    );
    assert_eq!(az.arm_with(&b, "GET", &path, None).await.status, 200);
    // Each principal has a token left of its own, but the subscription's are gone.
    let r = az.arm_with(&a, "GET", &path, None).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.code(), "SubscriptionRequestsThrottled");
}

#[tokio::test]
async fn every_arm_answer_carries_the_remaining_count() {
    let az = Az::default().await;
    let token = az.token("https://management.azure.com").await;
    let missing = az
        .arm_with(&token, "GET", &az.deployment_path("missing"), None)
        .await;
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .header("x-ms-ratelimit-remaining-subscription-reads")
            .is_some()
    );
    let no_version = az
        .send(
            "GET",
            &format!("{}{}", az.env.resource_manager_endpoint, az.account_path()),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(no_version.status, 400);
    assert!(
        no_version
            .header("x-ms-ratelimit-remaining-subscription-reads")
            .is_some()
    );
    let bad = az
        .arm_with(
            &token,
            "PUT",
            &az.deployment_path("bad"),
            Some(&deployment_body("no-such-model", None, "GlobalStandard", 1)),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.header("x-ms-ratelimit-remaining-subscription-writes")
            .is_some()
    );
    let action = az
        .arm_with(
            &token,
            "POST",
            &format!("{}/listKeys", az.account_path()),
            None,
        )
        .await;
    assert_eq!(action.status, 200);
    assert!(
        action
            .header("x-ms-ratelimit-remaining-subscription-writes")
            .is_some()
    );
}
