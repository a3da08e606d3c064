//! Capacity rules on the Azure emulator (issue 11): each model SKU's `CapacityConfig`
//! (minimum, maximum, step, default, allowedValues) is rendered in account models, location
//! models and deployment SKUs, and enforced on deployment PUT and PATCH with Azure's 400
//! `InvalidCapacity`; the PTU rules of the seeded catalog are Microsoft's published ones.
mod azure_common;

use azure_common::*;
use serde_json::{Value, json};
use testbed::azure::{CapacityRule, CatalogModel};

fn sku_capacity(models: &Value, name: &str, version: &str, sku: &str) -> Value {
    models["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            if m["model"].is_object() {
                &m["model"]
            } else {
                m
            }
        })
        .find(|m| {
            m["name"] == name && m["version"] == version || m["name"] == format!("{name}.{version}")
        })
        .and_then(|m| m["skus"].as_array())
        .and_then(|skus| skus.iter().find(|s| s["name"] == sku))
        .map(|s| s["capacity"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn published_rules_are_rendered_in_every_catalog_view() {
    let az = Az::default().await;
    let models = az
        .arm("GET", &format!("{}/models", az.account_path()), None)
        .await;
    assert_eq!(
        sku_capacity(
            &models.body,
            "gpt-4o",
            "2024-08-06",
            "GlobalProvisionedManaged"
        ),
        json!({"minimum": 15, "maximum": 10000, "step": 5, "default": 15})
    );
    assert_eq!(
        sku_capacity(&models.body, "gpt-4o-mini", "2024-07-18", "GlobalStandard"),
        json!({"minimum": 1, "maximum": 10000, "step": 1, "default": 10})
    );
    let location = az
        .arm(
            "GET",
            &format!(
                "subscriptions/{}/providers/Microsoft.CognitiveServices/locations/eastus/models",
                az.env.subscription_id
            ),
            None,
        )
        .await;
    assert_eq!(location.status, 200);
    assert_eq!(
        sku_capacity(
            &location.body,
            "gpt-4o",
            "2024-08-06",
            "GlobalProvisionedManaged"
        )["step"],
        5
    );
    az.emu.put_deployment_out_of_band(
        &az.emu.default_account_id(),
        "ptu",
        deployment_body("gpt-4o", Some("2024-08-06"), "GlobalProvisionedManaged", 15),
    );
    let skus = az
        .arm("GET", &format!("{}/skus", az.deployment_path("ptu")), None)
        .await;
    let ptu = skus.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sku"]["name"] == "GlobalProvisionedManaged")
        .cloned()
        .unwrap();
    assert_eq!(ptu["capacity"]["minimum"], 15);
    assert_eq!(ptu["capacity"]["step"], 5);
    assert_eq!(
        ptu["sku"]["capacity"], 15,
        "the SKU shows the default capacity"
    );
}

#[tokio::test]
async fn a_capacity_below_the_minimum_or_off_the_step_is_invalid_capacity() {
    let az = Az::default().await;
    let ptu = |c| deployment_body("gpt-4o", Some("2024-08-06"), "GlobalProvisionedManaged", c);
    let r = az
        .arm("PUT", &az.deployment_path("ptu"), Some(&ptu(3)))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "InvalidCapacity");
    assert_eq!(
        r.message(),
        "The specified capacity '3' of account deployment should be at least 15 and no more than 10000."
    );
    let r = az
        .arm("PUT", &az.deployment_path("ptu"), Some(&ptu(17)))
        .await;
    assert_eq!(r.code(), "InvalidCapacity");
    assert_eq!(
        r.message(),
        "The specified capacity '17' of account deployment should be at least 15 and no more than 10000, in increments of 5."
    );
    assert!(
        az.emu
            .deployment(&az.emu.default_account_id(), "ptu")
            .is_none(),
        "a rejected PUT stores nothing"
    );
    let r = az
        .arm("PUT", &az.deployment_path("ptu"), Some(&ptu(20)))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // PATCH is checked the same way.
    let r = az
        .arm(
            "PATCH",
            &az.deployment_path("ptu"),
            Some(&json!({"sku": {"name": "GlobalProvisionedManaged", "capacity": 22}})),
        )
        .await;
    assert_eq!(r.code(), "InvalidCapacity");
    let r = az
        .arm(
            "PATCH",
            &az.deployment_path("ptu"),
            Some(&json!({"sku": {"name": "GlobalProvisionedManaged", "capacity": 25}})),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    // Standard SKUs keep minimum 1, step 1.
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("std"),
            Some(&deployment_body("gpt-4o", None, "GlobalStandard", 3)),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

#[tokio::test]
async fn allowed_values_restrict_the_capacity_to_the_listed_ones() {
    let az = Az::default().await;
    let rule = CapacityRule {
        minimum: 50,
        maximum: 200,
        step: 50,
        default: 50,
        allowed_values: vec![50, 100, 200],
    };
    az.emu.set_catalog(
        &az.emu.default_account_id(),
        vec![
            CatalogModel::new("OpenAI", "gpt-4o", "2024-08-06", &["Standard"], true)
                .with_capacity("Standard", rule),
        ],
    );
    let models = az
        .arm("GET", &format!("{}/models", az.account_path()), None)
        .await;
    assert_eq!(
        sku_capacity(&models.body, "gpt-4o", "2024-08-06", "Standard")["allowedValues"],
        json!([50, 100, 200])
    );
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("a"),
            Some(&deployment_body("gpt-4o", None, "Standard", 150)),
        )
        .await;
    assert_eq!(r.code(), "InvalidCapacity");
    assert_eq!(
        r.message(),
        "The specified capacity '150' of account deployment should be one of the allowed values 50, 100, 200."
    );
    let r = az
        .arm(
            "PUT",
            &az.deployment_path("a"),
            Some(&deployment_body("gpt-4o", None, "Standard", 200)),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

#[test]
fn the_rule_check_itself() {
    let ptu = CapacityRule::published("gpt-4o", "GlobalProvisionedManaged", 1000);
    assert_eq!((ptu.minimum, ptu.step, ptu.default), (15, 5, 15));
    assert!(ptu.check(15).is_ok() && ptu.check(1000).is_ok());
    assert!(ptu.check(10).is_err() && ptu.check(16).is_err() && ptu.check(1005).is_err());
    let regional = CapacityRule::published("gpt-4o", "ProvisionedManaged", 1000);
    assert_eq!((regional.minimum, regional.step), (50, 50));
    let mini = CapacityRule::published("gpt-4o-mini", "ProvisionedManaged", 1000);
    assert_eq!((mini.minimum, mini.step), (25, 25));
    let standard = CapacityRule::published("gpt-4o", "GlobalStandard", 1000);
    assert!(standard.check(1).is_ok() && standard.check(7).is_ok());
    assert!(standard.check(0).is_err() && standard.check(1001).is_err());
}
