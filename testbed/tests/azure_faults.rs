//! Test control on the Azure emulator: injected faults (Azure error with Retry-After for the
//! next N matching requests, delay, dropped connection), the request log, out-of-band
//! deployment edits, the admin HTTP routes the binary exposes, and `serve_to_dir`'s files.
mod azure_common;

use std::time::{Duration, Instant};

use azure_common::*;
use serde_json::{Value, json};
use testbed::azure::{Fault, FaultAction, Surface};

#[tokio::test]
async fn error_fault_applies_to_the_next_n_matching_requests() {
    let az = Az::default().await;
    let path = az.deployment_path("f");
    az.emu.inject(Fault {
        surface: Surface::Arm,
        method: Some(http::Method::PUT),
        path_contains: Some("/deployments/f".into()),
        count: 2,
        action: FaultAction::Error {
            status: 429,
            code: "TooManyRequests".into(),
            message: "Slow down.".into(),
            retry_after: Some(7),
        },
    });
    // A GET does not match.
    assert_eq!(az.arm("GET", &path, None).await.status, 404);
    for _ in 0..2 {
        let r = az
            .arm(
                "PUT",
                &path,
                Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
            )
            .await;
        assert_eq!(r.status, 429);
        assert_eq!(r.code(), "TooManyRequests");
        assert_eq!(r.header("retry-after").as_deref(), Some("7"));
    }
    assert_eq!(
        az.arm(
            "PUT",
            &path,
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1))
        )
        .await
        .status,
        201
    );
    // Token endpoint outage, in OAuth's error format.
    az.emu.inject(Fault::error(
        Surface::Token,
        1,
        503,
        "temporarily_unavailable",
        "AADSTS90033: A transient error has occurred.",
    ));
    let url = format!(
        "{}{}/oauth2/v2.0/token",
        az.env.authority_host, az.env.tenant_id
    );
    let r = az
        .http
        .post(&url)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
    az.emu.inject(Fault::error(
        Surface::Arm,
        5,
        500,
        "InternalServerError",
        "x",
    ));
    az.emu.clear_faults();
    assert_eq!(az.arm("GET", &path, None).await.status, 200);
}

#[tokio::test]
async fn delay_and_dropped_connection() {
    let az = Az::default().await;
    let path = az.account_path();
    let token = az.token("https://management.azure.com").await;
    az.emu.inject(Fault {
        surface: Surface::Arm,
        method: None,
        path_contains: None,
        count: 1,
        action: FaultAction::Delay(Duration::from_millis(300)),
    });
    let t = Instant::now();
    assert_eq!(az.arm_with(&token, "GET", &path, None).await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    az.emu.inject(Fault {
        surface: Surface::Any,
        method: None,
        path_contains: Some("/accounts/".into()),
        count: 1,
        action: FaultAction::Drop,
    });
    let url = format!(
        "{}{path}?api-version={API}",
        az.env.resource_manager_endpoint
    );
    let err = az.http.get(&url).bearer_auth(&token).send().await;
    assert!(err.is_err(), "connection should have been dropped");
    assert_eq!(az.arm_with(&token, "GET", &path, None).await.status, 200);
    let log = az.emu.request_log();
    assert!(
        log.iter()
            .any(|r| r.status == 0 && r.path.contains("/accounts/"))
    );
}

#[tokio::test]
async fn request_log_counts_calls_by_kind() {
    let az = Az::default().await;
    az.emu.clear_request_log();
    az.arm(
        "PUT",
        &az.deployment_path("a"),
        Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
    )
    .await;
    az.arm("GET", &az.deployment_path("a"), None).await;
    let log = az.emu.request_log();
    let arm: Vec<_> = log.iter().filter(|r| r.surface == Surface::Arm).collect();
    assert_eq!(arm.len(), 2);
    assert_eq!(arm[0].method, "PUT");
    assert!(arm[0].is_write && !arm[1].is_write);
    assert_eq!(arm[0].status, 201);
    assert_eq!(
        arm[0].account_id.as_deref(),
        Some(az.emu.default_account_id().as_str())
    );
    assert!(arm[0].query.contains("api-version=2026-09-01"));
    assert!(arm[0].finished >= arm[0].started);
    assert_eq!(
        log.iter().filter(|r| r.surface == Surface::Token).count(),
        2
    );
    az.emu.clear_request_log();
    assert!(az.emu.request_log().is_empty());
}

#[tokio::test]
async fn out_of_band_edits_are_visible_and_not_logged() {
    let az = Az::default().await;
    let account = az.emu.default_account_id();
    az.emu.put_deployment_out_of_band(
        &account,
        "portal",
        deployment_body("gpt-4o", None, "Standard", 3),
    );
    let g = az.arm("GET", &az.deployment_path("portal"), None).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["properties"]["model"]["version"], "2024-08-06");
    assert_eq!(g.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(g.body["systemData"]["lastModifiedByType"], "User");
    az.emu
        .patch_deployment_out_of_band(&account, "portal", |d| d["sku"]["capacity"] = json!(9));
    assert_eq!(
        az.arm("GET", &az.deployment_path("portal"), None)
            .await
            .body["sku"]["capacity"],
        9
    );
    assert_eq!(az.emu.deployments(&account).len(), 1);
    az.emu.delete_deployment_out_of_band(&account, "portal");
    assert_eq!(
        az.arm("GET", &az.deployment_path("portal"), None)
            .await
            .status,
        404
    );
    assert!(az.emu.request_log().iter().all(|r| !r.is_write));
}

#[tokio::test]
async fn serve_to_dir_writes_the_client_files_and_admin_routes_work() {
    let dir = tempfile::tempdir().unwrap();
    let emu = testbed::azure::serve_to_dir(dir.path()).await.unwrap();
    let env_text = std::fs::read_to_string(dir.path().join("azure.env")).unwrap();
    let vars: std::collections::HashMap<String, String> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for key in [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_AUTHORITY_HOST",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_RESOURCE_MANAGER_ENDPOINT",
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_RESOURCE_GROUP",
        "AZURE_OPENAI_ACCOUNT",
        "AZURE_KEY_VAULT_URI",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    ] {
        assert!(
            vars.get(key).is_some_and(|v| !v.is_empty()),
            "{key} missing in azure.env"
        );
    }
    let ca = dir.path().join("ca.pem");
    assert_eq!(vars["SSL_CERT_FILE"], ca.display().to_string());
    assert_eq!(vars["REQUESTS_CA_BUNDLE"], ca.display().to_string());
    assert_eq!(std::fs::read_to_string(&ca).unwrap(), emu.ca_pem());
    assert_eq!(
        vars["AZURE_FEDERATED_TOKEN_FILE"],
        dir.path().join("federated-token").display().to_string()
    );
    assert_eq!(vars["AZURE_OPENAI_ACCOUNT"], "contoso-ai-eastus");
    assert!(
        vars["AZURE_AUTHORITY_HOST"].starts_with("https://127.0.0.1:")
            && vars["AZURE_AUTHORITY_HOST"].ends_with('/')
    );
    assert!(vars["AZURE_KEY_VAULT_URI"].starts_with("https://127.0.0.1:"));

    // Admin routes (plain HTTP).
    let admin = emu.admin_url();
    let http = reqwest::Client::new();
    let r = http.post(format!("{admin}faults")).json(&json!({"surface": "arm", "count": 1, "action": {"error": {"status": 503, "code": "ServiceUnavailable", "message": "down", "retry_after": 3}}})).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let az = Az {
        env: emu.env(),
        http: client(&emu.ca_pem()),
        emu: emu.clone(),
    };
    let down = az.arm("GET", &az.account_path(), None).await;
    assert_eq!(down.status, 503);
    assert_eq!(down.header("retry-after").as_deref(), Some("3"));
    let r = http
        .put(format!("{admin}deployment?name=oob"))
        .json(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        az.arm("GET", &az.deployment_path("oob"), None).await.body["sku"]["capacity"],
        2
    );
    http.patch(format!("{admin}deployment?name=oob"))
        .json(&json!({"sku": {"capacity": 4}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        emu.deployment(&emu.default_account_id(), "oob").unwrap()["sku"]["capacity"],
        4
    );
    let log: Value = http
        .get(format!("{admin}log"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["status"] == 503 && e["surface"] == "Arm")
    );
    let r = http.post(format!("{admin}quota")).json(&json!({"subscription": vars["AZURE_SUBSCRIPTION_ID"], "location": "eastus", "usage_name": "OpenAI.Standard.gpt-4o", "limit": 1})).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let q = az
        .arm(
            "PUT",
            &az.deployment_path("big"),
            Some(&deployment_body("gpt-4o", None, "Standard", 2)),
        )
        .await;
    assert_eq!(q.code(), "InsufficientQuota");
    let state: Value = http
        .get(format!("{admin}state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(state["max_concurrent_writes_per_account"].is_number());
}

#[tokio::test]
async fn admin_routes_for_operations_catalog_keys_and_delay() {
    let az = Az::default().await;
    let admin = az.emu.admin_url();
    let http = reqwest::Client::new();
    let ok = |s: reqwest::StatusCode| assert_eq!(s, 204);
    ok(http
        .post(format!("{admin}fail-operations"))
        .json(&json!({"count": 1, "code": "QuotaExceeded", "message": "no"}))
        .send()
        .await
        .unwrap()
        .status());
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("a"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    let done = az
        .wait_operation(&r.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "QuotaExceeded");

    let (k1, _) = az.emu.account_keys(&az.emu.default_account_id());
    ok(http
        .post(format!("{admin}regenerate-key?key=key1"))
        .send()
        .await
        .unwrap()
        .status());
    assert_ne!(az.emu.account_keys(&az.emu.default_account_id()).0, k1);

    ok(http.put(format!("{admin}catalog")).json(&json!([{
        "format": "OpenAI", "name": "only-model", "version": "1", "skus": ["Standard"], "is_default": true,
        "capabilities": {"chatCompletion": "true"}, "max_capacity": 5, "lifecycle_status": "GenerallyAvailable"
    }])).send().await.unwrap().status());
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("b"),
            Some(&deployment_body("only-model", None, "Standard", 6)),
        )
        .await;
    assert_eq!(
        r.code(),
        "InvalidCapacity",
        "capacity above the model's maximum"
    );
    assert_eq!(
        az.arm(
            "PUT",
            &az.deployment_path("b"),
            Some(&deployment_body("only-model", None, "Standard", 5))
        )
        .await
        .status,
        201
    );

    ok(http
        .post(format!("{admin}provisioning-delay"))
        .json(&json!({"ms": 300}))
        .send()
        .await
        .unwrap()
        .status());
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("c"),
            Some(&deployment_body("only-model", None, "Standard", 1)),
        )
        .await;
    let s = az
        .arm("GET", &r.header("azure-asyncoperation").unwrap(), None)
        .await;
    assert_eq!(s.body["status"], "InProgress");
    let unknown = http.get(format!("{admin}nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}
