//! Azure Machine Learning emulator: workspaces, managed online endpoints and deployments over
//! ARM: long-running operations, one operation at a time per endpoint, the registry catalogue,
//! instance types and VM quota, in-place count changes, create-only instance type, traffic
//! rules, deletion, auth modes and api-versions.
mod azure_common;
mod azure_ml_common;

use std::time::Duration;

use azure_common::*;
use azure_ml_common::*;
use serde_json::json;
use testbed::azure::AzureConfig;

/// An emulator whose operations stay open until `complete_ml_operations`.
async fn held() -> Az {
    Az::start(AzureConfig {
        provisioning_delay: Duration::from_secs(3600),
        ..Default::default()
    })
    .await
}

fn inner_code(r: &Reply) -> String {
    r.body["error"]["additionalInfo"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["type"] == "InnerError"))
        .and_then(|i| i["info"]["code"].as_str())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn the_seeded_world_has_a_hub_and_its_project() {
    let az = Az::default().await;
    let ml = az.emu.ml_env();
    assert_eq!(az.env.ml.workspace, "contoso-project");
    let project = az.arm("GET", &ws_path(&az), None).await;
    assert_eq!(project.status, 200);
    assert_eq!(project.body["kind"], "Project");
    let hub_id = project.body["properties"]["hubResourceId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(hub_id.ends_with("/workspaces/contoso-hub"), "{hub_id}");
    let hub = az.arm("GET", hub_id.trim_start_matches('/'), None).await;
    assert_eq!(hub.body["kind"], "Hub");
    assert_eq!(
        hub.body["properties"]["associatedWorkspaces"][0],
        ml.workspace_id()
    );
    let list = az
        .arm(
            "GET",
            &format!("subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces", ml.subscription_id, ml.resource_group),
            None,
        )
        .await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 2);
    let missing = az
        .arm(
            "GET",
            &ws_path(&az).replace("contoso-project", "nope"),
            None,
        )
        .await;
    assert_eq!((missing.status, missing.code()), (404, "ResourceNotFound"));
    let vars = az.env.vars();
    assert!(
        vars.iter()
            .any(|(k, v)| *k == "AZURE_ML_WORKSPACE" && v == "contoso-project")
    );
    assert!(
        vars.iter()
            .any(|(k, v)| *k == "AZURE_ML_REGISTRY" && v == "azureml")
    );
}

#[tokio::test]
async fn an_endpoint_is_created_through_a_long_running_operation() {
    let az = held().await;
    let r = put_endpoint(&az, "chat", "Key", json!({})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Creating");
    let status_url = r
        .header("azure-asyncoperation")
        .expect("Azure-AsyncOperation");
    assert!(status_url.contains("/mfeOperationsStatus/"), "{status_url}");
    assert!(r.header("retry-after").is_some());
    let running = az.arm("GET", &status_url, None).await;
    assert_eq!(running.body["status"], "InProgress");
    az.emu.complete_ml_operations();
    assert_eq!(
        az.arm("GET", &status_url, None).await.body["status"],
        "Succeeded"
    );
    let got = az.arm("GET", &endpoint_path(&az, "chat"), None).await;
    assert_eq!(got.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(got.body["properties"]["authMode"], "Key");
    assert_eq!(got.body["identity"]["type"], "SystemAssigned");
    let uri = got.body["properties"]["scoringUri"].as_str().unwrap();
    assert!(
        uri.starts_with("https://127.0.0.1:") && uri.ends_with("/score"),
        "{uri}"
    );
    assert!(
        got.body["properties"].get("keys").is_none(),
        "keys are never returned by GET"
    );
    let keys = az
        .arm(
            "POST",
            &format!("{}/listKeys", endpoint_path(&az, "chat")),
            None,
        )
        .await;
    assert_eq!(keys.status, 200);
    let (k1, k2) = (
        keys.body["primaryKey"].as_str().unwrap(),
        keys.body["secondaryKey"].as_str().unwrap(),
    );
    assert!(!k1.is_empty() && k1 != k2);
    let list = az
        .arm("GET", &format!("{}/onlineEndpoints", ws_path(&az)), None)
        .await;
    assert_eq!(list.body["value"][0]["name"], "chat");
    // Tags (e.g. an operator's ownership tags) are kept, and a PUT replaces them.
    let mut tagged = endpoint_body("Key", json!({}));
    tagged["tags"] = json!({"owner": "team-a/chat"});
    az.arm("PUT", &endpoint_path(&az, "chat"), Some(&tagged))
        .await;
    az.emu.complete_ml_operations();
    let got = az.arm("GET", &endpoint_path(&az, "chat"), None).await;
    assert_eq!(got.body["tags"], json!({"owner": "team-a/chat"}));
    put_endpoint(&az, "chat", "Key", json!({})).await;
    az.emu.complete_ml_operations();
    assert_eq!(
        az.arm("GET", &endpoint_path(&az, "chat"), None).await.body["tags"],
        json!({})
    );
}

#[tokio::test]
async fn one_operation_at_a_time_runs_on_an_endpoint() {
    let az = held().await;
    put_endpoint(&az, "busy", "Key", json!({})).await;
    let r = put_deployment(&az, "busy", "blue", PHI, NC24, 1).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(
        (r.code(), inner_code(&r).as_str()),
        ("UserError", "Conflict")
    );
    assert!(
        r.message().contains("operation in progress"),
        "{}",
        r.message()
    );
    assert!(
        az.emu
            .online_deployment(&endpoint_id(&az, "busy"), "blue")
            .is_none()
    );
    az.emu.complete_ml_operations();
    let r = put_deployment(&az, "busy", "blue", PHI, NC24, 1).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["properties"]["provisioningState"], "Creating");
    // While the deployment is created, the endpoint takes no other write.
    let traffic = put_endpoint(&az, "busy", "Key", json!({"blue": 100})).await;
    assert_eq!(traffic.status, 409);
    let delete = az.arm("DELETE", &endpoint_path(&az, "busy"), None).await;
    assert_eq!(delete.status, 409);
    assert_eq!(az.emu.max_concurrent_writes_per_endpoint(), 2);
    az.emu.complete_ml_operations();
    let traffic = put_endpoint(&az, "busy", "Key", json!({"blue": 100})).await;
    assert_eq!(traffic.status, 200);
    assert_eq!(traffic.body["properties"]["provisioningState"], "Updating");
}

#[tokio::test]
async fn deployments_are_checked_against_the_catalogue_instance_types_and_quota() {
    let az = &Az::default().await;
    let ml = az.emu.ml_env();
    create_endpoint(az, "e1", "Key", json!({})).await;
    create_endpoint(az, "e2", "Key", json!({})).await;
    let put = |name: &str, model: &str, it: &str, n: u32| {
        let path = deployment_path(az, "e1", name);
        let body = online_deployment_body(model, it, n);
        async move { az.arm("PUT", &path, Some(&body)).await }
    };
    let unknown = put(
        "unknown",
        "azureml://registries/azureml/models/Nope/versions/1",
        NC24,
        1,
    )
    .await;
    assert_eq!(
        (unknown.status, inner_code(&unknown).as_str()),
        (400, "NotFound")
    );
    assert!(
        unknown.message().contains("was not found"),
        "{}",
        unknown.message()
    );
    let serverless_only = put("mistral", &format!("{MISTRAL}/versions/2"), NC24, 1).await;
    assert_eq!(serverless_only.status, 400);
    assert!(
        serverless_only
            .message()
            .contains("not offered for deployment to managed compute"),
        "{}",
        serverless_only.message()
    );
    let too_small = put("llama", LLAMA_70B, NC24, 1).await;
    assert_eq!(
        (too_small.status, inner_code(&too_small).as_str()),
        (400, "BadArgument")
    );
    assert!(
        too_small
            .message()
            .contains("is not supported for model 'Llama-3.3-70B-Instruct'"),
        "{}",
        too_small.message()
    );
    assert!(
        too_small.message().contains(NC96),
        "{}",
        too_small.message()
    );
    let no_such_size = put("tiny", PHI, "Standard_Z1_v9", 1).await;
    assert!(
        no_such_size.message().contains("is not a VM size"),
        "{}",
        no_such_size.message()
    );
    let zero = put("zero", PHI, NC24, 0).await;
    assert!(zero.message().contains("at least 1"), "{}", zero.message());

    // Quota: one NC24ads reserves 2 x 24 vCPUs (20 % upgrade reserve, rounded up).
    az.emu
        .set_vm_quota(&ml.subscription_id, "eastus", A100_FAMILY, 48);
    create_deployment(az, "e1", "blue", PHI, NC24, 1).await;
    assert_eq!(
        az.emu
            .vm_quota_usage(&ml.subscription_id, "eastus", A100_FAMILY),
        48
    );
    let over = put_deployment(az, "e2", "blue", PHI, NC24, 1).await;
    assert_eq!((over.status, over.code()), (400, "BadRequest"));
    assert_eq!(inner_code(&over), "InferencingClientCreateDeploymentFailed");
    let detail = over.body["error"]["details"][0]["message"]
        .as_str()
        .unwrap();
    let expected = format!(
        "Not enough quota available for {NC24} in SubscriptionId {}. Current usage/limit: 48/48. Additional needed: 48",
        ml.subscription_id
    );
    assert!(detail.contains(&expected), "{detail}");
    for (ep, name) in [
        ("e1", "unknown"),
        ("e1", "mistral"),
        ("e1", "llama"),
        ("e1", "tiny"),
        ("e1", "zero"),
        ("e2", "blue"),
    ] {
        assert!(
            az.emu
                .online_deployment(&endpoint_id(az, ep), name)
                .is_none(),
            "{ep}/{name} was written"
        );
    }
    // An in-place scale-up is charged only the difference.
    let scale = put_deployment(az, "e1", "blue", PHI, NC24, 2).await;
    assert!(
        scale.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Additional needed: 24")
    );
}

#[tokio::test]
async fn the_instance_count_changes_in_place_and_the_instance_type_does_not() {
    let az = Az::default().await;
    let ml = az.emu.ml_env();
    create_endpoint(&az, "e", "Key", json!({})).await;
    let path = deployment_path(&az, "e", "blue");
    let created = write_ok(
        &az,
        "PUT",
        &path,
        Some(&online_deployment_body(PHI, NC24, 1)),
    )
    .await;
    assert_eq!(created.status, 201);
    let scaled = az
        .arm("PUT", &path, Some(&online_deployment_body(PHI, NC24, 2)))
        .await;
    assert_eq!(scaled.status, 200);
    assert_eq!(scaled.body["properties"]["provisioningState"], "Scaling");
    assert_eq!(settle(&az, &scaled).await, "Succeeded");
    assert_eq!(
        az.emu
            .vm_quota_usage(&ml.subscription_id, "eastus", A100_FAMILY),
        72
    );
    let patched = az
        .arm("PATCH", &path, Some(&json!({"sku": {"capacity": 3}})))
        .await;
    assert_eq!(patched.status, 202);
    let location = patched.header("location").expect("Location");
    let done = az.arm("GET", &location, None).await;
    assert_eq!(done.status, 200);
    assert_eq!(done.body["sku"]["capacity"], 3);
    assert_eq!(done.body["properties"]["provisioningState"], "Succeeded");
    let got = az.arm("GET", &path, None).await;
    assert_eq!(got.body["properties"]["livenessProbe"]["period"], "PT10S");
    assert_eq!(
        got.body["properties"]["scaleSettings"]["scaleType"],
        "Default"
    );
    let retype = az
        .arm("PUT", &path, Some(&online_deployment_body(PHI, NC48, 3)))
        .await;
    assert_eq!(
        (retype.status, inner_code(&retype).as_str()),
        (400, "BadArgument")
    );
    assert!(
        retype.message().contains("cannot be updated"),
        "{}",
        retype.message()
    );
    assert_eq!(
        az.arm("GET", &path, None).await.body["properties"]["instanceType"],
        NC24
    );
    let deployments = az
        .arm(
            "GET",
            &format!("{}/deployments", endpoint_path(&az, "e")),
            None,
        )
        .await;
    assert_eq!(deployments.body["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn traffic_names_provisioned_deployments_and_sums_to_100() {
    let az = &Az::default().await;
    create_endpoint(az, "t", "Key", json!({})).await;
    create_deployment(az, "t", "blue", PHI, NC24, 1).await;
    create_deployment(az, "t", "green", PHI, NC24, 1).await;
    let set = |traffic: serde_json::Value| {
        let path = endpoint_path(az, "t");
        async move {
            az.arm("PUT", &path, Some(&endpoint_body("Key", traffic)))
                .await
        }
    };
    let ghost = set(json!({"ghost": 100})).await;
    assert_eq!(ghost.status, 400);
    assert!(
        ghost.message().contains("has no deployment 'ghost'"),
        "{}",
        ghost.message()
    );
    let partial = set(json!({"blue": 60, "green": 30})).await;
    assert!(
        partial.message().contains("sums to 90"),
        "{}",
        partial.message()
    );
    let negative = set(json!({"blue": 110, "green": -10})).await;
    assert_eq!(negative.status, 400);
    assert_eq!(
        settle(az, &set(json!({"blue": 70, "green": 30})).await).await,
        "Succeeded"
    );
    assert_eq!(
        settle(az, &set(json!({"blue": 0, "green": 0})).await).await,
        "Succeeded"
    );
    assert_eq!(
        settle(az, &set(json!({"blue": 100})).await).await,
        "Succeeded"
    );
    let routed = az
        .arm("DELETE", &deployment_path(az, "t", "blue"), None)
        .await;
    assert_eq!(routed.status, 400);
    assert!(
        routed.message().contains("routes 100% of its traffic"),
        "{}",
        routed.message()
    );
    let deleted = az
        .arm("DELETE", &deployment_path(az, "t", "green"), None)
        .await;
    assert_eq!(deleted.status, 202);
    let location = deleted.header("location").unwrap();
    assert_eq!(status(az, "GET", &location).await, 204);
    assert_eq!(
        status(az, "GET", &deployment_path(az, "t", "green")).await,
        404
    );
    assert_eq!(
        status(az, "DELETE", &deployment_path(az, "t", "green")).await,
        204
    );
}

#[tokio::test]
async fn deleting_an_endpoint_deletes_its_deployments_and_frees_quota() {
    let az = Az::default().await;
    let ml = az.emu.ml_env();
    let uri = endpoint_with_deployment(&az, "gone", "blue", PHI, NC24, 1).await;
    assert_eq!(
        az.emu
            .vm_quota_usage(&ml.subscription_id, "eastus", A100_FAMILY),
        48
    );
    let r = az.arm("DELETE", &endpoint_path(&az, "gone"), None).await;
    assert_eq!(r.status, 202);
    let location = r.header("location").unwrap();
    assert!(location.contains("/mfeOperationResults/"), "{location}");
    assert_eq!(status(&az, "GET", &location).await, 204);
    assert_eq!(status(&az, "GET", &endpoint_path(&az, "gone")).await, 404);
    assert_eq!(
        status(&az, "GET", &deployment_path(&az, "gone", "blue")).await,
        404
    );
    assert_eq!(
        az.emu
            .vm_quota_usage(&ml.subscription_id, "eastus", A100_FAMILY),
        0
    );
    assert_eq!(
        status(&az, "DELETE", &endpoint_path(&az, "gone")).await,
        204
    );
    // Re-created under the same name, the endpoint keeps its scoring host.
    let again = create_endpoint(&az, "gone", "Key", json!({})).await;
    assert_eq!(again.body["properties"]["scoringUri"], uri.as_str());
}

#[tokio::test]
async fn auth_modes_keys_and_tokens() {
    let az = Az::default().await;
    create_endpoint(&az, "tok", "AMLToken", json!({})).await;
    create_endpoint(&az, "key", "key", json!({})).await;
    let bogus = put_endpoint(&az, "bad", "Password", json!({})).await;
    assert_eq!(bogus.status, 400);
    let token = az
        .arm(
            "POST",
            &format!("{}/token", endpoint_path(&az, "tok")),
            None,
        )
        .await;
    assert_eq!(token.status, 200, "{:?}", token.body);
    assert_eq!(token.body["tokenType"], "Bearer");
    let (expiry, refresh) = (
        token.body["expiryTimeUtc"].as_i64().unwrap(),
        token.body["refreshAfterTimeUtc"].as_i64().unwrap(),
    );
    assert!(refresh < expiry);
    let keys = az
        .arm(
            "POST",
            &format!("{}/listKeys", endpoint_path(&az, "tok")),
            None,
        )
        .await;
    assert_eq!(keys.status, 400, "an AMLToken endpoint has no keys");
    assert_eq!(
        status(&az, "POST", &format!("{}/token", endpoint_path(&az, "key"))).await,
        400
    );
    let before = az
        .emu
        .online_endpoint_keys(&endpoint_id(&az, "key"))
        .unwrap();
    let regen = az
        .arm(
            "POST",
            &format!("{}/regenerateKeys", endpoint_path(&az, "key")),
            Some(&json!({"keyType": "Primary", "keyValue": before.0})),
        )
        .await;
    assert_eq!(regen.status, 202);
    assert_eq!(settle(&az, &regen).await, "Succeeded");
    let after = az
        .emu
        .online_endpoint_keys(&endpoint_id(&az, "key"))
        .unwrap();
    assert_ne!(
        after.0, before.0,
        "regenerating with the current value rotates the key"
    );
    assert_eq!(after.1, before.1);
    let set = az
        .arm(
            "POST",
            &format!("{}/regenerateKeys", endpoint_path(&az, "key")),
            Some(&json!({"keyType": "Secondary", "keyValue": "chosen-secondary"})),
        )
        .await;
    assert_eq!(settle(&az, &set).await, "Succeeded");
    assert_eq!(
        az.emu
            .online_endpoint_keys(&endpoint_id(&az, "key"))
            .unwrap()
            .1,
        "chosen-secondary"
    );
}

#[tokio::test]
async fn older_api_versions_are_served_and_unknown_ones_rejected() {
    let az = Az::default().await;
    create_endpoint(&az, "v", "Key", json!({})).await;
    for v in [
        "2022-02-01-preview",
        "2023-04-01-preview",
        "2024-01-01-preview",
        "2024-10-01-preview",
    ] {
        let r = az
            .arm(
                "GET",
                &format!("{}?api-version={v}", endpoint_path(&az, "v")),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{v}");
        assert_eq!(r.body["properties"]["authMode"], "Key");
    }
    let r = az
        .arm(
            "GET",
            &format!("{}?api-version=2019-01-01", endpoint_path(&az, "v")),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "NoRegisteredProviderFound"));
    assert!(r.message().contains("2026-09-01"), "{}", r.message());
    let url = format!(
        "{}{}",
        az.env.resource_manager_endpoint,
        endpoint_path(&az, "v")
    );
    let token = az.token("https://management.azure.com").await;
    let r = az.send("GET", &url, Some(&token), None).await;
    assert_eq!(r.code(), "MissingApiVersionParameter");
    let anonymous = az
        .send("GET", &format!("{url}?api-version=2026-09-01"), None, None)
        .await;
    assert_eq!(
        (anonymous.status, anonymous.code()),
        (401, "AuthenticationFailed")
    );
}

#[tokio::test]
async fn a_failed_operation_leaves_the_deployment_failed() {
    let az = Az::default().await;
    create_endpoint(&az, "f", "Key", json!({})).await;
    az.emu.fail_next_operations(
        1,
        "ResourceNotReady",
        "User container has crashed or terminated.",
    );
    let r = put_deployment(&az, "f", "blue", PHI, NC24, 1).await;
    assert_eq!(r.status, 201);
    let status = az
        .wait_operation(&r.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(status["status"], "Failed");
    assert_eq!(status["error"]["code"], "ResourceNotReady");
    let got = az
        .arm("GET", &deployment_path(&az, "f", "blue"), None)
        .await;
    assert_eq!(got.body["properties"]["provisioningState"], "Failed");
    let traffic = put_endpoint(&az, "f", "Key", json!({"blue": 100})).await;
    assert!(
        traffic.message().contains("state 'Failed'"),
        "{}",
        traffic.message()
    );
}
