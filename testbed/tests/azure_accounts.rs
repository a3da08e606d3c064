//! ARM accounts on the Azure emulator: GET/list, PUT with async provisioning (and its own data
//! plane endpoint), PATCH, DELETE as a long-running operation, listKeys/regenerateKey, and the
//! read-only catalog views: account models, account SKUs, usages, location models and model
//! capacities.
mod azure_common;

use std::time::Duration;

use azure_common::*;
use serde_json::json;
use testbed::azure::{AccountSeed, AzureConfig};

#[tokio::test]
async fn seeded_account_is_listed_with_its_endpoint() {
    let az = Az::default().await;
    let sub = az.env.subscription_id.clone();
    let g = az.arm("GET", &az.account_path(), None).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["kind"], "AIServices");
    assert_eq!(g.body["location"], "eastus");
    assert_eq!(g.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        g.body["properties"]["endpoint"],
        az.env.openai_endpoint.as_str()
    );
    let by_sub = az
        .arm(
            "GET",
            &format!("subscriptions/{sub}/providers/Microsoft.CognitiveServices/accounts"),
            None,
        )
        .await;
    assert_eq!(by_sub.body["value"].as_array().unwrap().len(), 1);
    let id = az.emu.add_account(AccountSeed {
        subscription_id: sub.clone(),
        resource_group: "rg-two".into(),
        name: "second".into(),
        location: "swedencentral".into(),
        kind: "OpenAI".into(),
    });
    let by_sub = az
        .arm(
            "GET",
            &format!("subscriptions/{sub}/providers/Microsoft.CognitiveServices/accounts"),
            None,
        )
        .await;
    assert_eq!(by_sub.body["value"].as_array().unwrap().len(), 2);
    let by_rg = az.arm("GET", &format!("subscriptions/{sub}/resourceGroups/rg-two/providers/Microsoft.CognitiveServices/accounts"), None).await;
    assert_eq!(by_rg.body["value"][0]["id"], id.as_str());
    assert_ne!(
        az.emu.account_endpoint(&id).unwrap(),
        az.env.openai_endpoint
    );
    let missing = az.arm("GET", &format!("subscriptions/{sub}/resourceGroups/rg-two/providers/Microsoft.CognitiveServices/accounts/nope"), None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code(), "ResourceNotFound");
}

#[tokio::test]
async fn account_put_provisions_asynchronously_and_delete_is_an_operation() {
    let az = Az::start(AzureConfig {
        provisioning_delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let sub = az.env.subscription_id.clone();
    let path = format!(
        "subscriptions/{sub}/resourceGroups/rg-new/providers/Microsoft.CognitiveServices/accounts/fresh"
    );
    let body = json!({"location": "eastus2", "kind": "AIServices", "sku": {"name": "S0"}, "tags": {"env": "test"}, "properties": {"customSubDomainName": "fresh-sub"}});
    let r = az.arm("PUT", &path, Some(&body)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Creating");
    let status = r.header("azure-asyncoperation").unwrap();
    assert!(r.header("location").is_some());
    // A deployment write while the account is being created conflicts.
    let d = az
        .arm(
            "PUT",
            &format!("{path}/deployments/x"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    assert_eq!(d.status, 409);
    assert_eq!(az.wait_operation(&status).await["status"], "Succeeded");
    let g = az.arm("GET", &path, None).await;
    assert_eq!(g.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(g.body["tags"]["env"], "test");
    assert_eq!(g.body["properties"]["customSubDomainName"], "fresh-sub");
    let endpoint = g.body["properties"]["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(endpoint.starts_with("https://127.0.0.1:"));
    // PATCH is a long-running operation too.
    let p = az
        .arm("PATCH", &path, Some(&json!({"tags": {"env": "prod"}})))
        .await;
    assert_eq!(p.status, 202);
    assert_eq!(p.body["tags"]["env"], "prod");
    assert!(p.header("location").is_some());
    assert_eq!(
        az.wait_operation(&p.header("azure-asyncoperation").unwrap())
            .await["status"],
        "Succeeded"
    );
    let g = az.arm("GET", &path, None).await;
    assert_eq!(g.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(g.body["tags"]["env"], "prod");
    // PUT on an existing account updates in place.
    assert_eq!(az.arm("PUT", &path, Some(&body)).await.status, 200);
    // Keys work on its data plane once a deployment exists.
    let keys = az.arm("POST", &format!("{path}/listKeys"), None).await;
    let r = az
        .arm(
            "PUT",
            &format!("{path}/deployments/x"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    az.wait_operation(&r.header("azure-asyncoperation").unwrap())
        .await;
    let chat = az
        .http
        .post(format!(
            "{endpoint}openai/deployments/x/chat/completions?api-version=2024-10-21"
        ))
        .header("api-key", keys.body["key1"].as_str().unwrap())
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    // DELETE is a long-running operation.
    let del = az.arm("DELETE", &path, None).await;
    assert_eq!(del.status, 202);
    az.wait_operation(&del.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(az.arm("GET", &path, None).await.status, 404);
    assert_eq!(az.arm("DELETE", &path, None).await.status, 204);
}

#[tokio::test]
async fn list_keys_and_regenerate() {
    let az = Az::default().await;
    let account = az.emu.default_account_id();
    let k = az
        .arm("POST", &format!("{}/listKeys", az.account_path()), None)
        .await;
    assert_eq!(
        (
            k.body["key1"].as_str().unwrap().to_string(),
            k.body["key2"].as_str().unwrap().to_string()
        ),
        az.emu.account_keys(&account)
    );
    let r = az
        .arm(
            "POST",
            &format!("{}/regenerateKey", az.account_path()),
            Some(&json!({"keyName": "Key2"})),
        )
        .await;
    assert_eq!(r.body["key1"], k.body["key1"]);
    assert_ne!(r.body["key2"], k.body["key2"]);
    let bad = az
        .arm(
            "POST",
            &format!("{}/regenerateKey", az.account_path()),
            Some(&json!({"keyName": "Key3"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    // listKeys is a POST action: ARM counts it as a write.
    assert!(
        az.emu
            .request_log()
            .iter()
            .any(|l| l.path.ends_with("/listKeys") && l.is_write)
    );
}

#[tokio::test]
async fn catalog_views_models_skus_usages_capacities() {
    let az = Az::default().await;
    let sub = az.env.subscription_id.clone();
    let models = az
        .arm("GET", &format!("{}/models", az.account_path()), None)
        .await;
    let mini = models.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "gpt-4o-mini.2024-07-18")
        .cloned()
        .unwrap();
    assert_eq!(mini["isDefaultVersion"], true);
    let skus: Vec<&str> = mini["skus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        skus,
        vec![
            "Standard",
            "GlobalStandard",
            "DataZoneStandard",
            "GlobalProvisionedManaged",
            "GlobalBatch"
        ]
    );
    assert_eq!(
        mini["skus"][1]["usageName"],
        "OpenAI.GlobalStandard.gpt-4o-mini"
    );
    assert!(
        models.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["format"] != "OpenAI"),
        "a non-OpenAI Foundry model"
    );

    let account_skus = az
        .arm("GET", &format!("{}/skus", az.account_path()), None)
        .await;
    assert_eq!(account_skus.body["value"][1]["sku"]["name"], "S0");

    let loc_models = az
        .arm(
            "GET",
            &format!(
                "subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/eastus/models"
            ),
            None,
        )
        .await;
    assert!(
        loc_models.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["model"]["name"] == "gpt-4o")
    );

    az.emu
        .set_quota(&sub, "eastus", "OpenAI.GlobalStandard.gpt-4o", 50);
    az.arm(
        "PUT",
        &az.deployment_path("cap"),
        Some(&deployment_body("gpt-4o", None, "GlobalStandard", 20)),
    )
    .await;
    let caps = az.arm("GET", &format!("subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/eastus/modelCapacities?modelFormat=OpenAI&modelName=gpt-4o&modelVersion=2024-08-06"), None).await;
    let gs = caps.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "GlobalStandard")
        .cloned()
        .unwrap();
    assert_eq!(gs["properties"]["availableCapacity"], 30);

    let usages = az
        .arm("GET", &format!("{}/usages", az.account_path()), None)
        .await;
    let u = usages.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"]["value"] == "OpenAI.GlobalStandard.gpt-4o")
        .cloned()
        .unwrap();
    assert_eq!(
        (u["currentValue"].as_u64(), u["limit"].as_u64()),
        (Some(20), Some(50))
    );
    assert_eq!(
        u["name"]["localizedValue"],
        "Tokens Per Minute (thousands) - gpt-4o - GlobalStandard"
    );

    let dskus = az
        .arm("GET", &format!("{}/skus", az.deployment_path("cap")), None)
        .await;
    assert_eq!(dskus.body["value"].as_array().unwrap().len(), 5);
    assert_eq!(
        dskus.body["value"][0]["resourceType"],
        "Microsoft.CognitiveServices/accounts/deployments"
    );

    // A replaced catalog changes what can be deployed.
    az.emu.set_catalog(
        &az.emu.default_account_id(),
        vec![testbed::azure::CatalogModel::new(
            "OpenAI",
            "gpt-4o-mini",
            "2024-07-18",
            &["Standard"],
            true,
        )],
    );
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("n"),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    assert_eq!(r.code(), "InvalidResourceProperties");
    assert_eq!(az.emu.catalog(&az.emu.default_account_id()).len(), 1);
}

fn account_path(az: &Az, rg: &str, name: &str) -> String {
    format!(
        "subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}",
        az.env.subscription_id
    )
}

#[tokio::test]
async fn a_custom_subdomain_belongs_to_one_account() {
    let az = Az::default().await;
    let body = |sub: &str| json!({"location": "eastus", "kind": "AIServices", "sku": {"name": "S0"}, "properties": {"customSubDomainName": sub}});
    let first = az
        .arm(
            "PUT",
            &account_path(&az, "rg-a", "first"),
            Some(&body("team-ai")),
        )
        .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let second = az
        .arm(
            "PUT",
            &account_path(&az, "rg-b", "second"),
            Some(&body("Team-AI")),
        )
        .await;
    assert_eq!(second.status, 409);
    assert_eq!(second.code(), "CustomDomainInUse");
    assert_eq!(
        second.message(),
        "Please pick a different name. The subdomain name 'Team-AI' is not available as it's already used by a resource. If the resource using the name was deleted in the last 48 hours, you may need to purge the deleted resource. Learn more at \"https://go.microsoft.com/fwlink/?linkid=2215493\""
    );
    let g = az
        .arm("GET", &account_path(&az, "rg-b", "second"), None)
        .await;
    assert_eq!(g.status, 404, "a refused create leaves nothing");
    // PATCH cannot take it either; the holder may PUT itself again.
    let p = az
        .arm(
            "PATCH",
            &az.account_path(),
            Some(&json!({"properties": {"customSubDomainName": "team-ai"}})),
        )
        .await;
    assert_eq!(p.code(), "CustomDomainInUse");
    az.wait_operation(&first.header("azure-asyncoperation").unwrap())
        .await;
    let again = az
        .arm(
            "PUT",
            &account_path(&az, "rg-a", "first"),
            Some(&body("team-ai")),
        )
        .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    // checkDomainAvailability says the same.
    let check = |name: &str| json!({"subdomainName": name, "type": "Microsoft.CognitiveServices/accounts", "kind": "AIServices"});
    let url = format!(
        "subscriptions/{}/providers/Microsoft.CognitiveServices/checkDomainAvailability",
        az.env.subscription_id
    );
    let taken = az.arm("POST", &url, Some(&check("TEAM-AI"))).await;
    assert_eq!(taken.status, 200);
    assert_eq!(taken.body["isSubdomainAvailable"], false);
    let free = az.arm("POST", &url, Some(&check("unused-name"))).await;
    assert_eq!(free.body["isSubdomainAvailable"], true);
}

#[tokio::test]
async fn regions_decide_where_accounts_go_and_which_models_they_offer() {
    let az = Az::default().await;
    let body = |loc: &str| json!({"location": loc, "kind": "AIServices", "sku": {"name": "S0"}, "properties": {}});
    let nowhere = az
        .arm(
            "PUT",
            &account_path(&az, "rg", "nowhere"),
            Some(&body("atlantis")),
        )
        .await;
    assert_eq!(nowhere.status, 400);
    assert_eq!(nowhere.code(), "LocationNotAvailableForResourceType");
    assert!(nowhere.message().contains("'atlantis'") && nowhere.message().contains("westeurope"));
    let eu = az
        .arm(
            "PUT",
            &account_path(&az, "rg", "eu"),
            Some(&body("West Europe")),
        )
        .await;
    assert_eq!(eu.status, 201, "{:?}", eu.body);
    az.wait_operation(&eu.header("azure-asyncoperation").unwrap())
        .await;
    // Phi-4 is not offered in westeurope: the account cannot deploy it.
    let mut phi = deployment_body("Phi-4", None, "GlobalStandard", 1);
    phi["properties"]["model"]["format"] = json!("Microsoft");
    let r = az
        .arm(
            "PUT",
            &format!("{}/deployments/phi", account_path(&az, "rg", "eu")),
            Some(&phi),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "DeploymentModelNotSupported");
    // The location models show it: offered in eastus, not in westeurope.
    let names = |loc: &str| {
        let az = &az;
        let loc = loc.to_string();
        async move {
            let r = az
                .arm(
                    "GET",
                    &format!(
                        "subscriptions/{}/providers/Microsoft.CognitiveServices/locations/{loc}/models",
                        az.env.subscription_id
                    ),
                    None,
                )
                .await;
            r.body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["model"]["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert!(names("eastus").await.contains(&"Phi-4".to_string()));
    let eu_models = names("westeurope").await;
    assert!(!eu_models.contains(&"Phi-4".to_string()), "{eu_models:?}");
    assert!(eu_models.contains(&"gpt-4o-mini".to_string()));
    // An OpenAI model deploys there.
    let r = az
        .arm(
            "PUT",
            &format!("{}/deployments/chat", account_path(&az, "rg", "eu")),
            Some(&deployment_body("gpt-4o-mini", None, "GlobalStandard", 1)),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}
