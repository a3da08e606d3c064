//! Foundry projects on the Azure emulator (issue 13): only on an account that allows project
//! management; create, update and delete are long-running operations; the project carries its
//! endpoint; the account's first project is its default and `associatedProjects` lists them.
mod azure_common;

use std::time::Duration;

use azure_common::*;
use serde_json::json;
use testbed::azure::AzureConfig;

fn project_path(az: &Az, name: &str) -> String {
    format!("{}/projects/{name}", az.account_path())
}

async fn allow_projects(az: &Az) {
    let r = az
        .arm(
            "PATCH",
            &az.account_path(),
            Some(&json!({"properties": {"allowProjectManagement": true}})),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    az.wait_operation(&r.header("azure-asyncoperation").unwrap())
        .await;
}

#[tokio::test]
async fn projects_need_an_account_that_allows_them() {
    let az = Az::default().await;
    let body = json!({"location": "eastus", "properties": {"displayName": "Team A"}});
    let r = az
        .arm("PUT", &project_path(&az, "team-a"), Some(&body))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "BadRequest");
    assert!(
        r.message().contains("allowProjectManagement"),
        "{}",
        r.message()
    );
    allow_projects(&az).await;
    let r = az
        .arm("PUT", &project_path(&az, "team-a"), Some(&body))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // Another location than the account's is refused.
    let elsewhere = json!({"location": "westus", "properties": {}});
    let r = az
        .arm("PUT", &project_path(&az, "far"), Some(&elsewhere))
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn project_lifecycle_with_long_running_operations_and_endpoints() {
    let az = Az::start(AzureConfig {
        provisioning_delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    allow_projects(&az).await;
    let body = json!({
        "location": "eastus",
        "identity": {"type": "SystemAssigned"},
        "tags": {"team": "a"},
        "properties": {"displayName": "Team A", "description": "chat apps"},
    });
    let r = az
        .arm("PUT", &project_path(&az, "team-a"), Some(&body))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Creating");
    let endpoint = az
        .emu
        .account_endpoint(&az.emu.default_account_id())
        .unwrap();
    assert_eq!(
        r.body["properties"]["endpoints"]["AI Foundry API"],
        format!("{endpoint}api/projects/team-a")
    );
    assert_eq!(r.body["properties"]["isDefault"], true);
    assert!(r.body["identity"]["principalId"].is_string());
    // A deployment write is not held up by the project's operation.
    let d = az
        .arm(
            "PUT",
            &az.deployment_path("chat"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    assert_eq!(d.status, 201, "{:?}", d.body);
    let op = r.header("azure-asyncoperation").unwrap();
    assert_eq!(az.wait_operation(&op).await["status"], "Succeeded");
    let got = az.arm("GET", &project_path(&az, "team-a"), None).await;
    assert_eq!(got.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(got.body["tags"]["team"], "a");
    // A second project is not the default; the account lists both.
    let r = az
        .arm(
            "PUT",
            &project_path(&az, "team-b"),
            Some(&json!({"location": "eastus", "properties": {}})),
        )
        .await;
    assert_eq!(r.body["properties"]["isDefault"], false);
    az.wait_operation(&r.header("azure-asyncoperation").unwrap())
        .await;
    let acc = az.arm("GET", &az.account_path(), None).await;
    assert_eq!(acc.body["properties"]["defaultProject"], "team-a");
    assert_eq!(
        acc.body["properties"]["associatedProjects"],
        json!(["team-a", "team-b"])
    );
    let list = az
        .arm("GET", &format!("{}/projects", az.account_path()), None)
        .await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 2);
    // PATCH merges and is an operation.
    let p = az
        .arm(
            "PATCH",
            &project_path(&az, "team-a"),
            Some(&json!({"properties": {"description": "chat and embeddings"}})),
        )
        .await;
    assert_eq!(p.status, 202, "{:?}", p.body);
    assert!(p.header("location").is_some());
    az.wait_operation(&p.header("azure-asyncoperation").unwrap())
        .await;
    let got = az.arm("GET", &project_path(&az, "team-a"), None).await;
    assert_eq!(got.body["properties"]["description"], "chat and embeddings");
    assert_eq!(got.body["properties"]["displayName"], "Team A");
    // DELETE: gone once the operation ends, and unlinked from the account.
    let del = az.arm("DELETE", &project_path(&az, "team-a"), None).await;
    assert_eq!(del.status, 202);
    assert_eq!(
        az.arm("GET", &project_path(&az, "team-a"), None).await.body["properties"]["provisioningState"],
        "Deleting"
    );
    az.wait_operation(&del.header("azure-asyncoperation").unwrap())
        .await;
    let gone = az.arm("GET", &project_path(&az, "team-a"), None).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.code(), "NotFound");
    let acc = az.arm("GET", &az.account_path(), None).await;
    assert_eq!(
        acc.body["properties"]["associatedProjects"],
        json!(["team-b"])
    );
    assert!(acc.body["properties"].get("defaultProject").is_none());
    assert_eq!(
        az.arm("DELETE", &project_path(&az, "team-a"), None)
            .await
            .status,
        204
    );
}
