//! End-to-end tests of the Azure ML forms of a ModelDeployment (issue 12) on the real Kubernetes
//! control plane and the Azure emulator: managed compute (endpoint, deployment, traffic, the key
//! in Key Vault, a scoring call with it), an instance count change in place, an instance type
//! change that moves traffic with no time in which nothing serves, deletion in reverse order,
//! serverless with and without a marketplace subscription allowed, and bad inputs refused with a
//! reason and no Azure write.

mod common;

use aoai_operator::crd::{AIWorkspace, ModelDeployment};
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const WORKSPACE: &str = "shared-ws";
const PHI: &str = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1";
const NC24: &str = "Standard_NC24ads_A100_v4";
const NC48: &str = "Standard_NC48ads_A100_v4";

async fn create_workspace(bed: &Bed, extra: Value) {
    let ml = bed.azure.ml_env();
    let mut spec = json!({
        "subscriptionId": ml.subscription_id,
        "resourceGroup": ml.resource_group,
        "workspaceName": ml.workspace,
        "keyVault": {"vaultUri": bed.vault},
        "allowedNamespaces": {"names": [bed.team_a]},
    });
    merge(&mut spec, extra);
    let w: AIWorkspace = serde_json::from_value(json!({
        "apiVersion": "aoai.dev/v1alpha1", "kind": "AIWorkspace",
        "metadata": {"name": WORKSPACE}, "spec": spec,
    }))
    .unwrap();
    Api::<AIWorkspace>::all(bed.client.clone())
        .create(&PostParams::default(), &w)
        .await
        .expect("create AIWorkspace");
}

async fn create_ml(bed: &Bed, name: &str, form: Value) -> ModelDeployment {
    let md: ModelDeployment = serde_json::from_value(json!({
        "apiVersion": "aoai.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": bed.team_a},
        "spec": merged(json!({"workspaceRef": {"name": WORKSPACE}}), form),
    }))
    .unwrap();
    bed.mds(&bed.team_a)
        .create(&PostParams::default(), &md)
        .await
        .expect("create ModelDeployment")
}

fn merged(mut a: Value, b: Value) -> Value {
    merge(&mut a, b);
    a
}

fn endpoint_id(bed: &Bed, kind: &str, name: &str) -> String {
    format!("{}/{kind}/{name}", bed.azure.ml_env().workspace_id())
}

/// Writes to Microsoft.MachineLearningServices (PUT, PATCH, DELETE; not listKeys).
fn ml_writes(bed: &Bed) -> Vec<String> {
    bed.azure
        .request_log()
        .into_iter()
        .filter(|r| {
            let p = r.path.to_ascii_lowercase();
            p.contains("microsoft.machinelearningservices")
                && matches!(r.method.as_str(), "PUT" | "PATCH" | "DELETE")
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn scoring_client(bed: &Bed) -> reqwest::Client {
    aoai_operator::azure::http::install_crypto_provider();
    let ca = bed.env.get("SSL_CERT_FILE").map(std::path::PathBuf::from);
    aoai_operator::azure::http::build_client(ca.as_deref(), Duration::from_secs(10)).unwrap()
}

async fn score(client: &reqwest::Client, uri: &str, key: &str) -> (u16, Option<String>) {
    match client
        .post(uri)
        .bearer_auth(key)
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
    {
        Ok(r) => (
            r.status().as_u16(),
            r.headers()
                .get("azureml-model-deployment")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        ),
        Err(_) => (0, None),
    }
}

async fn wait_ml_ready(
    bed: &Bed,
    name: &str,
    what: &str,
    pred: impl Fn(&ModelDeployment) -> bool,
) -> ModelDeployment {
    bed.wait_md(&bed.team_a, name, Duration::from_secs(60), what, |m| {
        m.is_some_and(|m| is_ready(m) && pred(m))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_compute_converges_serves_and_keeps_the_key_in_key_vault() {
    let mut bed = Bed::new().await;
    create_workspace(&bed, json!({})).await;
    bed.start().await;
    create_ml(
        &bed,
        "phi",
        json!({"connectionConfigMap": "phi-connection", "managedCompute": {"model": PHI, "instanceType": NC24}}),
    )
    .await;
    let md = wait_ml_ready(&bed, "phi", "Ready", |_| true).await;
    let st = md.status.clone().unwrap();
    let endpoint = format!("{}-phi", bed.team_a);
    assert_eq!(st.endpoint_name.as_deref(), Some(endpoint.as_str()));
    let dep = st.deployment_name.clone().unwrap();
    assert_eq!(st.traffic.get(&dep), Some(&100));
    assert_eq!(st.instance_type.as_deref(), Some(NC24));
    assert_eq!(st.instance_count, Some(1));
    let ep_id = endpoint_id(&bed, "onlineEndpoints", &endpoint);
    let ep = bed
        .azure
        .online_endpoint(&ep_id)
        .expect("endpoint in Azure");
    assert_eq!(ep["tags"]["aoai.dev-owner"], format!("{}/phi", bed.team_a));
    assert_eq!(ep["properties"]["traffic"][&dep], 100);
    let uri = st.scoring_uri.clone().expect("scoring URI");
    assert_eq!(Some(uri.as_str()), ep["properties"]["scoringUri"].as_str());
    // The key is in Key Vault, never in Kubernetes.
    let kv = st.key_vault_secret.clone().expect("Key Vault reference");
    assert_eq!(kv.name, format!("{WORKSPACE}-{endpoint}"));
    let (stored, version) = bed
        .azure
        .secret(&bed.vault, &kv.name)
        .expect("secret stored");
    let (primary, _) = bed.azure.online_endpoint_keys(&ep_id).unwrap();
    assert_eq!(stored, primary);
    assert_eq!(kv.version.as_deref(), Some(version.as_str()));
    assert!(!serde_json::to_string(&md).unwrap().contains(&primary));
    for (_, _, note) in bed.events_for(&bed.team_a, "phi").await {
        assert!(!note.contains(&primary));
    }
    // The connection ConfigMap names the URI and the Key Vault secret, never the key.
    let cm = Api::<ConfigMap>::namespaced(bed.client.clone(), &bed.team_a)
        .get("phi-connection")
        .await
        .expect("connection ConfigMap");
    let data = cm.data.unwrap();
    assert_eq!(Some(&data["AZURE_ML_SCORING_URI"]), st.scoring_uri.as_ref());
    assert_eq!(data["AZURE_ML_ENDPOINT_NAME"], endpoint);
    assert_eq!(data["AZURE_KEY_VAULT_SECRET_NAME"], kv.name);
    assert!(!serde_json::to_string(&data).unwrap().contains(&primary));
    // An app reads the key from Key Vault and calls the scoring URI.
    let client = scoring_client(&bed);
    let (code, served_by) = score(&client, &uri, &stored).await;
    assert_eq!(code, 200);
    assert_eq!(served_by.as_deref(), Some(dep.as_str()));
    assert_eq!(score(&client, &uri, "wrong-key").await.0, 401);
    // The minimum: endpoint, deployment, traffic; one write at a time per endpoint.
    let writes = ml_writes(&bed);
    assert_eq!(writes.len(), 3, "{writes:#?}");
    assert!(bed.azure.max_concurrent_writes_per_endpoint() <= 1);
    // Steady state writes nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(ml_writes(&bed).len(), 3, "no write in steady state");
    let again = bed.mds(&bed.team_a).get("phi").await.unwrap();
    assert_eq!(again.status.unwrap().last_sync_time, st.last_sync_time);
    bed.assert_contract_clean();
    assert!(bed.azure.ml_contract_loaded() || specs_dir().is_none());
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_count_in_place_and_instance_type_moves_traffic_with_no_gap() {
    let mut bed = Bed::new().await;
    create_workspace(&bed, json!({})).await;
    bed.start().await;
    create_ml(
        &bed,
        "phi",
        json!({"managedCompute": {"model": PHI, "instanceType": NC24}}),
    )
    .await;
    let md = wait_ml_ready(&bed, "phi", "Ready", |_| true).await;
    let st = md.status.unwrap();
    let first = st.deployment_name.clone().unwrap();
    let ep_id = endpoint_id(
        &bed,
        "onlineEndpoints",
        st.endpoint_name.as_deref().unwrap(),
    );
    // Instance count: the same deployment, in place.
    bed.patch_spec(
        &bed.team_a,
        "phi",
        json!({"managedCompute": {"instanceCount": 2}}),
    )
    .await;
    wait_ml_ready(&bed, "phi", "2 instances", |m| {
        m.status
            .as_ref()
            .is_some_and(|s| s.instance_count == Some(2))
    })
    .await;
    let deps = bed.azure.online_deployments(&ep_id);
    assert_eq!(deps.len(), 1);
    assert_eq!(deps[0]["name"], first);
    assert_eq!(deps[0]["sku"]["capacity"], 2);
    // Drift: an instance count changed outside the operator (the portal) is set back.
    bed.azure
        .patch_online_deployment_out_of_band(&ep_id, &first, |d| d["sku"]["capacity"] = json!(3));
    let start = std::time::Instant::now();
    while bed.azure.online_deployment(&ep_id, &first).unwrap()["sku"]["capacity"] != 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "drift not corrected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Instance type: a new deployment, then the traffic, then the old one goes; an app calling
    // all along is always served.
    let (key, _) = bed
        .azure
        .secret(&bed.vault, &st.key_vault_secret.unwrap().name)
        .unwrap();
    let uri = st.scoring_uri.unwrap();
    let client = scoring_client(&bed);
    let stop = Arc::new(AtomicBool::new(false));
    let caller = {
        let (stop, client, uri, key) = (stop.clone(), client.clone(), uri.clone(), key.clone());
        tokio::spawn(async move {
            let mut seen = vec![];
            while !stop.load(Ordering::Relaxed) {
                seen.push(score(&client, &uri, &key).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    bed.patch_spec(
        &bed.team_a,
        "phi",
        json!({"managedCompute": {"instanceType": NC48, "instanceCount": 1}}),
    )
    .await;
    let md = wait_ml_ready(&bed, "phi", "on the new instance type", |m| {
        m.status
            .as_ref()
            .is_some_and(|s| s.instance_type.as_deref() == Some(NC48))
    })
    .await;
    // Until the old deployment is gone too.
    let second = md.status.unwrap().deployment_name.unwrap();
    assert_ne!(second, first);
    let start = std::time::Instant::now();
    while bed.azure.online_deployments(&ep_id).len() > 1 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "old deployment not deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = caller.await.unwrap();
    assert!(seen.len() > 10, "the caller made {} calls", seen.len());
    let failures: Vec<_> = seen.iter().filter(|(c, _)| *c != 200).collect();
    assert!(
        failures.is_empty(),
        "calls not served during the switch: {failures:?}"
    );
    let by: std::collections::BTreeSet<_> = seen.iter().filter_map(|(_, d)| d.clone()).collect();
    assert!(
        by.contains(&first) && by.contains(&second),
        "served by {by:?}"
    );
    let deps = bed.azure.online_deployments(&ep_id);
    assert_eq!(deps.len(), 1);
    assert_eq!(deps[0]["name"], second);
    assert!(bed.azure.max_concurrent_writes_per_endpoint() <= 1);
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_removes_deployment_then_endpoint_and_retain_leaves_them() {
    let mut bed = Bed::new().await;
    create_workspace(&bed, json!({})).await;
    bed.start().await;
    create_ml(
        &bed,
        "gone",
        json!({"managedCompute": {"model": PHI, "instanceType": NC24}}),
    )
    .await;
    create_ml(
        &bed,
        "kept",
        json!({"deletionPolicy": "Retain", "managedCompute": {"model": PHI, "instanceType": NC24}}),
    )
    .await;
    let gone = wait_ml_ready(&bed, "gone", "Ready", |_| true).await;
    let kept = wait_ml_ready(&bed, "kept", "Ready", |_| true).await;
    let gone_id = endpoint_id(
        &bed,
        "onlineEndpoints",
        gone.status.unwrap().endpoint_name.as_deref().unwrap(),
    );
    let kept_id = endpoint_id(
        &bed,
        "onlineEndpoints",
        kept.status.unwrap().endpoint_name.as_deref().unwrap(),
    );
    // The workspace's deletion waits while ModelDeployments use it.
    let workspaces = Api::<AIWorkspace>::all(bed.client.clone());
    workspaces
        .delete(WORKSPACE, &Default::default())
        .await
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let w = workspaces
            .get(WORKSPACE)
            .await
            .expect("held by its finalizer");
        let reason = w.status.and_then(|s| {
            s.conditions
                .first()
                .map(|c| (c.reason.clone(), c.message.clone()))
        });
        if let Some((r, m)) = &reason
            && r == "InUse"
        {
            assert!(m.contains("/gone") && m.contains("/kept"), "{m}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{reason:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = bed.azure.request_log().len();
    bed.delete_md(&bed.team_a, "gone").await;
    bed.delete_md(&bed.team_a, "kept").await;
    bed.wait_gone(&bed.team_a, "gone").await;
    bed.wait_gone(&bed.team_a, "kept").await;
    let start = std::time::Instant::now();
    while workspaces.get_opt(WORKSPACE).await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "AIWorkspace not released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        bed.azure.online_endpoint(&gone_id).is_none(),
        "endpoint deleted"
    );
    assert!(
        bed.azure.online_endpoint(&kept_id).is_some(),
        "Retain keeps the endpoint"
    );
    assert_eq!(bed.azure.online_deployments(&kept_id).len(), 1);
    // Reverse order: traffic off, the deployment, then the endpoint.
    let order: Vec<String> = bed.azure.request_log()[before..]
        .iter()
        .filter(|r| {
            r.path
                .to_ascii_lowercase()
                .contains(&gone_id.to_ascii_lowercase())
                && r.is_write
        })
        .map(|r| {
            let kind = if r.path.to_ascii_lowercase().contains("/deployments/") {
                "deployment"
            } else {
                "endpoint"
            };
            format!("{} {kind}", r.method)
        })
        .collect();
    assert_eq!(
        order,
        vec!["PUT endpoint", "DELETE deployment", "DELETE endpoint"],
        "{order:?}"
    );
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverless_with_and_without_its_marketplace_subscription_allowed() {
    let mut bed = Bed::new().await;
    create_workspace(
        &bed,
        json!({"marketplace": {"allowedPublishers": ["000-000"]}}),
    )
    .await;
    bed.start().await;
    let mistral = "azureml://registries/azureml-mistral/models/Mistral-Large-2411";
    let cohere = "azureml://registries/azureml-cohere/models/Cohere-command-r-plus-08-2024";
    create_ml(&bed, "mistral", json!({"serverless": {"modelId": mistral}})).await;
    create_ml(&bed, "cohere", json!({"serverless": {"modelId": cohere}})).await;
    let md = wait_ml_ready(&bed, "mistral", "Ready", |_| true).await;
    let st = md.status.unwrap();
    let ep_id = endpoint_id(
        &bed,
        "serverlessEndpoints",
        st.endpoint_name.as_deref().unwrap(),
    );
    let ep = bed
        .azure
        .serverless_endpoint(&ep_id)
        .expect("serverless endpoint");
    assert_eq!(ep["properties"]["modelSettings"]["modelId"], mistral);
    let sub = bed
        .azure
        .marketplace_subscription(&format!(
            "{}/marketplaceSubscriptions/Mistral-Large-2411",
            bed.azure.ml_env().workspace_id()
        ))
        .expect("marketplace subscription");
    assert_eq!(
        sub["properties"]["marketplaceSubscriptionStatus"],
        "Subscribed"
    );
    let kv = st.key_vault_secret.unwrap();
    let (stored, _) = bed.azure.secret(&bed.vault, &kv.name).unwrap();
    assert_eq!(
        stored,
        bed.azure.serverless_endpoint_keys(&ep_id).unwrap().0
    );
    // The app calls the inference URI with the key from Key Vault.
    let uri = st.scoring_uri.expect("inference URI");
    let client = scoring_client(&bed);
    let r = client
        .post(format!("{}/chat/completions", uri.trim_end_matches('/')))
        .header("api-key", &stored)
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Cohere needs a marketplace subscription the workspace does not allow: refused, no write.
    let c = bed
        .wait_reason(&bed.team_a, "cohere", "MarketplaceSubscriptionNotAllowed")
        .await;
    let msg = &c.status.unwrap().conditions[0].message;
    assert!(
        msg.contains("cohere") && msg.contains("spec.marketplace"),
        "{msg}"
    );
    assert!(
        ml_writes(&bed)
            .iter()
            .all(|w| !w.to_ascii_lowercase().contains("cohere")),
        "{:#?}",
        ml_writes(&bed)
    );
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_a_reason_and_no_azure_write() {
    let mut bed = Bed::new().await;
    create_workspace(&bed, json!({})).await;
    let ml = bed.azure.ml_env();
    bed.start().await;
    let cases = [
        (
            "unknown",
            json!({"managedCompute": {"model": "azureml://registries/azureml/models/No-Such-Model/versions/1", "instanceType": NC24}}),
            "ModelNotFound",
            "No-Such-Model",
        ),
        (
            "small",
            json!({"managedCompute": {"model": "azureml://registries/azureml/models/Llama-3.3-70B-Instruct/versions/4", "instanceType": NC24}}),
            "InstanceTypeNotSupported",
            "Standard_NC96ads_A100_v4",
        ),
        (
            "quota",
            json!({"managedCompute": {"model": PHI, "instanceType": NC24, "instanceCount": 7}}),
            "InsufficientQuota",
            "vCPUs",
        ),
        (
            "notmc",
            json!({"managedCompute": {"model": "azureml://registries/azureml-mistral/models/Mistral-Large-2411/versions/2", "instanceType": NC24}}),
            "ModelNotOffered",
            "serverless",
        ),
        (
            "market",
            json!({"serverless": {"modelId": "azureml://registries/azureml-cohere/models/Cohere-command-r-plus-08-2024"}}),
            "MarketplaceSubscriptionNotAllowed",
            "spec.marketplace",
        ),
    ];
    for (name, form, _, _) in &cases {
        create_ml(&bed, name, form.clone()).await;
    }
    for (name, _, reason, hint) in &cases {
        let md = bed.wait_reason(&bed.team_a, name, reason).await;
        let msg = md.status.unwrap().conditions[0].message.clone();
        assert!(msg.contains(hint), "{name}: {msg}");
    }
    assert!(ml_writes(&bed).is_empty(), "{:#?}", ml_writes(&bed));
    // VM quota usage was not touched, and a namespace the workspace does not allow is refused.
    assert_eq!(
        bed.azure.vm_quota_usage(
            &ml.subscription_id,
            &ml.location,
            "standardNCADSA100v4Family"
        ),
        0
    );
    let md: ModelDeployment = serde_json::from_value(json!({
        "apiVersion": "aoai.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "elsewhere", "namespace": bed.team_b},
        "spec": {"workspaceRef": {"name": WORKSPACE}, "managedCompute": {"model": PHI, "instanceType": NC24}},
    }))
    .unwrap();
    bed.mds(&bed.team_b)
        .create(&PostParams::default(), &md)
        .await
        .unwrap();
    bed.wait_reason(&bed.team_b, "elsewhere", "NamespaceNotAllowed")
        .await;
    assert!(ml_writes(&bed).is_empty());
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_an_operation_resumes_it_without_a_second_write() {
    let mut bed = Bed::with(|c| c.provisioning_delay = Duration::from_secs(3)).await;
    create_workspace(&bed, json!({})).await;
    bed.start().await;
    create_ml(
        &bed,
        "phi",
        json!({"managedCompute": {"model": PHI, "instanceType": NC24}}),
    )
    .await;
    // Stop the operator while Azure creates the endpoint (the operation is in status).
    bed.wait_md(
        &bed.team_a,
        "phi",
        Duration::from_secs(30),
        "creating",
        |m| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.pending_operation.is_some())
        },
    )
    .await;
    bed.stop().await;
    let endpoint_puts = |bed: &Bed| {
        ml_writes(bed)
            .iter()
            .filter(|w| w.starts_with("PUT") && !w.contains("/deployments/"))
            .count()
    };
    assert_eq!(endpoint_puts(&bed), 1);
    bed.start().await;
    wait_ml_ready(&bed, "phi", "Ready", |_| true).await;
    // One endpoint create, one deployment create, one traffic update: nothing written twice.
    let writes = ml_writes(&bed);
    assert_eq!(writes.len(), 3, "{writes:#?}");
    assert_eq!(endpoint_puts(&bed), 2, "create + traffic: {writes:#?}");
    bed.assert_contract_clean();
    bed.stop().await;
}
