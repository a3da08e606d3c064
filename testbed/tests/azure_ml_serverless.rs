//! Azure Machine Learning emulator: marketplace subscriptions, serverless endpoints (catalogue
//! checks, the marketplace subscription a partner model needs, project-only, keys, chat
//! completions on the inference URI), the registry catalogue (ARM and registry discovery) and
//! the VM-family usages and sizes an operator checks quota with.
mod azure_common;
mod azure_ml_common;

use azure_common::*;
use azure_ml_common::*;
use serde_json::json;
use testbed::azure::RegistryModel;

#[tokio::test]
async fn a_marketplace_subscription_carries_the_models_plan() {
    let az = Az::default().await;
    let r = az
        .arm(
            "PUT",
            &marketplace_path(&az, "mistral"),
            Some(&marketplace_body(MISTRAL)),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Creating");
    assert_eq!(settle(&az, &r).await, "Succeeded");
    let got = az.arm("GET", &marketplace_path(&az, "mistral"), None).await;
    assert_eq!(
        got.body["properties"]["marketplaceSubscriptionStatus"],
        "Subscribed"
    );
    assert_eq!(
        got.body["properties"]["marketplacePlan"]["offerId"],
        "mistral-ai-large-2411-offer"
    );
    let list = az
        .arm(
            "GET",
            &format!("{}/marketplaceSubscriptions", ws_path(&az)),
            None,
        )
        .await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
    let change = az
        .arm(
            "PUT",
            &marketplace_path(&az, "mistral"),
            Some(&marketplace_body(COHERE)),
        )
        .await;
    assert!(
        change.message().contains("cannot be changed"),
        "{}",
        change.message()
    );
    let free = az
        .arm(
            "PUT",
            &marketplace_path(&az, "phi"),
            Some(&marketplace_body(
                "azureml://registries/azureml/models/Phi-4-mini-instruct",
            )),
        )
        .await;
    assert!(
        free.message()
            .contains("not sold through the Azure Marketplace"),
        "{}",
        free.message()
    );
    let unknown = az
        .arm(
            "PUT",
            &marketplace_path(&az, "x"),
            Some(&marketplace_body(
                "azureml://registries/azureml/models/Nope",
            )),
        )
        .await;
    assert_eq!(unknown.status, 400);
    let del = az
        .arm("DELETE", &marketplace_path(&az, "mistral"), None)
        .await;
    assert_eq!(del.status, 202);
    assert_eq!(
        status(&az, "GET", &del.header("location").unwrap()).await,
        204
    );
    assert_eq!(
        status(&az, "GET", &marketplace_path(&az, "mistral")).await,
        404
    );
}

#[tokio::test]
async fn a_partner_model_needs_its_marketplace_subscription_first() {
    let az = Az::default().await;
    let ml = az.emu.ml_env();
    let missing = az
        .arm(
            "PUT",
            &serverless_path(&az, "cohere"),
            Some(&serverless_body(COHERE)),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert!(
        missing
            .message()
            .contains("needs a marketplace subscription"),
        "{}",
        missing.message()
    );
    assert!(
        az.emu
            .serverless_endpoint(&format!("/{}", serverless_path(&az, "cohere")))
            .is_none()
    );
    let sub = write_ok(
        &az,
        "PUT",
        &marketplace_path(&az, "cohere"),
        Some(&marketplace_body(COHERE)),
    )
    .await;
    let r = az
        .arm(
            "PUT",
            &serverless_path(&az, "cohere"),
            Some(&serverless_body(COHERE)),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["properties"]["endpointState"], "Creating");
    assert_eq!(settle(&az, &r).await, "Succeeded");
    let got = az.arm("GET", &serverless_path(&az, "cohere"), None).await;
    assert_eq!(got.body["properties"]["endpointState"], "Online");
    assert_eq!(
        got.body["properties"]["marketplaceSubscriptionId"],
        sub.body["id"]
    );
    let uri = got.body["properties"]["inferenceEndpoint"]["uri"]
        .as_str()
        .unwrap();
    assert!(uri.starts_with("https://127.0.0.1:"), "{uri}");
    // Other catalogue rules.
    let managed_only = az
        .arm(
            "PUT",
            &serverless_path(&az, "llama"),
            Some(&serverless_body(
                "azureml://registries/azureml/models/Llama-3.2-3B-Instruct",
            )),
        )
        .await;
    assert!(
        managed_only
            .message()
            .contains("not offered as a serverless API"),
        "{}",
        managed_only.message()
    );
    let microsoft = az
        .arm(
            "PUT",
            &serverless_path(&az, "phi"),
            Some(&serverless_body(
                "azureml://registries/azureml/models/Phi-4-mini-instruct",
            )),
        )
        .await;
    assert_eq!(
        settle(&az, &microsoft).await,
        "Succeeded",
        "a Microsoft model needs no subscription"
    );
    let in_hub = az
        .arm(
            "PUT",
            &serverless_path(&az, "hub-ep").replace(&ml.workspace, &ml.hub_workspace),
            Some(&serverless_body(
                "azureml://registries/azureml/models/Phi-4-mini-instruct",
            )),
        )
        .await;
    assert!(
        in_hub.message().contains("project workspace"),
        "{}",
        in_hub.message()
    );
    let other_model = az
        .arm(
            "PUT",
            &serverless_path(&az, "cohere"),
            Some(&serverless_body(MISTRAL)),
        )
        .await;
    assert!(
        other_model.message().contains("cannot be changed"),
        "{}",
        other_model.message()
    );
    let list = az
        .arm(
            "GET",
            &format!("{}/serverlessEndpoints", ws_path(&az)),
            None,
        )
        .await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_inference_uri_answers_chat_completions_with_the_key() {
    let az = Az::default().await;
    write_ok(
        &az,
        "PUT",
        &marketplace_path(&az, "mistral"),
        Some(&marketplace_body(MISTRAL)),
    )
    .await;
    let r = write_ok(
        &az,
        "PUT",
        &serverless_path(&az, "chat"),
        Some(&serverless_body(MISTRAL)),
    )
    .await;
    let uri = r.body["properties"]["inferenceEndpoint"]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    let keys = az
        .arm(
            "POST",
            &format!("{}/listKeys", serverless_path(&az, "chat")),
            None,
        )
        .await;
    let key = keys.body["primaryKey"].as_str().unwrap().to_string();
    let url = format!("{uri}chat/completions");
    let ok = post(&az, &url, Some(&key), &[], &chat("bonjour")).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let content = ok.body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    assert!(
        content.contains("Mistral-Large-2411") && content.contains("bonjour"),
        "{content}"
    );
    let api_key = post(
        &az,
        &format!("{uri}v1/chat/completions"),
        None,
        &[("api-key", &key)],
        &chat("hi"),
    )
    .await;
    assert_eq!(api_key.status, 200);
    assert_eq!(
        post(&az, &url, Some("wrong"), &[], &chat("hi"))
            .await
            .status,
        401
    );
    assert_eq!(
        post(&az, &url, Some(&key), &[], &json!({"messages": []}))
            .await
            .status,
        400
    );
    let regen = az
        .arm(
            "POST",
            &format!("{}/regenerateKeys", serverless_path(&az, "chat")),
            Some(&json!({"keyType": "Primary"})),
        )
        .await;
    assert_eq!(regen.status, 200);
    assert_ne!(regen.body["primaryKey"], key.as_str());
    assert_eq!(
        post(&az, &url, Some(&key), &[], &chat("hi")).await.status,
        401
    );
    let deleted = az.arm("DELETE", &serverless_path(&az, "chat"), None).await;
    assert_eq!(settle(&az, &deleted).await, "Succeeded");
    assert_eq!(status(&az, "GET", &serverless_path(&az, "chat")).await, 404);
}

#[tokio::test]
async fn the_registry_catalogue_is_served_and_editable() {
    let az = Az::default().await;
    let ml = az.emu.ml_env();
    let base = format!(
        "subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/registries/azureml/models",
        ml.subscription_id, ml.resource_group
    );
    let v = az
        .arm(
            "GET",
            &format!("{base}/Llama-3.3-70B-Instruct/versions/4"),
            None,
        )
        .await;
    assert_eq!(v.status, 200);
    let allow: Vec<String> = serde_json::from_str(
        v.body["properties"]["tags"]["inference_compute_allow_list"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(allow, [NC96, "Standard_ND96amsr_A100_v4"]);
    let container = az
        .arm("GET", &format!("{base}/Llama-3.2-3B-Instruct"), None)
        .await;
    assert_eq!(container.body["properties"]["latestVersion"], "2");
    assert_eq!(
        status(
            &az,
            "GET",
            &format!("{base}/Llama-3.2-3B-Instruct/versions/9")
        )
        .await,
        404
    );
    assert_eq!(
        status(&az, "GET", &base.replace("/azureml/", "/nope/")).await,
        404
    );
    // Registry discovery points the SDK's registry client at this emulator.
    let token = az.token("https://ml.azure.com").await;
    let url = format!(
        "{}registrymanagement/v1.0/registries/azureml/discovery",
        az.env.resource_manager_endpoint
    );
    let d = az.send("GET", &url, Some(&token), None).await;
    assert_eq!(d.status, 200);
    assert_eq!(
        d.body["primaryRegionResourceProviderUri"],
        az.env.resource_manager_endpoint.as_str()
    );
    // A catalogue edit: a model re-published with a bigger minimum instance type.
    let mut catalog = az.emu.registry_catalog();
    catalog.retain(|m| m.name != "Phi-4-mini-instruct");
    catalog.push(RegistryModel::managed(
        "azureml",
        "Phi-4-mini-instruct",
        "1",
        &[NC48],
    ));
    az.emu.set_registry_catalog(catalog);
    create_endpoint(&az, "e", "Key", json!({})).await;
    let r = put_deployment(&az, "e", "blue", PHI, NC24, 1).await;
    assert!(
        r.message()
            .contains("needs one of Standard_NC48ads_A100_v4"),
        "{}",
        r.message()
    );
}

#[tokio::test]
async fn usages_report_the_vcpus_deployments_reserve_per_vm_family() {
    let az = Az::default().await;
    let ml = az.emu.ml_env();
    let loc = format!(
        "subscriptions/{}/providers/Microsoft.MachineLearningServices/locations/eastus",
        ml.subscription_id
    );
    let family = |r: &Reply| {
        r.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"]["value"] == A100_FAMILY)
            .cloned()
            .unwrap()
    };
    let before = family(&az.arm("GET", &format!("{loc}/usages"), None).await);
    assert_eq!(
        (before["currentValue"].as_u64(), before["limit"].as_u64()),
        (Some(0), Some(192))
    );
    endpoint_with_deployment(&az, "u", "blue", PHI, NC24, 2).await;
    let after = family(&az.arm("GET", &format!("{loc}/usages"), None).await);
    assert_eq!(
        after["currentValue"], 72,
        "3 reserved NC24ads instances x 24 vCPUs"
    );
    az.emu
        .set_vm_quota(&ml.subscription_id, "eastus", A100_FAMILY, 500);
    assert_eq!(
        family(&az.arm("GET", &format!("{loc}/usages"), None).await)["limit"],
        500
    );
    let sizes = az.arm("GET", &format!("{loc}/vmSizes"), None).await;
    let nc24 = sizes.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == NC24)
        .unwrap()
        .clone();
    assert_eq!(
        (
            nc24["family"].as_str(),
            nc24["vCPUs"].as_u64(),
            nc24["gpus"].as_u64()
        ),
        (Some(A100_FAMILY), Some(24), Some(1))
    );
}
