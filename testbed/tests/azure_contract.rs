//! Contract suite: the Azure emulator against Microsoft's published specs in
//! `AZURE_SPECS_DIR` (`../shared/azure-specs`). Replays every example file (the example request
//! is accepted; the response has a status the example documents, validates against the spec's
//! JSON schema and has every field of the example response), checks that a full scenario
//! produces no contract violation, and that invalid request bodies are rejected.
//! Without specs the suite says so loudly; with REQUIRE_AZURE_SPECS=1 that is a failure.
mod azure_common;

use std::path::{Path, PathBuf};

use azure_common::*;
use serde_json::{Value, json};
use testbed::azure::contract::{self, Contract, SpecKind};
use testbed::azure::{AccountSeed, AzureConfig, CapacityRule, CatalogModel};

fn specs() -> Option<PathBuf> {
    match contract::specs_dir_from_env() {
        Some(d) => Some(d),
        None => {
            let banner = "=".repeat(78);
            eprintln!(
                "{banner}\nAZURE CONTRACT SUITE NOT RUN: AZURE_SPECS_DIR is not set or does not exist.\nGet the specs (Microsoft's azure-rest-api-specs repository, https://github.com/Azure/azure-rest-api-specs;\nthis project expects the copy at ../shared/azure-specs) and run with\n  AZURE_SPECS_DIR=../shared/azure-specs cargo nextest run -p testbed --test azure_contract\n{banner}"
            );
            if std::env::var("REQUIRE_AZURE_SPECS").is_ok_and(|v| v == "1") {
                panic!(
                    "REQUIRE_AZURE_SPECS=1 but the Azure specs are missing (set AZURE_SPECS_DIR)"
                );
            }
            None
        }
    }
}

fn example_catalog() -> Vec<CatalogModel> {
    let mut c = testbed::azure::catalog::default_catalog();
    // The deployment SKUs example lists a SKU with allowed values first.
    c.push(
        CatalogModel::new(
            "OpenAI",
            "ada",
            "1",
            &["ProvisionedManaged", "Standard", "GlobalStandard"],
            true,
        )
        .with_capacity(
            "ProvisionedManaged",
            CapacityRule {
                minimum: 100,
                maximum: 1000,
                step: 100,
                default: 100,
                allowed_values: vec![100, 200],
            },
        ),
    );
    c.push(CatalogModel::new(
        "OpenAI",
        "gpt-4",
        "0613",
        &["Standard", "ProvisionedManaged"],
        true,
    ));
    c
}

fn strip_read_only_account(body: &Value) -> Value {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        for k in ["id", "name", "type", "etag", "systemData"] {
            o.remove(k);
        }
    }
    if let Some(p) = b["properties"].as_object_mut() {
        for k in [
            "provisioningState",
            "endpoint",
            "endpoints",
            "internalId",
            "dateCreated",
            "isMigrated",
            "capabilities",
        ] {
            p.remove(k);
        }
    }
    b
}

struct Replay<'a> {
    az: &'a Az,
    contract: &'a Contract,
    arm_token: String,
    kv_token: String,
}

impl Replay<'_> {
    fn ensure_account(&self, sub: &str, rg: &str, name: &str, location: &str) -> String {
        let id = format!(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}"
        );
        if self.az.emu.account_endpoint(&id).is_none() {
            self.az.emu.add_account(AccountSeed {
                subscription_id: sub.into(),
                resource_group: rg.into(),
                name: name.into(),
                location: location.into(),
                kind: "AIServices".into(),
            });
            self.az.emu.set_catalog(&id, example_catalog());
        }
        id
    }

    async fn arm(&self, method: &str, url: &str, body: Option<&Value>) -> Reply {
        self.az.send(method, url, Some(&self.arm_token), body).await
    }

    /// Replays one example; returns problems found.
    async fn run(&self, file: &Path) -> Vec<String> {
        let example: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let Some(at) = self.contract.example_operation(file, &example) else {
            return vec![format!(
                "no operation in the specs documents {}",
                file.display()
            )];
        };
        let (spec, op) = self.contract.operation(at);
        let params = example["parameters"].clone();
        let p = |n: &str| params[n].as_str().map(str::to_string);
        let mut problems = Vec::new();
        let responses = example["responses"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let first_2xx = responses
            .iter()
            .find(|(k, _)| k.starts_with('2'))
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null);

        // Seed the state the example presupposes.
        let mut overrides: Vec<(String, String)> = Vec::new();
        let base = match spec.kind {
            SpecKind::Arm => self.az.env.resource_manager_endpoint.clone(),
            SpecKind::KeyVault => self.az.env.key_vault_uri.clone(),
        };
        if spec.kind == SpecKind::Arm {
            let sub = p("subscriptionId")
                .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into());
            let location = p("location").unwrap_or_else(|| "westus".into());
            if let (Some(rg), Some(name)) = (p("resourceGroupName"), p("accountName")) {
                if op.id != "Accounts_Create" {
                    let id = self.ensure_account(&sub, &rg, &name, &location);
                    if op.id == "Accounts_Get" {
                        let url = format!(
                            "{base}{}?api-version={}",
                            id.trim_start_matches('/'),
                            spec.api_version
                        );
                        let seed = strip_read_only_account(&first_2xx["body"]);
                        let r = self.arm("PUT", &url, Some(&seed)).await;
                        if r.status >= 300 {
                            problems.push(format!(
                                "seeding the account failed: {} {:?}",
                                r.status, r.body
                            ));
                        }
                    }
                    if op.id == "Deployments_CreateOrUpdate" {
                        self.az.emu.delete_deployment_out_of_band(
                            &id,
                            &p("deploymentName").unwrap_or_default(),
                        );
                    }
                    if let Some(d) =
                        p("deploymentName").filter(|_| op.id != "Deployments_CreateOrUpdate")
                    {
                        let body = if first_2xx["body"]["properties"]["model"].is_object() {
                            first_2xx["body"].clone()
                        } else {
                            json!({"sku": {"name": "Standard", "capacity": 1}, "properties": {"model": {"format": "OpenAI", "name": "ada", "version": "1"}}})
                        };
                        self.az.emu.put_deployment_out_of_band(&id, &d, body);
                    }
                    if let Some(policy) =
                        p("raiPolicyName").filter(|_| op.id != "RaiPolicies_CreateOrUpdate")
                    {
                        let url = format!(
                            "{base}{}/raiPolicies/{policy}?api-version={}",
                            id.trim_start_matches('/'),
                            spec.api_version
                        );
                        let body = json!({"properties": first_2xx["body"]["properties"].clone()});
                        let r = self.arm("PUT", &url, Some(&body)).await;
                        if r.status >= 300 {
                            problems.push(format!(
                                "seeding the RAI policy failed: {} {:?}",
                                r.status, r.body
                            ));
                        }
                    }
                }
            } else {
                self.ensure_account(&sub, "example-rg", "example-account", &location);
            }
        } else if let Some(name) = p("secret-name")
            && op.id != "SetSecret"
        {
            {
                let value = first_2xx["body"]["value"]
                    .as_str()
                    .unwrap_or("seeded")
                    .to_string();
                let url = format!("{base}secrets/{name}?api-version={}", spec.api_version);
                let r = self
                    .az
                    .send(
                        "PUT",
                        &url,
                        Some(&self.kv_token),
                        Some(&json!({"value": value})),
                    )
                    .await;
                let version = r.body["id"]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                overrides.push(("secret-version".into(), version));
            }
        }

        // Replay the example's request; check the response against the example and the spec.
        let req = self.contract.example_request(at, &example, &overrides);
        let url = format!("{base}{}", req.path_and_query);
        let token = if spec.kind == SpecKind::Arm {
            &self.arm_token
        } else {
            &self.kv_token
        };
        let r = self
            .az
            .send(&req.method, &url, Some(token), req.body.as_ref())
            .await;
        problems.extend(self.contract.example_response_problems(
            at,
            &example,
            r.status,
            &r.body,
            |h| r.header(h).is_some(),
        ));
        problems
    }
}

#[tokio::test]
async fn every_example_file_replays_against_the_emulator() {
    let Some(dir) = specs() else { return };
    let contract = Contract::load(&dir).expect("load specs");
    let az = Az::start(AzureConfig {
        specs_dir: Some(dir.clone()),
        ..Default::default()
    })
    .await;
    assert!(az.emu.contract_loaded());
    let replay = Replay {
        az: &az,
        contract: &contract,
        arm_token: az.token("https://management.azure.com").await,
        kv_token: az.token("https://vault.azure.net").await,
    };
    let files = contract::example_files(&dir);
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
    let violations = az.emu.contract_violations();
    let summary = format!(
        "azure contract: {} example files checked against {} specs ({} api-versions of Microsoft.CognitiveServices, Key Vault {}); {} failures",
        files.len(),
        contract.specs.len(),
        contract.api_versions(SpecKind::Arm).join(", "),
        contract.api_versions(SpecKind::KeyVault).join(", "),
        failures.len() + violations.len(),
    );
    println!("{summary}");
    eprintln!("{summary}");
    // Also left in the target folder, since test runners hide a passing test's output.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let _ = std::fs::create_dir_all(&target);
    let _ = std::fs::write(
        target.join("azure-contract-summary.txt"),
        format!("{summary}\n"),
    );
    assert!(
        failures.is_empty(),
        "example replay failures:\n{}",
        failures.join("\n")
    );
    assert!(
        violations.is_empty(),
        "contract violations:\n{}",
        violations.join("\n")
    );
}

#[tokio::test]
async fn a_full_scenario_produces_no_contract_violation() {
    let Some(dir) = specs() else { return };
    let az = Az::start(AzureConfig {
        specs_dir: Some(dir),
        ..Default::default()
    })
    .await;
    let sub = az.env.subscription_id.clone();
    for api in ["2025-09-01", "2026-09-01"] {
        let path = format!(
            "{}?api-version={api}",
            az.deployment_path(&format!("s-{api}"))
        );
        let mut body = deployment_body("gpt-4o-mini", None, "GlobalStandard", 2);
        body["tags"] = json!({"owner": "x"});
        body["properties"]["raiPolicyName"] = json!("Microsoft.DefaultV2");
        assert_eq!(az.arm("PUT", &path, Some(&body)).await.status, 201);
        assert_eq!(az.arm("GET", &path, None).await.status, 200);
        assert_eq!(
            az.arm(
                "PATCH",
                &path,
                Some(&json!({"sku": {"name": "GlobalStandard", "capacity": 3}}))
            )
            .await
            .status,
            202
        );
        assert_eq!(
            az.arm(
                "GET",
                &format!("{}/deployments?api-version={api}", az.account_path()),
                None
            )
            .await
            .status,
            200
        );
        assert_eq!(
            az.arm(
                "GET",
                &format!("{}?api-version={api}", az.account_path()),
                None
            )
            .await
            .status,
            200
        );
        assert_eq!(az.arm("GET", &format!("subscriptions/{sub}/providers/Microsoft.CognitiveServices/accounts?api-version={api}"), None).await.status, 200);
        assert_eq!(
            az.arm(
                "POST",
                &format!("{}/listKeys?api-version={api}", az.account_path()),
                None
            )
            .await
            .status,
            200
        );
        assert_eq!(
            az.arm(
                "POST",
                &format!("{}/regenerateKey?api-version={api}", az.account_path()),
                Some(&json!({"keyName": "Key2"}))
            )
            .await
            .status,
            200
        );
        assert_eq!(
            az.arm(
                "GET",
                &format!("{}/models?api-version={api}", az.account_path()),
                None
            )
            .await
            .status,
            200
        );
        assert_eq!(
            az.arm(
                "GET",
                &format!("{}/usages?api-version={api}", az.account_path()),
                None
            )
            .await
            .status,
            200
        );
        assert_eq!(az.arm("GET", &format!("subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/eastus/usages?api-version={api}"), None).await.status, 200);
        assert_eq!(az.arm("GET", &format!("subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/eastus/models?api-version={api}"), None).await.status, 200);
        let skus = az
            .arm(
                "GET",
                &format!(
                    "{}/skus?api-version={api}",
                    az.deployment_path(&format!("s-{api}"))
                ),
                None,
            )
            .await;
        assert_eq!(skus.status, 200);
        assert!(!skus.body["value"].as_array().unwrap().is_empty());
        assert_eq!(
            az.arm(
                "GET",
                &format!("{}?api-version={api}", az.deployment_path("missing")),
                None
            )
            .await
            .status,
            404
        );
        assert_eq!(az.arm("DELETE", &path, None).await.status, 202);
    }
    // Errors are ErrorResponse bodies too.
    az.emu
        .set_quota(&sub, "eastus", "OpenAI.Standard.gpt-4o", 1);
    assert_eq!(
        az.arm(
            "PUT",
            &az.deployment_path("q"),
            Some(&deployment_body("gpt-4o", None, "Standard", 5))
        )
        .await
        .code(),
        "InsufficientQuota"
    );
    let kv = az.token("https://vault.azure.net").await;
    let url = format!("{}secrets/k?api-version=2026-04-01", az.env.key_vault_uri);
    assert_eq!(
        az.send(
            "PUT",
            &url,
            Some(&kv),
            Some(&json!({"value": "v", "tags": {"a": "b"}, "contentType": "text/plain"}))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        az.send(
            "GET",
            &format!("{}secrets/k/?api-version=2026-04-01", az.env.key_vault_uri),
            Some(&kv),
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        az.send(
            "GET",
            &format!(
                "{}secrets/k/versions?api-version=2026-04-01",
                az.env.key_vault_uri
            ),
            Some(&kv),
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        az.send(
            "GET",
            &format!(
                "{}secrets/nope/?api-version=2026-04-01",
                az.env.key_vault_uri
            ),
            Some(&kv),
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(az.send("DELETE", &url, Some(&kv), None).await.status, 200);
    let violations = az.emu.contract_violations();
    assert!(
        violations.is_empty(),
        "contract violations:\n{}",
        violations.join("\n")
    );
}

#[tokio::test]
async fn request_bodies_that_do_not_match_the_spec_are_rejected() {
    let Some(dir) = specs() else { return };
    let az = Az::start(AzureConfig {
        specs_dir: Some(dir),
        ..Default::default()
    })
    .await;
    let mut body = deployment_body("gpt-4o-mini", None, "GlobalStandard", 1);
    body["sku"]["capacity"] = json!("ten");
    let r = az.arm("PUT", &az.deployment_path("bad"), Some(&body)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "InvalidRequestContent");
    assert!(r.message().contains("capacity"), "{}", r.message());
    let mut body = deployment_body("gpt-4o-mini", None, "GlobalStandard", 1);
    body["sku"] = json!({"capacity": 1});
    assert_eq!(
        az.arm("PUT", &az.deployment_path("bad"), Some(&body))
            .await
            .code(),
        "InvalidRequestContent",
        "sku.name is required by the spec"
    );
    let kv = az.token("https://vault.azure.net").await;
    let r = az
        .send(
            "PUT",
            &format!("{}secrets/k?api-version=2026-04-01", az.env.key_vault_uri),
            Some(&kv),
            Some(&json!({"value": 5})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        az.emu
            .deployment(&az.emu.default_account_id(), "bad")
            .is_none()
    );
}

#[tokio::test]
async fn the_checks_themselves_catch_broken_responses() {
    let Some(dir) = specs() else { return };
    let contract = Contract::load(&dir).expect("load specs");
    let at = contract
        .find(
            SpecKind::Arm,
            "2026-09-01",
            "GET",
            "/subscriptions/s/resourceGroups/r/providers/Microsoft.CognitiveServices/accounts/a/deployments/d",
        )
        .expect("Deployments_Get");
    assert_eq!(contract.operation(at).1.id, "Deployments_Get");
    let good = json!({"name": "d", "sku": {"name": "Standard", "capacity": 1}, "properties": {"model": {"format": "OpenAI", "name": "ada", "version": "1"}}});
    assert!(contract.validate_response(at, 200, Some(&good)).is_ok());
    let bad = json!({"name": "d", "sku": {"name": "Standard", "capacity": "one"}});
    let errs = contract.validate_response(at, 200, Some(&bad)).unwrap_err();
    assert!(errs[0].contains("/sku/capacity"), "{errs:?}");
    assert!(
        contract.validate_response(at, 201, Some(&good)).is_err(),
        "201 is not a documented GET response"
    );
    assert!(
        contract
            .validate_response(
                at,
                404,
                Some(&json!({"error": {"code": "NotFound", "message": "m"}}))
            )
            .is_ok()
    );
    // The shape check reports declared fields that are missing, not map keys.
    let example = json!({"name": "d", "properties": {"provisioningState": "Succeeded", "capabilities": {"anything": "true"}}});
    let actual = json!({"name": "d", "properties": {"capabilities": {}}});
    assert_eq!(
        contract.missing_fields(at, 200, &example, &actual),
        vec!["$.properties.provisioningState".to_string()]
    );
    // Key Vault: GET latest version with the trailing slash matches GetSecret.
    let kv = contract
        .find(SpecKind::KeyVault, "2026-04-01", "GET", "/secrets/name/")
        .expect("GetSecret");
    assert_eq!(contract.operation(kv).1.id, "GetSecret");
    let versions = contract
        .find(
            SpecKind::KeyVault,
            "2026-04-01",
            "GET",
            "/secrets/name/versions",
        )
        .unwrap();
    assert_eq!(contract.operation(versions).1.id, "GetSecretVersions");
}
