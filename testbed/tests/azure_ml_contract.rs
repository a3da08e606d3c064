//! Contract suite of the Azure Machine Learning emulator against Microsoft's published
//! `Microsoft.MachineLearningServices` spec (2026-09-01) in `AZURE_SPECS_ML_DIR` (default:
//! `azure-specs-ml` beside `AZURE_SPECS_DIR`): replays every example file of the tree (the
//! request is accepted, the response has a documented status, validates and carries the
//! example's fields and headers), runs a scenario over every route without a contract
//! violation, and checks that non-conforming request bodies are rejected.
//! The examples are TypeSpec-generated placeholders (`"string"` for a model id or an instance
//! type); a replay replaces those by catalogue values the emulator can accept, keeping the
//! shape. Kubernetes online deployments are not emulated (managed compute only): their two
//! examples are listed as skipped. Without specs the suite says so; with REQUIRE_AZURE_SPECS=1
//! that is a failure.
mod azure_common;
mod azure_ml_common;

use std::path::{Path, PathBuf};

use azure_common::*;
use azure_ml_common::*;
use serde_json::{Value, json};
use testbed::azure::contract::{self, Contract, SpecKind};
use testbed::azure::{AzureConfig, WorkspaceSeed, ml};

fn specs() -> Option<PathBuf> {
    let found = ml::specs_dir_from_env();
    if found.is_none() {
        let banner = "=".repeat(78);
        eprintln!(
            "{banner}\nAZURE ML CONTRACT SUITE NOT RUN: no Machine Learning specs (set AZURE_SPECS_ML_DIR, or put\nazure-specs-ml beside AZURE_SPECS_DIR; this project expects ../shared/azure-specs-ml).\n{banner}"
        );
        assert!(
            !std::env::var("REQUIRE_AZURE_SPECS").is_ok_and(|v| v == "1"),
            "REQUIRE_AZURE_SPECS=1 but the Azure Machine Learning specs are missing"
        );
    }
    found
}

async fn start(dir: &Path) -> Az {
    let az = Az::start(AzureConfig {
        ml_specs_dir: Some(dir.to_path_buf()),
        ..Default::default()
    })
    .await;
    assert!(az.emu.ml_contract_loaded());
    az
}

/// Read-only fields of a resource body, dropped when a documented response seeds a resource.
fn writable(body: &Value) -> Value {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        for k in ["id", "name", "type", "systemData"] {
            o.remove(k);
        }
    }
    if let Some(p) = b["properties"].as_object_mut() {
        for k in [
            "provisioningState",
            "scoringUri",
            "swaggerUri",
            "endpointState",
            "inferenceEndpoint",
            "marketplaceSubscriptionId",
        ] {
            p.remove(k);
        }
    }
    b
}

/// Replaces the examples' placeholder values by values the catalogue accepts.
fn fix_placeholders(op: &str, body: &mut Value) {
    let p = &mut body["properties"];
    match op {
        "OnlineEndpoints_CreateOrUpdate" => {
            p["traffic"] = json!({});
            p["mirrorTraffic"] = json!({});
        }
        "OnlineDeployments_CreateOrUpdate" => {
            p["model"] = json!(PHI);
            p["instanceType"] = json!(NC24);
            body["sku"]["capacity"] = json!(1);
        }
        "ServerlessEndpoints_CreateOrUpdate" => p["modelSettings"]["modelId"] = json!(MISTRAL),
        "MarketplaceSubscriptions_CreateOrUpdate" => p["modelId"] = json!(MISTRAL),
        _ => {}
    }
}

struct Replay<'a> {
    az: &'a Az,
    contract: &'a Contract,
}

impl Replay<'_> {
    async fn seed(&self, path: &str, body: &Value, problems: &mut Vec<String>) {
        let r = self
            .az
            .arm("PUT", &format!("{path}?api-version=2026-09-01"), Some(body))
            .await;
        if r.status >= 300 {
            problems.push(format!("seeding {path} failed: {} {:?}", r.status, r.body));
        }
        self.az.emu.complete_ml_operations();
    }

    /// Replays one example; returns the problems found.
    async fn run(&self, file: &Path) -> Vec<String> {
        let example: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let Some(at) = self.contract.example_operation(file, &example) else {
            return vec![format!(
                "no operation in the spec documents {}",
                file.display()
            )];
        };
        let (spec, op) = self.contract.operation(at);
        assert_eq!(spec.kind, SpecKind::Arm);
        let params = &example["parameters"];
        let p = |n: &str| params[n].as_str().unwrap_or_default().to_string();
        let documented = example["responses"]
            .as_object()
            .and_then(|r| {
                r.iter()
                    .find(|(k, _)| k.starts_with('2'))
                    .map(|(_, v)| v["body"].clone())
            })
            .unwrap_or(Value::Null);
        let (sub, rg, ws) = (
            p("subscriptionId"),
            p("resourceGroupName"),
            p("workspaceName"),
        );
        self.az.emu.add_ml_workspace(WorkspaceSeed {
            subscription_id: sub.clone(),
            resource_group: rg.clone(),
            name: ws.clone(),
            location: "eastus".into(),
            kind: "Project".into(),
            hub: None,
        });
        let ws_path = format!(
            "subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"
        );
        let mut problems = Vec::new();
        // Seed what the example presupposes.
        let endpoint = p("endpointName");
        if op.id.starts_with("OnlineEndpoints_") && op.id != "OnlineEndpoints_CreateOrUpdate"
            || op.id.starts_with("OnlineDeployments_")
        {
            let mut body = if op.id == "OnlineEndpoints_Get" {
                writable(&documented)
            } else {
                endpoint_body("Key", json!({}))
            };
            fix_placeholders("OnlineEndpoints_CreateOrUpdate", &mut body);
            if op.id == "OnlineEndpoints_ListKeys" {
                body["properties"]["authMode"] = json!("Key");
            }
            self.seed(
                &format!("{ws_path}/onlineEndpoints/{endpoint}"),
                &body,
                &mut problems,
            )
            .await;
        }
        if op.id.starts_with("OnlineDeployments_") && op.id != "OnlineDeployments_CreateOrUpdate" {
            let path = format!(
                "{ws_path}/onlineEndpoints/{endpoint}/deployments/{}",
                p("deploymentName")
            );
            self.seed(&path, &online_deployment_body(PHI, NC24, 1), &mut problems)
                .await;
        }
        if op.id.starts_with("ServerlessEndpoints_") {
            self.seed(
                &format!("{ws_path}/marketplaceSubscriptions/mistral"),
                &marketplace_body(MISTRAL),
                &mut problems,
            )
            .await;
        }
        if op.id.starts_with("ServerlessEndpoints_")
            && op.id != "ServerlessEndpoints_CreateOrUpdate"
        {
            let mut body = if op.id == "ServerlessEndpoints_Get" {
                writable(&documented)
            } else {
                serverless_body(MISTRAL)
            };
            fix_placeholders("ServerlessEndpoints_CreateOrUpdate", &mut body);
            self.seed(
                &format!("{ws_path}/serverlessEndpoints/{}", p("name")),
                &body,
                &mut problems,
            )
            .await;
        }
        let mut example = example.clone();
        if let Some(body) = example["parameters"].get_mut("body") {
            fix_placeholders(&op.id, body);
        }
        let req = self.contract.example_request(at, &example, &[]);
        let url = format!(
            "{}{}",
            self.az.env.resource_manager_endpoint, req.path_and_query
        );
        let token = self.az.token("https://management.azure.com").await;
        let r = self
            .az
            .send(&req.method, &url, Some(&token), req.body.as_ref())
            .await;
        problems.extend(self.contract.example_response_problems(
            at,
            &example,
            r.status,
            &r.body,
            |h| r.header(h).is_some(),
        ));
        self.az.emu.complete_ml_operations();
        problems
    }
}

#[tokio::test]
async fn every_ml_example_file_replays_against_the_emulator() {
    let Some(dir) = specs() else { return };
    let contract = Contract::load(&dir).expect("load the ML specs");
    let az = start(&dir).await;
    let replay = Replay {
        az: &az,
        contract: &contract,
    };
    let files = contract::example_files(&dir);
    let (skipped, files): (Vec<PathBuf>, Vec<PathBuf>) = files
        .into_iter()
        .partition(|f| f.to_string_lossy().contains("KubernetesOnlineDeployment"));
    assert!(
        !files.is_empty(),
        "no example files under {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        for p in replay.run(file).await {
            failures.push(format!(
                "{}: {p}",
                file.strip_prefix(&dir).unwrap_or(file).display()
            ));
        }
    }
    let summary = format!(
        "azure ml contract: {} example files replayed against Microsoft.MachineLearningServices {} ({} Kubernetes-deployment examples skipped: managed compute only); {} failures",
        files.len(),
        contract.api_versions(SpecKind::Arm).join(", "),
        skipped.len(),
        failures.len()
    );
    println!("{summary}");
    eprintln!("{summary}");
    assert!(
        failures.is_empty(),
        "example replay failures:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_full_scenario_over_every_route_produces_no_contract_violation() {
    let Some(dir) = specs() else { return };
    let az = start(&dir).await;
    let ml = az.emu.ml_env();
    let sub_level = format!(
        "subscriptions/{}/providers/Microsoft.MachineLearningServices",
        ml.subscription_id
    );
    let rg_level = format!(
        "subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices",
        ml.subscription_id, ml.resource_group
    );
    let ok = |r: &Reply, what: &str| assert!(r.status < 300, "{what}: {} {:?}", r.status, r.body);
    ok(&az.arm("GET", &ws_path(&az), None).await, "workspace");
    ok(
        &az.arm("GET", &format!("{rg_level}/workspaces"), None).await,
        "workspaces by group",
    );
    ok(
        &az.arm("GET", &format!("{sub_level}/workspaces"), None)
            .await,
        "workspaces by subscription",
    );
    ok(
        &az.arm("GET", &format!("{sub_level}/locations/eastus/usages"), None)
            .await,
        "usages",
    );
    ok(
        &az.arm(
            "GET",
            &format!("{sub_level}/locations/eastus/vmSizes"),
            None,
        )
        .await,
        "vmSizes",
    );
    let registry = format!("{rg_level}/registries/azureml/models");
    ok(&az.arm("GET", &registry, None).await, "models");
    ok(
        &az.arm("GET", &format!("{registry}/Phi-4-mini-instruct"), None)
            .await,
        "model",
    );
    ok(
        &az.arm(
            "GET",
            &format!("{registry}/Phi-4-mini-instruct/versions"),
            None,
        )
        .await,
        "versions",
    );
    ok(
        &az.arm(
            "GET",
            &format!("{registry}/Phi-4-mini-instruct/versions/1"),
            None,
        )
        .await,
        "version",
    );
    assert_eq!(
        status(
            &az,
            "GET",
            &format!("{registry}/Phi-4-mini-instruct/versions/99")
        )
        .await,
        404
    );

    endpoint_with_deployment(&az, "s", "blue", PHI, NC24, 1).await;
    let ep = endpoint_path(&az, "s");
    ok(
        &az.arm("GET", &format!("{}/onlineEndpoints", ws_path(&az)), None)
            .await,
        "endpoints",
    );
    ok(
        &az.arm("PATCH", &ep, Some(&json!({"tags": {"team": "a"}})))
            .await,
        "endpoint patch",
    );
    az.emu.complete_ml_operations();
    ok(
        &az.arm("POST", &format!("{ep}/listKeys"), None).await,
        "listKeys",
    );
    ok(
        &az.arm(
            "POST",
            &format!("{ep}/regenerateKeys"),
            Some(&json!({"keyType": "Secondary"})),
        )
        .await,
        "regenerateKeys",
    );
    az.emu.complete_ml_operations();
    ok(
        &az.arm("GET", &format!("{ep}/deployments"), None).await,
        "deployments",
    );
    ok(
        &az.arm("GET", &deployment_path(&az, "s", "blue"), None)
            .await,
        "deployment",
    );
    ok(
        &az.arm(
            "GET",
            &format!("{}/skus", deployment_path(&az, "s", "blue")),
            None,
        )
        .await,
        "skus",
    );
    ok(
        &az.arm(
            "PATCH",
            &deployment_path(&az, "s", "blue"),
            Some(&json!({"sku": {"capacity": 2}})),
        )
        .await,
        "deployment patch",
    );
    az.emu.complete_ml_operations();
    let rejected = put_deployment(&az, "s", "blue", LLAMA_70B, NC24, 1).await;
    assert_eq!(rejected.status, 400, "errors are ErrorResponse bodies too");
    create_endpoint(&az, "tok", "AMLToken", json!({})).await;
    ok(
        &az.arm(
            "POST",
            &format!("{}/token", endpoint_path(&az, "tok")),
            None,
        )
        .await,
        "token",
    );

    write_ok(
        &az,
        "PUT",
        &marketplace_path(&az, "mistral"),
        Some(&marketplace_body(MISTRAL)),
    )
    .await;
    ok(
        &az.arm("GET", &marketplace_path(&az, "mistral"), None).await,
        "subscription",
    );
    ok(
        &az.arm(
            "GET",
            &format!("{}/marketplaceSubscriptions", ws_path(&az)),
            None,
        )
        .await,
        "subscriptions",
    );
    write_ok(
        &az,
        "PUT",
        &serverless_path(&az, "chat"),
        Some(&serverless_body(MISTRAL)),
    )
    .await;
    ok(
        &az.arm("GET", &serverless_path(&az, "chat"), None).await,
        "serverless",
    );
    ok(
        &az.arm(
            "GET",
            &format!("{}/serverlessEndpoints", ws_path(&az)),
            None,
        )
        .await,
        "serverless list",
    );
    ok(
        &az.arm(
            "PATCH",
            &serverless_path(&az, "chat"),
            Some(&json!({"tags": {"a": "b"}})),
        )
        .await,
        "serverless patch",
    );
    ok(
        &az.arm(
            "POST",
            &format!("{}/listKeys", serverless_path(&az, "chat")),
            None,
        )
        .await,
        "serverless keys",
    );
    ok(
        &az.arm(
            "POST",
            &format!("{}/regenerateKeys", serverless_path(&az, "chat")),
            Some(&json!({"keyType": "Primary"})),
        )
        .await,
        "serverless regenerate",
    );
    az.emu.complete_ml_operations();

    write_ok(&az, "PUT", &ep, Some(&endpoint_body("Key", json!({})))).await;
    write_ok(&az, "DELETE", &deployment_path(&az, "s", "blue"), None).await;
    write_ok(&az, "DELETE", &ep, None).await;
    write_ok(&az, "DELETE", &serverless_path(&az, "chat"), None).await;
    write_ok(&az, "DELETE", &marketplace_path(&az, "mistral"), None).await;
    assert_eq!(
        status(&az, "DELETE", &marketplace_path(&az, "mistral")).await,
        204
    );
    assert_eq!(status(&az, "GET", &serverless_path(&az, "chat")).await, 404);
    // `Az` fails the test on drop if anything above violated the spec.
}

#[tokio::test]
async fn request_bodies_that_do_not_match_the_spec_are_rejected() {
    let Some(dir) = specs() else { return };
    let az = start(&dir).await;
    create_endpoint(&az, "e", "Key", json!({})).await;
    let mut body = online_deployment_body(PHI, NC24, 1);
    body["sku"]["capacity"] = json!("two");
    let r = az
        .arm("PUT", &deployment_path(&az, "e", "blue"), Some(&body))
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidRequestContent"));
    assert!(r.message().contains("capacity"), "{}", r.message());
    let r = az
        .arm(
            "PUT",
            &serverless_path(&az, "x"),
            Some(&json!({"location": "eastus"})),
        )
        .await;
    assert_eq!(
        r.code(),
        "InvalidRequestContent",
        "properties is required by the spec"
    );
    let r = az
        .arm(
            "PUT",
            &marketplace_path(&az, "x"),
            Some(&json!({"properties": {}})),
        )
        .await;
    assert_eq!(
        r.code(),
        "InvalidRequestContent",
        "modelId is required by the spec"
    );
    assert!(
        az.emu
            .online_deployment(&endpoint_id(&az, "e"), "blue")
            .is_none()
    );
    // The older api-versions have no spec here: the same body gets the emulator's own checks.
    let r = az
        .arm(
            "PUT",
            &format!(
                "{}?api-version=2023-04-01-preview",
                deployment_path(&az, "e", "blue")
            ),
            Some(&body),
        )
        .await;
    assert!(r.message().contains("sku.capacity"), "{}", r.message());
}

#[tokio::test]
async fn the_ml_checks_themselves_catch_broken_responses() {
    let Some(dir) = specs() else { return };
    let contract = Contract::load(&dir).expect("load the ML specs");
    let path = "/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w/onlineEndpoints/e";
    let at = contract
        .find(SpecKind::Arm, "2026-09-01", "GET", path)
        .expect("OnlineEndpoints_Get");
    assert_eq!(contract.operation(at).1.id, "OnlineEndpoints_Get");
    let good = json!({"location": "eastus", "properties": {"authMode": "Key"}});
    assert!(contract.validate_response(at, 200, Some(&good)).is_ok());
    let no_auth = json!({"location": "eastus", "properties": {}});
    assert!(
        contract.validate_response(at, 200, Some(&no_auth)).is_err(),
        "authMode is required"
    );
    let keys = contract
        .find(
            SpecKind::Arm,
            "2026-09-01",
            "POST",
            &format!("{path}/listKeys"),
        )
        .expect("OnlineEndpoints_ListKeys");
    assert!(
        contract
            .validate_response(keys, 200, Some(&json!({"primaryKey": 1})))
            .is_err()
    );
    let version = contract
        .find(SpecKind::Arm, "2026-09-01", "GET", "/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/registries/azureml/models/m/versions/1")
        .expect("RegistryModelVersions_Get");
    assert_eq!(
        contract.operation(version).1.id,
        "RegistryModelVersions_Get"
    );
    assert!(
        contract
            .validate_response(version, 201, Some(&json!({"properties": {}})))
            .is_err(),
        "201 is not documented"
    );
}
