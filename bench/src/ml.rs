//! The managed-compute phase (issue 12): M managed-compute ModelDeployments on one AIWorkspace,
//! created at once; the Azure calls they took, per create, against the minimum needed:
//! 3 writes (endpoint PUT, deployment PUT, traffic PUT), 3 polls (one per operation, when it has
//! finished by the first poll), the endpoint GET that finds it absent, the deployment LIST of
//! the new endpoint, the region's vCPU quota read before the deployment is written, and the
//! endpoint's listKeys: 10 ARM calls. The catalogue reads (registry discovery and model, the
//! region's VM sizes) are shared by every create of the same model and region, so they are
//! reported apart, as are the Key Vault calls.

use crate::measure::Out;
use anyhow::{Result, bail};
use aoai_operator::crd::{AIWorkspace, ModelDeployment};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};
use testbed::azure::AzureEmulator;

/// The fewest ARM calls one managed-compute create needs (see the module header).
pub const MIN_CALLS_PER_CREATE: f64 = 10.0;

const NS: &str = "bench-ml";

pub async fn run(
    azure: &AzureEmulator,
    client: &kube::Client,
    m: usize,
    out: &mut Out,
) -> Result<()> {
    if m == 0 {
        return Ok(());
    }
    let ml = azure.ml_env();
    // Room for M deployments of 1 × 24 vCPUs (Azure reserves 20 % more: 2 instances each).
    azure.set_vm_quota(
        &ml.subscription_id,
        &ml.location,
        "standardNCADSA100v4Family",
        (m as u32) * 48 + 48,
    );
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}}))?,
        )
        .await?;
    let ws: AIWorkspace = serde_json::from_value(json!({
        "apiVersion": "aoai.dev/v1alpha1", "kind": "AIWorkspace", "metadata": {"name": "bench-ws"},
        "spec": {"subscriptionId": ml.subscription_id, "resourceGroup": ml.resource_group,
                 "workspaceName": ml.workspace, "keyVault": {"vaultUri": azure.default_vault_uri()},
                 "allowedNamespaces": {"names": [NS]}},
    }))?;
    Api::<AIWorkspace>::all(client.clone())
        .create(&PostParams::default(), &ws)
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mark = azure.request_log().len();
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), NS);
    let start = Instant::now();
    for i in 0..m {
        let md: ModelDeployment = serde_json::from_value(json!({
            "apiVersion": "aoai.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": format!("mc-{i}"), "namespace": NS},
            "spec": {"workspaceRef": {"name": "bench-ws"}, "managedCompute": {
                "model": "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1",
                "instanceType": "Standard_NC24ads_A100_v4"}},
        }))?;
        mds.create(&PostParams::default(), &md).await?;
    }
    loop {
        let ready = mds
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|d| {
                d.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        if ready == m {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("{ready} of {m} managed-compute deployments Ready after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out.f(
        "managed_compute_converge_seconds",
        start.elapsed().as_secs_f64(),
    );
    let log = azure.request_log();
    let calls = &log[mark..];
    let is = |r: &&testbed::azure::RequestRecord, s: &str| r.path.to_ascii_lowercase().contains(s);
    let catalogue = calls
        .iter()
        .filter(|r| is(r, "/registrymanagement/") || is(r, "/mferp/") || is(r, "/vmsizes"))
        .count();
    let arm = calls
        .iter()
        .filter(|r| {
            is(r, "microsoft.machinelearningservices") && !is(r, "/mferp/") && !is(r, "/vmsizes")
        })
        .count();
    let writes = calls
        .iter()
        .filter(|r| {
            is(r, "microsoft.machinelearningservices") && r.method != "GET" && !is(r, "/listkeys")
        })
        .count();
    let kv = calls.iter().filter(|r| is(r, "/secrets/")).count();
    let per = |n: usize| n as f64 / m as f64;
    out.put("managed_compute_deployments", m);
    out.f("managed_compute_calls_per_create", per(arm));
    out.f("managed_compute_min_calls_per_create", MIN_CALLS_PER_CREATE);
    out.f(
        "managed_compute_calls_ratio",
        per(arm) / MIN_CALLS_PER_CREATE,
    );
    out.f("managed_compute_writes_per_create", per(writes));
    out.put("managed_compute_catalogue_calls", catalogue);
    out.f("managed_compute_key_vault_calls_per_create", per(kv));
    Ok(())
}
