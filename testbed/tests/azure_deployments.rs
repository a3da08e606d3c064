//! ARM deployments on the Azure emulator: long-running operations (headers, status and result
//! URLs, provisioning delay, failure), server-filled fields, tags, PATCH, DELETE, the one-write-
//! per-account rule (409 RequestConflict), quota on every PUT, catalog errors, the
//! capacity-or-model rule, pause/resume, api-version rejection, and that a PUT stores every
//! property the spec defines while replacing what it omits.
mod azure_common;

use std::time::Duration;

use azure_common::*;
use serde_json::json;
use testbed::azure::AzureConfig;

fn slow(ms: u64) -> AzureConfig {
    AzureConfig {
        provisioning_delay: Duration::from_millis(ms),
        ..Default::default()
    }
}

#[tokio::test]
async fn put_is_a_long_running_operation_that_progresses_to_succeeded() {
    let az = Az::start(slow(400)).await;
    let path = az.deployment_path("chat");
    let r = az
        .arm(
            "PUT",
            &path,
            Some(&deployment_body(
                "gpt-4o-mini",
                Some("2024-07-18"),
                "GlobalStandard",
                10,
            )),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Creating");
    let status_url = r
        .header("azure-asyncoperation")
        .expect("Azure-AsyncOperation header");
    assert!(
        status_url.contains("/operationStatuses/") && status_url.contains("api-version=2026-09-01"),
        "{status_url}"
    );
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));

    let s = az.arm("GET", &status_url, None).await;
    assert_eq!(s.body["status"], "InProgress");
    assert!(s.header("retry-after").is_some());
    let result_url = status_url.replace("operationStatuses", "operationResults");
    let pending = az.arm("GET", &result_url, None).await;
    assert_eq!(pending.status, 202);
    assert!(pending.header("location").is_some());
    let g = az.arm("GET", &path, None).await;
    assert_eq!(g.body["properties"]["provisioningState"], "Creating");

    let done = az.wait_operation(&status_url).await;
    assert_eq!(done["status"], "Succeeded");
    assert!(done["endTime"].is_string());
    let g = az.arm("GET", &path, None).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["properties"]["provisioningState"], "Succeeded");
    let result = az.arm("GET", &result_url, None).await;
    assert_eq!(result.status, 200);
    assert_eq!(result.body["name"], "chat");
}

#[tokio::test]
async fn server_fills_defaults_and_keeps_tags_as_sent() {
    let az = Az::default().await;
    let path = az.deployment_path("d1");
    let mut body = deployment_body("gpt-4o", None, "Standard", 5);
    body["tags"] = json!({"aoai.dev/owner": "team-a/chat", "Mixed-Case": "Value"});
    let r = az.arm("PUT", &path, Some(&body)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let g = az.arm("GET", &path, None).await;
    let p = &g.body["properties"];
    assert_eq!(
        p["model"]["version"], "2024-08-06",
        "default version of gpt-4o"
    );
    assert_eq!(p["versionUpgradeOption"], "OnceNewDefaultVersionAvailable");
    assert_eq!(p["currentCapacity"], 5);
    assert_eq!(p["raiPolicyName"], "Microsoft.DefaultV2");
    assert_eq!(p["capabilities"]["chatCompletion"], "true");
    assert_eq!(p["rateLimits"][1]["key"], "token");
    assert_eq!(p["rateLimits"][1]["count"], 5000);
    assert_eq!(
        g.body["tags"],
        json!({"aoai.dev/owner": "team-a/chat", "Mixed-Case": "Value"})
    );
    assert!(g.body["etag"].as_str().is_some_and(|e| e.starts_with('"')));
    assert_eq!(g.body["systemData"]["createdByType"], "Application");
    assert_eq!(g.body["id"], format!("/{path}"));
    assert_eq!(
        g.body["type"],
        "Microsoft.CognitiveServices/accounts/deployments"
    );
    // The handle sees the same JSON.
    assert_eq!(
        az.emu
            .deployment(&az.emu.default_account_id(), "d1")
            .unwrap()["properties"]["model"]["version"],
        "2024-08-06"
    );
    // 2025-09-01 renders without the newer fields.
    let old = az
        .arm("GET", &format!("{path}?api-version=2025-09-01"), None)
        .await;
    assert_eq!(old.status, 200);
    assert!(old.body["properties"].get("deploymentState").is_none());
    assert!(g.body["properties"].get("deploymentState").is_some());
}

#[tokio::test]
async fn list_patch_and_delete() {
    let az = Az::start(slow(150)).await;
    for name in ["a", "b"] {
        let r = az
            .arm(
                "PUT",
                &az.deployment_path(name),
                Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
            )
            .await;
        az.wait_operation(&r.header("azure-asyncoperation").unwrap())
            .await;
    }
    let l = az
        .arm("GET", &format!("{}/deployments", az.account_path()), None)
        .await;
    assert_eq!(l.body["value"].as_array().unwrap().len(), 2);

    let p = az
        .arm(
            "PATCH",
            &az.deployment_path("a"),
            Some(&json!({"sku": {"name": "GlobalStandard", "capacity": 7}, "tags": {"x": "y"}})),
        )
        .await;
    assert_eq!(p.status, 202, "{:?}", p.body);
    let loc = p.header("location").expect("Location");
    az.wait_operation(&p.header("azure-asyncoperation").unwrap())
        .await;
    let fin = az.arm("GET", &loc, None).await;
    assert_eq!(fin.status, 200);
    assert_eq!(fin.body["sku"]["capacity"], 7);
    assert_eq!(fin.body["sku"]["name"], "GlobalStandard");
    assert_eq!(fin.body["tags"]["x"], "y");

    let d = az.arm("DELETE", &az.deployment_path("b"), None).await;
    assert_eq!(d.status, 202);
    let loc = d.header("location").expect("Location");
    assert_eq!(az.arm("GET", &loc, None).await.status, 202);
    az.wait_operation(&d.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(az.arm("GET", &loc, None).await.status, 204);
    let g = az.arm("GET", &az.deployment_path("b"), None).await;
    assert_eq!(g.status, 404);
    assert_eq!(g.code(), "NotFound");
    assert!(
        g.message()
            .starts_with("Specified resource '/subscriptions/"),
        "{}",
        g.message()
    );
    // Deleting what does not exist: 204.
    assert_eq!(
        az.arm("DELETE", &az.deployment_path("b"), None)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn second_write_on_the_account_while_one_is_in_flight_gets_request_conflict() {
    let az = Az::start(slow(500)).await;
    let account = az.emu.default_account_id();
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("one"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(az.emu.max_concurrent_writes_per_account(), 1);
    // A different deployment on the same account: 409 with ARM's body.
    let c = az
        .arm(
            "PUT",
            &az.deployment_path("two"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    assert_eq!(c.status, 409);
    assert_eq!(c.code(), "RequestConflict");
    assert_eq!(
        c.message(),
        format!(
            "Another operation is being performed on the parent resource '{account}'. Please try again later."
        )
    );
    assert_eq!(az.emu.max_concurrent_writes_per_account(), 2);
    // Deletes conflict too; reads do not.
    assert_eq!(
        az.arm("DELETE", &az.deployment_path("one"), None)
            .await
            .status,
        409
    );
    assert_eq!(
        az.arm("GET", &az.deployment_path("one"), None).await.status,
        200
    );
    // Once the operation is over, the write goes through.
    az.wait_operation(&r.header("azure-asyncoperation").unwrap())
        .await;
    let ok = az
        .arm(
            "PUT",
            &az.deployment_path("two"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    assert_eq!(ok.status, 201);
    let log = az.emu.request_log();
    let conflicts = log.iter().filter(|r| r.status == 409 && r.is_write).count();
    assert_eq!(conflicts, 2);
    assert!(
        log.iter()
            .all(|r| r.account_id.is_none() || r.account_id.as_deref() == Some(account.as_str()))
    );
}

#[tokio::test]
async fn concurrent_puts_on_one_account_admit_exactly_one() {
    let az = Az::start(slow(400)).await;
    let token = az.token("https://management.azure.com").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let path = az.deployment_path(&format!("c{i}"));
        let (http, base, token) = (
            az.http.clone(),
            az.env.resource_manager_endpoint.clone(),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            http.put(format!("{base}{path}?api-version={API}"))
                .bearer_auth(token)
                .json(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    // Each rejected write overlapped the admitted one.
    assert_eq!(az.emu.max_concurrent_writes_per_account(), 2);
}

#[tokio::test]
async fn insufficient_quota_carries_figures_and_is_checked_on_a_no_op_put() {
    let az = Az::default().await;
    let sub = az.env.subscription_id.clone();
    az.emu
        .set_quota(&sub, "eastus", "OpenAI.GlobalStandard.gpt-4o-mini", 30);
    let body = deployment_body("gpt-4o-mini", Some("2024-07-18"), "GlobalStandard", 20);
    assert_eq!(
        az.arm("PUT", &az.deployment_path("q1"), Some(&body))
            .await
            .status,
        201
    );
    let r = az.arm("PUT", &az.deployment_path("q2"), Some(&body)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "InsufficientQuota");
    assert_eq!(
        r.message(),
        "This operation require 20 new capacity in quota Tokens Per Minute (thousands) - gpt-4o-mini - GlobalStandard, which is bigger than the current available capacity 10. The current quota usage is 20 and the quota limit is 30 for quota Tokens Per Minute (thousands) - gpt-4o-mini - GlobalStandard."
    );
    // Other SKUs have their own quota.
    assert_eq!(
        az.arm(
            "PUT",
            &az.deployment_path("q3"),
            Some(&deployment_body("gpt-4o-mini", None, "Standard", 20))
        )
        .await
        .status,
        201
    );
    // Same PUT again (no change) is fine while within quota...
    assert_eq!(
        az.arm("PUT", &az.deployment_path("q1"), Some(&body))
            .await
            .status,
        200
    );
    // ...but quota is checked even when nothing changes.
    az.emu
        .set_quota(&sub, "eastus", "OpenAI.GlobalStandard.gpt-4o-mini", 10);
    let again = az.arm("PUT", &az.deployment_path("q1"), Some(&body)).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.code(), "InsufficientQuota");
    assert!(
        again
            .message()
            .contains("The current quota usage is 20 and the quota limit is 10"),
        "{}",
        again.message()
    );
    assert_eq!(
        az.emu
            .quota_usage(&sub, "eastus", "OpenAI.GlobalStandard.gpt-4o-mini"),
        20
    );
    // The location usages list shows the figures.
    let u = az
        .arm(
            "GET",
            &format!(
                "subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/eastus/usages"
            ),
            None,
        )
        .await;
    let entry = u.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"]["value"] == "OpenAI.GlobalStandard.gpt-4o-mini")
        .cloned()
        .unwrap();
    assert_eq!(entry["currentValue"], 20);
    assert_eq!(entry["limit"], 10);
}

#[tokio::test]
async fn catalog_errors() {
    let az = Az::default().await;
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("x"),
            Some(&deployment_body("gpt-9", Some("2030-01-01"), "Standard", 1)),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "DeploymentModelNotSupported");
    assert_eq!(
        r.message(),
        "The model 'Format: OpenAI, Name: gpt-9, Version: 2030-01-01' of account deployment is not supported."
    );
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("x"),
            Some(&deployment_body(
                "gpt-4o",
                Some("1999-01-01"),
                "Standard",
                1,
            )),
        )
        .await;
    assert_eq!(r.code(), "DeploymentModelNotSupported");
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("x"),
            Some(&deployment_body(
                "gpt-4o",
                Some("2024-08-06"),
                "DeveloperTier",
                1,
            )),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "InvalidResourceProperties");
    assert_eq!(
        r.message(),
        "The specified SKU 'DeveloperTier' for model 'gpt-4o 2024-08-06' is not supported in this region 'eastus'."
    );
    // The non-OpenAI Foundry model deploys with its own format.
    let mut phi = deployment_body("Phi-4", None, "GlobalStandard", 1);
    phi["properties"]["model"]["format"] = json!("Microsoft");
    let r = az.arm("PUT", &az.deployment_path("phi"), Some(&phi)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["properties"]["model"]["version"], "7");
    // The account models list shows the catalog.
    let m = az
        .arm("GET", &format!("{}/models", az.account_path()), None)
        .await;
    let names: Vec<String> = m.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"gpt-4o-mini.2024-07-18".to_string())
            && names.contains(&"gpt-4o.2024-08-06".to_string()),
        "{names:?}"
    );
    // Capacity must be at least the minimum; nothing was stored by the failures.
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("x"),
            Some(&deployment_body("gpt-4o", None, "Standard", 0)),
        )
        .await;
    assert_eq!(r.code(), "InvalidCapacity");
    assert_eq!(
        r.message(),
        "The specified capacity '0' of account deployment should be at least 1 and no more than 10000."
    );
    assert!(
        az.emu
            .deployment(&az.emu.default_account_id(), "x")
            .is_none()
    );
}

#[tokio::test]
async fn capacity_and_model_version_cannot_change_in_one_request() {
    let az = Az::default().await;
    let path = az.deployment_path("s");
    assert_eq!(
        az.arm(
            "PUT",
            &path,
            Some(&deployment_body(
                "gpt-4o",
                Some("2024-05-13"),
                "GlobalStandard",
                5
            ))
        )
        .await
        .status,
        201
    );
    let both = az
        .arm(
            "PUT",
            &path,
            Some(&deployment_body(
                "gpt-4o",
                Some("2024-08-06"),
                "GlobalStandard",
                10,
            )),
        )
        .await;
    assert_eq!(both.status, 400);
    assert_eq!(both.code(), "InvalidResourceProperties");
    assert!(
        both.message()
            .contains("Cannot change capacity and model at the same time"),
        "{}",
        both.message()
    );
    // Two steps work: capacity first, then the version.
    assert_eq!(
        az.arm(
            "PUT",
            &path,
            Some(&deployment_body(
                "gpt-4o",
                Some("2024-05-13"),
                "GlobalStandard",
                10
            ))
        )
        .await
        .status,
        200
    );
    let v = az
        .arm(
            "PUT",
            &path,
            Some(&deployment_body(
                "gpt-4o",
                Some("2024-08-06"),
                "GlobalStandard",
                10,
            )),
        )
        .await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    let g = az.arm("GET", &path, None).await;
    assert_eq!(g.body["properties"]["model"]["version"], "2024-08-06");
    assert_eq!(g.body["sku"]["capacity"], 10);
    // The model itself cannot change.
    let other = az
        .arm(
            "PUT",
            &path,
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 10)),
        )
        .await;
    assert_eq!(other.code(), "CannotChangeDeploymentModel");
}

#[tokio::test]
async fn operations_can_end_failed() {
    let az = Az::start(slow(100)).await;
    az.emu
        .fail_next_operations(1, "InternalServerError", "Provisioning failed.");
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("f"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    let done = az
        .wait_operation(&r.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "InternalServerError");
    let g = az.arm("GET", &az.deployment_path("f"), None).await;
    assert_eq!(g.body["properties"]["provisioningState"], "Failed");
    // The next one succeeds.
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("f"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    assert_eq!(
        az.wait_operation(&r.header("azure-asyncoperation").unwrap())
            .await["status"],
        "Succeeded"
    );
}

#[tokio::test]
async fn pause_and_resume() {
    let az = Az::default().await;
    let path = az.deployment_path("p");
    az.arm(
        "PUT",
        &path,
        Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
    )
    .await;
    let p = az.arm("POST", &format!("{path}/pause"), None).await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["properties"]["deploymentState"], "Paused");
    let r = az.arm("POST", &format!("{path}/resume"), None).await;
    assert_eq!(r.body["properties"]["deploymentState"], "Running");
}

#[tokio::test]
async fn api_versions_outside_the_specs_are_rejected_as_arm_does() {
    let az = Az::default().await;
    let path = az.deployment_path("v");
    let r = az
        .arm("GET", &format!("{path}?api-version=2023-05-01"), None)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "NoRegisteredProviderFound");
    assert!(
        r.message()
            .contains("The supported api-versions are '2025-09-01, 2026-09-01'"),
        "{}",
        r.message()
    );
    let r = az
        .arm("GET", &format!("{path}?api-version=banana"), None)
        .await;
    assert_eq!(r.code(), "InvalidApiVersionParameter");
    let token = az.token("https://management.azure.com").await;
    let r = az
        .send(
            "GET",
            &format!("{}{path}", az.env.resource_manager_endpoint),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.code(), "MissingApiVersionParameter");
    for v in ["2025-09-01", "2026-09-01"] {
        let r = az
            .arm(
                "GET",
                &format!("{}/deployments?api-version={v}", az.account_path()),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{v}");
    }
}

#[tokio::test]
async fn a_put_stores_every_property_it_sends_and_replaces_the_rest() {
    let az = Az::default().await;
    let acc = az.emu.default_account_id();
    let body = testbed::azure::held_properties_body(&acc);
    let path = az.deployment_path("rich");
    let r = az.arm("PUT", &path, Some(&body)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let check = |d: &serde_json::Value| {
        for (k, v) in body["properties"].as_object().unwrap() {
            assert_eq!(&d["properties"][k], v, "properties.{k}: {d:#}");
        }
        assert_eq!(d["tags"], body["tags"]);
    };
    check(&az.arm("GET", &path, None).await.body);
    let list = az
        .arm("GET", &format!("{}/deployments", az.account_path()), None)
        .await;
    check(&list.body["value"][0]);
    // PATCH (sku, tags) keeps them.
    let p = az
        .arm(
            "PATCH",
            &path,
            Some(&json!({"sku": {"name": "GlobalStandard", "capacity": 12}})),
        )
        .await;
    assert_eq!(p.status, 202);
    check(&az.arm("GET", &path, None).await.body);
    // A PUT that omits them removes them: PUT replaces.
    let bare = deployment_body("gpt-4o-mini", Some("2024-07-18"), "GlobalStandard", 12);
    assert_eq!(az.arm("PUT", &path, Some(&bare)).await.status, 200);
    let d = az.arm("GET", &path, None).await.body;
    for k in [
        "parentDeploymentName",
        "capacitySettings",
        "routing",
        "contextCacheContainerId",
        "spilloverDeploymentName",
    ] {
        assert!(d["properties"].get(k).is_none(), "{k} removed: {d:#}");
    }
    assert!(d["properties"]["model"].get("publisher").is_none());
    assert!(d.get("tags").is_none());
    // The out-of-band helper stores the same properties.
    let held = az.emu.put_deployment_with_held_properties(&acc, "portal");
    let d = az.emu.deployment(&acc, "portal").unwrap();
    assert_eq!(d["properties"]["routing"], held["properties"]["routing"]);
    assert_eq!(d["properties"]["model"]["sourceAccount"], acc.as_str());
}
