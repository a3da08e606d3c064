//! End-to-end tests of the operator on the real Kubernetes control plane of this test binary
//! (etcd, kube-apiserver, kube-controller-manager) and the Azure emulator, real controller.
//! One test per judged behaviour of issue 3.

mod common;

use aoai_operator::crd::ModelDeployment;
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_becomes_ready_with_endpoint_and_key_vault_reference() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.create_md(
        &bed.team_a,
        "chat",
        json!({"connectionConfigMap": "chat-connection"}),
    )
    .await;
    let md = bed.wait_ready(&bed.team_a, "chat").await;
    let ready_at = std::time::Instant::now();
    let st = md.status.clone().unwrap();
    let name = name_of(&bed.team_a, "chat");
    assert_eq!(st.deployment_name.as_deref(), Some(name.as_str()));
    // The minimum: one GET (not found), one PUT, then only the operation is polled; once it
    // succeeds, Azure's accepted deployment is the state (no read-back before Ready).
    let before_ready: Vec<(String, u16)> = bed
        .deployment_requests(&name)
        .into_iter()
        .filter(|r| r.started < ready_at)
        .map(|r| (r.method, r.status))
        .collect();
    assert_eq!(
        before_ready,
        vec![("GET".to_string(), 404), ("PUT".to_string(), 201)],
        "deployment requests before Ready"
    );
    assert_eq!(
        st.endpoint,
        bed.azure.account_endpoint(&bed.account_id),
        "endpoint in status"
    );
    assert_eq!(st.provisioning_state.as_deref(), Some("Succeeded"));
    assert!(
        st.azure_resource_id
            .as_deref()
            .unwrap()
            .ends_with(&format!("/deployments/{name}"))
    );
    assert_eq!(
        st.model.as_ref().unwrap().version.as_deref(),
        Some("2024-07-18")
    );
    let kv = st.key_vault_secret.clone().expect("key vault ref");
    assert_eq!(kv.vault_uri, bed.vault);
    assert_eq!(kv.name, SECRET_NAME);
    let (value, version) = bed
        .azure
        .secret(&bed.vault, SECRET_NAME)
        .expect("secret stored");
    assert_eq!(
        value,
        bed.azure.account_keys(&bed.account_id).0,
        "Key Vault holds the account key"
    );
    assert_eq!(kv.version.as_deref(), Some(version.as_str()));
    // Status, ConfigMap and events never contain the key.
    let key = bed.azure.account_keys(&bed.account_id).0;
    assert!(!serde_json::to_string(&md).unwrap().contains(&key));
    let cm = Api::<ConfigMap>::namespaced(bed.client.clone(), &bed.team_a)
        .get("chat-connection")
        .await
        .unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data["AZURE_OPENAI_DEPLOYMENT"], name);
    assert_eq!(Some(&data["AZURE_OPENAI_ENDPOINT"]), st.endpoint.as_ref());
    assert!(data["AZURE_KEY_VAULT_SECRET_URI"].contains(SECRET_NAME));
    assert!(!serde_json::to_string(&data).unwrap().contains(&key));
    for (_, _, note) in bed.events_for(&bed.team_a, "chat").await {
        assert!(!note.contains(&key));
    }
    // Azure deployment is tagged with its owner.
    let d = bed.azure_deployment(&name).unwrap();
    assert_eq!(d["tags"]["aoai.dev-owner"], format!("{}/chat", bed.team_a));
    assert_eq!(bed.puts(&name).len(), 1, "exactly one PUT");
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_change_is_one_write() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.create_md(&bed.team_a, "chat", json!({})).await;
    bed.wait_ready(&bed.team_a, "chat").await;
    let name = name_of(&bed.team_a, "chat");
    bed.patch_spec(&bed.team_a, "chat", json!({"sku": {"capacity": 25}}))
        .await;
    let md = bed.wait_ready(&bed.team_a, "chat").await;
    assert_eq!(md.metadata.generation, Some(2));
    assert_eq!(bed.azure_deployment(&name).unwrap()["sku"]["capacity"], 25);
    assert_eq!(md.status.unwrap().capacity, Some(25));
    assert_eq!(bed.puts(&name).len(), 2, "create + one update");
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_version_change() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.create_md(
        &bed.team_a,
        "g4o",
        json!({"model": {"name": "gpt-4o", "version": "2024-05-13"}}),
    )
    .await;
    bed.wait_ready(&bed.team_a, "g4o").await;
    let name = name_of(&bed.team_a, "g4o");
    bed.patch_spec(
        &bed.team_a,
        "g4o",
        json!({"model": {"version": "2024-08-06"}}),
    )
    .await;
    let md = bed.wait_ready(&bed.team_a, "g4o").await;
    assert_eq!(
        bed.azure_deployment(&name).unwrap()["properties"]["model"]["version"],
        "2024-08-06"
    );
    assert_eq!(
        md.status.unwrap().model.unwrap().version.as_deref(),
        Some("2024-08-06")
    );
    assert_eq!(bed.puts(&name).len(), 2);
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_capacity_and_version_change_is_two_writes() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.create_md(
        &bed.team_a,
        "g4o",
        json!({"model": {"name": "gpt-4o", "version": "2024-05-13"}}),
    )
    .await;
    bed.wait_ready(&bed.team_a, "g4o").await;
    let name = name_of(&bed.team_a, "g4o");
    bed.azure.clear_request_log();
    bed.patch_spec(
        &bed.team_a,
        "g4o",
        json!({"model": {"version": "2024-11-20"}, "sku": {"capacity": 30}}),
    )
    .await;
    bed.wait_ready(&bed.team_a, "g4o").await;
    let puts = bed.puts(&name);
    assert_eq!(puts.len(), 2, "capacity then model: {puts:#?}");
    assert!(
        puts.iter().all(|p| p.status < 300),
        "no rejected write: {puts:#?}"
    );
    let d = bed.azure_deployment(&name).unwrap();
    assert_eq!(d["sku"]["capacity"], 30);
    assert_eq!(d["properties"]["model"]["version"], "2024-11-20");
    bed.wait_event(&bed.team_a, "g4o", |e| e.1 == "UpdateCapacity")
        .await;
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_deployments_at_once_one_write_in_flight_no_409() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.wait_account_ready().await;
    let names: Vec<String> = (0..10).map(|i| format!("app-{i}")).collect();
    let started = std::time::Instant::now();
    futures::future::join_all(
        names
            .iter()
            .map(|n| bed.create_md(&bed.team_a, n, json!({"sku": {"capacity": 5}}))),
    )
    .await;
    for n in &names {
        bed.wait_md(&bed.team_a, n, Duration::from_secs(60), "Ready", |m| {
            m.is_some_and(is_ready)
        })
        .await;
    }
    let log = bed.azure.request_log();
    eprintln!(
        "10 deployments on one account (300ms provisioning): all Ready in {:?}, {} Azure requests, max writes in flight per account {}",
        started.elapsed(),
        log.len(),
        bed.azure.max_concurrent_writes_per_account()
    );
    let conflicts: Vec<_> = log.iter().filter(|r| r.status == 409).collect();
    assert!(conflicts.is_empty(), "409s: {conflicts:#?}");
    assert_eq!(
        bed.azure.max_concurrent_writes_per_account(),
        1,
        "at most one write in flight per account"
    );
    let puts = log
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/deployments/"))
        .count();
    assert_eq!(puts, 10, "one PUT per deployment");
    for n in &names {
        let md = bed.mds(&bed.team_a).get(n).await.unwrap();
        assert!(
            md.status
                .unwrap()
                .conditions
                .iter()
                // (Not the digits "409": the endpoint's random port can contain them.)
                .all(|c| !c.message.contains("RequestConflict") && c.reason != "WaitingForAzure")
        );
    }
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_corrected_and_deleted_deployment_recreated() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.create_md(&bed.team_a, "chat", json!({})).await;
    bed.wait_ready(&bed.team_a, "chat").await;
    let name = name_of(&bed.team_a, "chat");
    bed.azure
        .patch_deployment_out_of_band(&bed.account_id, &name, |d| {
            d["sku"]["capacity"] = json!(3);
        });
    let start = std::time::Instant::now();
    while bed.azure_deployment(&name).unwrap()["sku"]["capacity"] != 10 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "drift not corrected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bed.wait_event(&bed.team_a, "chat", |e| {
        e.1 == "DriftDetected" && e.2.contains("capacity")
    })
    .await;
    // Deleted in Azure -> recreated.
    bed.azure
        .delete_deployment_out_of_band(&bed.account_id, &name);
    let start = std::time::Instant::now();
    while bed.azure_deployment(&name).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "deployment not recreated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bed.wait_ready(&bed.team_a, "chat").await;
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policies_delete_and_retain() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.create_md(&bed.team_a, "gone", json!({})).await;
    bed.create_md(&bed.team_a, "kept", json!({"deletionPolicy": "Retain"}))
        .await;
    bed.wait_ready(&bed.team_a, "gone").await;
    bed.wait_ready(&bed.team_a, "kept").await;
    bed.delete_md(&bed.team_a, "gone").await;
    bed.delete_md(&bed.team_a, "kept").await;
    bed.wait_gone(&bed.team_a, "gone").await;
    bed.wait_gone(&bed.team_a, "kept").await;
    assert!(
        bed.azure_deployment(&name_of(&bed.team_a, "gone"))
            .is_none(),
        "Delete policy removes the Azure deployment"
    );
    assert!(
        bed.azure_deployment(&name_of(&bed.team_a, "kept"))
            .is_some(),
        "Retain leaves it"
    );
    let deletes = bed
        .deployment_requests(&name_of(&bed.team_a, "gone"))
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 1);
    assert!(
        bed.deployment_requests(&name_of(&bed.team_a, "kept"))
            .iter()
            .all(|r| r.method != "DELETE")
    );
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption_refused_then_allowed_with_opt_in() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.azure.put_deployment_out_of_band(
        &bed.account_id,
        "legacy-chat",
        json!({"sku": {"name": "GlobalStandard", "capacity": 10},
               "properties": {"model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"}}}),
    );
    bed.create_md(
        &bed.team_a,
        "legacy",
        json!({"deploymentName": "legacy-chat"}),
    )
    .await;
    let md = bed
        .wait_reason(&bed.team_a, "legacy", "AdoptionRefused")
        .await;
    assert!(
        md.status.unwrap().conditions[0]
            .message
            .contains("adoptExisting")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        bed.puts("legacy-chat").is_empty(),
        "never modified without the opt-in"
    );
    bed.patch_spec(&bed.team_a, "legacy", json!({"adoptExisting": true}))
        .await;
    bed.wait_ready(&bed.team_a, "legacy").await;
    assert_eq!(
        bed.azure_deployment("legacy-chat").unwrap()["tags"]["aoai.dev-owner"],
        format!("{}/legacy", bed.team_a)
    );
    assert_eq!(bed.puts("legacy-chat").len(), 1);
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_owned_deployment_is_left_alone() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.azure.put_deployment_out_of_band(
        &bed.account_id,
        "theirs",
        json!({"sku": {"name": "GlobalStandard", "capacity": 10}, "tags": {"aoai.dev-owner": "team-z/other", "aoai.dev-cluster": "default"},
               "properties": {"model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"}}}),
    );
    bed.create_md(
        &bed.team_a,
        "mine",
        json!({"deploymentName": "theirs", "adoptExisting": true, "sku": {"capacity": 20}}),
    )
    .await;
    let md = bed
        .wait_reason(&bed.team_a, "mine", "OwnedByAnotherResource")
        .await;
    assert!(
        md.status.unwrap().conditions[0]
            .message
            .contains("team-z/other")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(bed.puts("theirs").is_empty());
    bed.delete_md(&bed.team_a, "mine").await;
    bed.wait_gone(&bed.team_a, "mine").await;
    assert!(
        bed.azure_deployment("theirs").is_some(),
        "not deleted either"
    );
    assert!(
        bed.deployment_requests("theirs")
            .iter()
            .all(|r| r.method == "GET")
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowed_namespace_makes_zero_azure_calls() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.wait_account_ready().await;
    // team-c is allowed by label selector.
    bed.create_md(&bed.team_c, "chat", json!({})).await;
    bed.wait_ready(&bed.team_c, "chat").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bed.azure.clear_request_log();
    bed.create_md(&bed.team_b, "chat", json!({})).await;
    let md = bed
        .wait_reason(&bed.team_b, "chat", "NamespaceNotAllowed")
        .await;
    assert!(
        md.status.unwrap().conditions[0]
            .message
            .contains("allowedNamespaces")
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let calls = bed.deployment_requests(&name_of(&bed.team_b, "chat"));
    assert!(
        calls.is_empty(),
        "Azure calls for a disallowed namespace: {calls:#?}"
    );
    bed.wait_event(&bed.team_b, "chat", |e| {
        e.0 == "Warning" && e.1 == "NamespaceNotAllowed"
    })
    .await;
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_quota_error_stops_writing() {
    let mut bed = Bed::new().await;
    let sub = bed.env["AZURE_SUBSCRIPTION_ID"].clone();
    bed.azure
        .set_quota(&sub, "eastus", "OpenAI.GlobalStandard.gpt-4o-mini", 5);
    bed.start().await;
    bed.create_md(&bed.team_a, "big", json!({"sku": {"capacity": 10}}))
        .await;
    let md = bed
        .wait_reason(&bed.team_a, "big", "InsufficientQuota")
        .await;
    let cond = md
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .clone();
    assert_eq!(cond.status, "False");
    assert!(
        cond.message.contains("capacity"),
        "Azure's message is shown: {}",
        cond.message
    );
    let name = name_of(&bed.team_a, "big");
    tokio::time::sleep(Duration::from_secs(3)).await; // several resync periods
    assert!(
        bed.puts(&name).is_empty(),
        "quota checked before writing: no PUT at all"
    );
    let events = bed.events_for(&bed.team_a, "big").await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.0 == "Warning" && e.1 == "InsufficientQuota")
            .count(),
        1,
        "{events:?}"
    );
    // Azure enforces quota too: if the pre-check cannot see it, the PUT's error is terminal as well.
    // Changing the spec retries.
    bed.patch_spec(&bed.team_a, "big", json!({"sku": {"capacity": 4}}))
        .await;
    bed.wait_ready(&bed.team_a, "big").await;
    assert_eq!(bed.puts(&name).len(), 1);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_during_operation_resumes_without_second_put() {
    let mut bed = Bed::with(|c| c.provisioning_delay = Duration::from_secs(3)).await;
    bed.start().await;
    bed.create_md(&bed.team_a, "slow", json!({})).await;
    bed.wait_md(
        &bed.team_a,
        "slow",
        Duration::from_secs(20),
        "pending",
        |m| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.pending_operation.is_some())
        },
    )
    .await;
    bed.op.take().unwrap().abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    bed.start().await;
    bed.wait_md(&bed.team_a, "slow", Duration::from_secs(30), "Ready", |m| {
        m.is_some_and(is_ready)
    })
    .await;
    let puts = bed.puts(&name_of(&bed.team_a, "slow"));
    assert_eq!(
        puts.len(),
        1,
        "resumed polling instead of writing again: {puts:#?}"
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_makes_zero_writes() {
    let mut bed = Bed::new().await;
    bed.start().await;
    for n in ["a", "b", "c"] {
        bed.create_md(&bed.team_a, n, json!({"sku": {"capacity": 2}}))
            .await;
    }
    for n in ["a", "b", "c"] {
        bed.wait_ready(&bed.team_a, n).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    bed.azure.clear_request_log();
    let versions = |bed: &Bed| {
        let api: Api<ModelDeployment> = Api::namespaced(bed.client.clone(), &bed.team_a);
        async move {
            let mut v = Vec::new();
            for n in ["a", "b", "c"] {
                v.push(api.get(n).await.unwrap().resource_version());
            }
            v
        }
    };
    let before = versions(&bed).await;
    let window = Duration::from_millis(700 * 5);
    tokio::time::sleep(window).await;
    // Nor Kubernetes writes: an unchanged resync leaves status (lastSyncTime too) alone.
    assert_eq!(
        versions(&bed).await,
        before,
        "ModelDeployments rewritten in steady state"
    );
    let log = bed.azure.request_log();
    let writes: Vec<_> = log
        .iter()
        .filter(|r| r.is_write && !r.path.ends_with("/listKeys"))
        .collect();
    assert!(writes.is_empty(), "writes in steady state: {writes:#?}");
    for n in ["a", "b", "c"] {
        let gets = bed.deployment_requests(&name_of(&bed.team_a, n)).len();
        assert_eq!(
            gets, 0,
            "{n}: drift is seen in the account's listing, not by a GET each"
        );
    }
    // One paged LIST of the account per resync, shared by its three deployments: resync
    // 700ms (±10% jitter) over 3.5s is about 5 listings, never one per deployment.
    let lists = log
        .iter()
        .filter(|r| r.method == "GET" && r.path.to_ascii_lowercase().ends_with("/deployments"))
        .count();
    assert!((3..=8).contains(&lists), "{lists} LISTs in {window:?}");
    eprintln!(
        "steady state: {} Azure requests in {:?} for 3 deployments, 0 writes",
        log.len(),
        window
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_account_credentials_managed_workload_and_client_secret() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::PostParams;
    use testbed::azure::Surface;
    let mut bed = Bed::new().await;
    let tenant = bed.env["AZURE_TENANT_ID"].clone();
    let mi = bed.env["AZURE_MANAGED_IDENTITY_CLIENT_ID"].clone();
    let wi = bed.env["AZURE_CLIENT_ID"].clone();
    bed.azure
        .add_client("11111111-2222-3333-4444-555555555555", "s3cret-value");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "sp-secret", "namespace": bed.operator_ns},
        "stringData": {"clientSecret": "s3cret-value"},
        "data": {"clientSecret": "czNjcmV0LXZhbHVl"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(bed.client.clone(), &bed.operator_ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    bed.create_account("mi", json!({"credential": {"managedIdentity": {"clientId": mi}}, "keyVault": {"vaultUri": bed.vault, "secretName": "mi-key"}})).await;
    bed.create_account("wi", json!({"credential": {"workloadIdentity": {"clientId": wi, "tenantId": tenant}}, "keyVault": {"vaultUri": bed.vault, "secretName": "wi-key"}})).await;
    bed.create_account("sp", json!({"credential": {"clientSecret": {"tenantId": tenant, "clientId": "11111111-2222-3333-4444-555555555555",
        "secretRef": {"name": "sp-secret", "key": "clientSecret"}}}, "keyVault": {"vaultUri": bed.vault, "secretName": "sp-key"}})).await;
    bed.start().await;
    for (acct, md) in [("mi", "via-mi"), ("wi", "via-wi"), ("sp", "via-sp")] {
        bed.create_md(
            &bed.team_a,
            md,
            json!({"accountRef": {"name": acct}, "sku": {"capacity": 1}}),
        )
        .await;
    }
    for md in ["via-mi", "via-wi", "via-sp"] {
        bed.wait_ready(&bed.team_a, md).await;
    }
    let log = bed.azure.request_log();
    assert!(
        log.iter()
            .any(|r| r.surface == Surface::ManagedIdentity && r.status == 200),
        "managed identity endpoint used"
    );
    let principal_of = |md: &str| {
        bed.puts(&name_of(&bed.team_a, md))
            .first()
            .and_then(|r| r.principal.clone())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    assert_eq!(principal_of("via-mi"), mi.to_ascii_lowercase());
    assert_eq!(principal_of("via-wi"), wi.to_ascii_lowercase());
    assert_eq!(
        principal_of("via-sp"),
        "11111111-2222-3333-4444-555555555555"
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_back_off_honouring_retry_after() {
    use testbed::azure::{Fault, FaultAction, Surface};
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.wait_account_ready().await;
    bed.azure.inject(Fault {
        surface: Surface::Arm,
        method: Some(http::Method::PUT),
        path_contains: Some("/deployments/".into()),
        count: 2,
        action: FaultAction::Error {
            status: 429,
            code: "TooManyRequests".into(),
            message: "slow down".into(),
            retry_after: Some(1),
        },
    });
    bed.create_md(&bed.team_a, "chat", json!({})).await;
    bed.wait_reason(&bed.team_a, "chat", "AzureThrottled").await;
    bed.wait_ready(&bed.team_a, "chat").await;
    let puts = bed.puts(&name_of(&bed.team_a, "chat"));
    assert_eq!(puts.len(), 3, "two throttled + one accepted: {puts:#?}");
    for w in puts.windows(2) {
        let gap = w[1].started.duration_since(w[0].started);
        assert!(
            gap >= Duration::from_millis(950),
            "Retry-After honoured: gap {gap:?}"
        );
    }
    let m = bed.op.as_ref().unwrap().metrics.encode();
    assert!(
        m.contains("aoai_azure_throttled_total{operation=\"deployments.put\"} 2"),
        "{m}"
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_rewrites_key_vault_once() {
    let mut bed = Bed::new().await;
    bed.start_with(|c| c.timing.account_resync = Duration::from_millis(500))
        .await;
    bed.create_md(&bed.team_a, "chat", json!({})).await;
    bed.wait_ready(&bed.team_a, "chat").await;
    let (_, v1) = bed.azure.secret(&bed.vault, SECRET_NAME).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sets = |bed: &Bed| {
        bed.azure
            .request_log()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/secrets/"))
            .count()
    };
    assert_eq!(
        sets(&bed),
        1,
        "key unchanged -> no Key Vault write on resync"
    );
    bed.azure.regenerate_key(&bed.account_id, true);
    let new_key = bed.azure.account_keys(&bed.account_id).0;
    let start = std::time::Instant::now();
    loop {
        let (value, _) = bed.azure.secret(&bed.vault, SECRET_NAME).unwrap();
        if value == new_key {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "rotated key not stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, v2) = bed.azure.secret(&bed.vault, SECRET_NAME).unwrap();
    assert_ne!(v1, v2);
    bed.wait_md(
        &bed.team_a,
        "chat",
        Duration::from_secs(10),
        "pointing at the new version",
        |m| {
            m.and_then(|m| m.status.as_ref())
                .and_then(|s| s.key_vault_secret.as_ref())
                .and_then(|k| k.version.clone())
                == Some(v2.clone())
        },
    )
    .await;
    assert_eq!(sets(&bed), 2);
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_deletion_is_held_while_deployments_use_it() {
    use aoai_operator::crd::AIAccount;
    use kube::api::DeleteParams;
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.create_md(&bed.team_a, "chat", json!({})).await;
    bed.wait_ready(&bed.team_a, "chat").await;
    let accounts: Api<AIAccount> = Api::all(bed.client.clone());
    accounts
        .delete(ACCOUNT, &DeleteParams::default())
        .await
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let a = accounts.get(ACCOUNT).await.expect("still there");
        if a.status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.reason == "InUse"))
        {
            assert!(
                a.status.unwrap().conditions[0]
                    .message
                    .contains(&format!("{}/chat", bed.team_a))
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "deletion not held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bed.delete_md(&bed.team_a, "chat").await;
    bed.wait_gone(&bed.team_a, "chat").await;
    let start = std::time::Instant::now();
    while accounts.get_opt(ACCOUNT).await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "account deletion not released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        bed.azure_deployment(&name_of(&bed.team_a, "chat"))
            .is_none()
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.create_md(&bed.team_a, "chat", json!({"sku": {"name": "Standard"}}))
        .await;
    bed.wait_ready(&bed.team_a, "chat").await;
    let name = name_of(&bed.team_a, "chat");
    bed.patch_spec(&bed.team_a, "chat", json!({"paused": true}))
        .await;
    let md = bed.wait_ready(&bed.team_a, "chat").await;
    assert_eq!(
        md.status.unwrap().deployment_state.as_deref(),
        Some("Paused")
    );
    assert_eq!(
        bed.azure_deployment(&name).unwrap()["properties"]["deploymentState"],
        "Paused"
    );
    bed.patch_spec(&bed.team_a, "chat", json!({"paused": false}))
        .await;
    bed.wait_ready(&bed.team_a, "chat").await;
    assert_eq!(
        bed.azure_deployment(&name).unwrap()["properties"]["deploymentState"],
        "Running"
    );
    let actions: Vec<_> = bed
        .deployment_requests(&name)
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path)
        .collect();
    assert_eq!(actions.len(), 2, "{actions:?}");
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_endpoints() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.create_md(&bed.team_a, "chat", json!({})).await;
    bed.wait_ready(&bed.team_a, "chat").await;
    let addr = bed.op.as_ref().unwrap().metrics_addr.unwrap();
    let http = reqwest::Client::new();
    let get = |p: &'static str| {
        let http = http.clone();
        async move { http.get(format!("http://{addr}{p}")).send().await.unwrap() }
    };
    assert_eq!(get("/healthz").await.status(), 200);
    assert_eq!(get("/readyz").await.status(), 200);
    let text = get("/metrics").await.text().await.unwrap();
    for family in [
        "aoai_reconciles_total{kind=\"ModelDeployment\"}",
        "aoai_reconcile_duration_seconds_bucket",
        "aoai_azure_requests_total{operation=\"deployments.put\",status=\"201\"} 1",
        "aoai_azure_operations_in_flight",
        "aoai_account_write_queue_depth",
    ] {
        assert!(text.contains(family), "missing {family} in\n{text}");
    }
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_only_one_replica_writes() {
    use aoai_operator::leader::LeaderSettings;
    let mut bed = Bed::new().await;
    let lease = |id: &str| LeaderSettings {
        lease_name: "aoai-operator".into(),
        namespace: bed.operator_ns.clone(),
        identity: id.into(),
        lease_duration: Duration::from_secs(15),
        grace: Duration::from_secs(5),
    };
    let mut c1 = bed.config();
    c1.leader_election = Some(lease("replica-1"));
    let mut c2 = bed.config();
    c2.leader_election = Some(lease("replica-2"));
    let r1 = aoai_operator::start(c1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r2 = aoai_operator::start(c2).await.unwrap();
    bed.create_md(&bed.team_a, "chat", json!({})).await;
    bed.wait_ready(&bed.team_a, "chat").await;
    let writes =
        |op: &aoai_operator::Operator| op.metrics.azure_request_count(|o| o == "deployments.put");
    assert_eq!(writes(&r1) + writes(&r2), 1);
    assert_eq!(writes(&r2), 0, "the follower never writes");
    let ready = |op: &aoai_operator::Operator| {
        let addr = op.metrics_addr.unwrap();
        async move {
            reqwest::get(format!("http://{addr}/readyz"))
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(ready(&r1).await, 200);
    assert_eq!(ready(&r2).await, 503, "the follower is not ready");
    r2.shutdown().await.unwrap();
    r1.shutdown().await.unwrap();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_operations_transient_retried_terminal_held() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.wait_account_ready().await;
    bed.azure
        .fail_next_operations(1, "InternalServerError", "transient backend failure");
    bed.create_md(&bed.team_a, "flaky", json!({})).await;
    bed.wait_ready(&bed.team_a, "flaky").await;
    assert_eq!(
        bed.puts(&name_of(&bed.team_a, "flaky")).len(),
        2,
        "a transiently failed operation is retried"
    );
    bed.azure.fail_next_operations(
        1,
        "ModelCapacityExhausted",
        "no capacity for this model in the region",
    );
    bed.create_md(&bed.team_a, "stuck", json!({})).await;
    let md = bed
        .wait_reason(&bed.team_a, "stuck", "ModelCapacityExhausted")
        .await;
    assert!(
        md.status.unwrap().conditions[0]
            .message
            .contains("no capacity")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        bed.puts(&name_of(&bed.team_a, "stuck")).len(),
        1,
        "a terminally failed operation is not retried in a loop"
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_model_or_sku_is_refused_without_a_write() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.create_md(&bed.team_a, "nomodel", json!({"model": {"name": "gpt-9"}}))
        .await;
    bed.create_md(
        &bed.team_a,
        "noversion",
        json!({"model": {"version": "1999-01-01"}}),
    )
    .await;
    bed.create_md(&bed.team_a, "nosku", json!({"model": {"name": "Phi-4", "format": "Microsoft", "version": "7"}, "sku": {"name": "Standard", "capacity": 1}})).await;
    bed.wait_reason(&bed.team_a, "nomodel", "DeploymentModelNotSupported")
        .await;
    let md = bed
        .wait_reason(&bed.team_a, "noversion", "DeploymentModelNotSupported")
        .await;
    assert!(
        md.status.unwrap().conditions[0]
            .message
            .contains("2024-07-18"),
        "lists the available versions"
    );
    bed.wait_reason(&bed.team_a, "nosku", "InvalidResourceProperties")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes: Vec<_> = bed
        .azure
        .request_log()
        .into_iter()
        .filter(|r| r.is_write && r.path.contains("/deployments/"))
        .collect();
    assert!(writes.is_empty(), "{writes:#?}");
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_quota_error_on_put_is_terminal_too() {
    use testbed::azure::{Fault, FaultAction, Surface};
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.wait_account_ready().await;
    bed.azure.inject(Fault {
        surface: Surface::Arm,
        method: Some(http::Method::PUT),
        path_contains: Some("/deployments/".into()),
        count: 1,
        action: FaultAction::Error {
            status: 400,
            code: "InsufficientQuota".into(),
            message: "quota exhausted (required 10, available 0)".into(),
            retry_after: None,
        },
    });
    bed.create_md(&bed.team_a, "chat", json!({})).await;
    let md = bed
        .wait_reason(&bed.team_a, "chat", "InsufficientQuota")
        .await;
    assert!(
        md.status.unwrap().conditions[0]
            .message
            .contains("required 10")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        bed.puts(&name_of(&bed.team_a, "chat")).len(),
        1,
        "no retry loop"
    );
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_label_change_allows_it_and_bad_credentials_are_reported() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams};
    let mut bed = Bed::new().await;
    bed.create_account(
        "broken",
        json!({"credential": {"clientSecret": {"tenantId": "t", "clientId": "c", "secretRef": {"name": "missing", "key": "k"}}},
               "keyVault": {"vaultUri": bed.vault, "secretName": "broken-key"}}),
    )
    .await;
    bed.start().await;
    bed.create_md(&bed.team_b, "late", json!({})).await;
    bed.wait_reason(&bed.team_b, "late", "NamespaceNotAllowed")
        .await;
    // The platform team labels the namespace: the selector now matches, no resync wait needed.
    Api::<Namespace>::all(bed.client.clone())
        .patch(
            &bed.team_b,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"ai-access": "true"}}})),
        )
        .await
        .unwrap();
    bed.wait_md(
        &bed.team_b,
        "late",
        Duration::from_secs(5),
        "Ready soon after the label",
        |m| m.is_some_and(is_ready),
    )
    .await;
    // An account whose credential Secret is missing says so.
    let api: Api<aoai_operator::crd::AIAccount> = Api::all(bed.client.clone());
    let start = std::time::Instant::now();
    loop {
        let a = api.get("broken").await.unwrap();
        if let Some(c) = a
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        {
            assert_eq!(c.reason, "CredentialError");
            assert!(
                c.message.contains("missing") && c.message.contains("create it"),
                "{}",
                c.message
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_refreshed_before_expiry() {
    use testbed::azure::Surface;
    let mut bed = Bed::with(|c| c.token_lifetime = Duration::from_secs(4)).await;
    bed.start().await;
    bed.create_md(&bed.team_a, "chat", json!({})).await;
    bed.wait_ready(&bed.team_a, "chat").await;
    tokio::time::sleep(Duration::from_secs(5)).await; // resyncs keep calling ARM past the first token's expiry
    bed.patch_spec(&bed.team_a, "chat", json!({"sku": {"capacity": 12}}))
        .await;
    bed.wait_ready(&bed.team_a, "chat").await;
    let log = bed.azure.request_log();
    let unauthorized: Vec<_> = log.iter().filter(|r| r.status == 401).collect();
    assert!(
        unauthorized.is_empty(),
        "expired tokens used: {unauthorized:#?}"
    );
    let token_calls = log.iter().filter(|r| r.surface == Surface::Token).count();
    assert!(
        token_calls >= 3,
        "tokens were refreshed ({token_calls} token requests)"
    );
    bed.stop().await;
}

/// A write never removes configuration Azure holds that the spec does not set (issue 11): an
/// adopted deployment carrying every such property keeps all of them through the operator's
/// first write, which changes only what the spec says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_keeps_every_property_azure_holds() {
    let mut bed = Bed::new().await;
    bed.start().await;
    let source = format!("{}/deployments/origin", bed.account_id);
    let held = json!({
        "model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18",
                  "publisher": "OpenAI", "source": source, "sourceAccount": bed.account_id},
        "parentDeploymentName": "parent-chat",
        "capacitySettings": {"designatedCapacity": 10, "priority": 1},
        "routing": {"mode": "quality", "models": [{"format": "OpenAI", "name": "gpt-4o", "version": "2024-08-06"}]},
        "contextCacheContainerId": "cache-container-1",
        "spilloverDeploymentName": "overflow-chat",
        "raiPolicyName": "Microsoft.DefaultV2",
        "versionUpgradeOption": "NoAutoUpgrade",
    });
    bed.azure.put_deployment_out_of_band(
        &bed.account_id,
        "rich-chat",
        json!({"sku": {"name": "GlobalStandard", "capacity": 10},
               "tags": {"cost-center": "42"},
               "properties": held.clone()}),
    );
    let ns = bed.team_a.clone();
    bed.create_md(
        &ns,
        "rich",
        json!({"deploymentName": "rich-chat", "adoptExisting": true, "sku": {"capacity": 20}}),
    )
    .await;
    bed.wait_ready(&ns, "rich").await;
    assert_eq!(
        bed.puts("rich-chat").len(),
        1,
        "one write: adopt with the capacity change"
    );
    let d = bed.azure_deployment("rich-chat").unwrap();
    assert_eq!(d["sku"]["capacity"], 20, "the spec's change reached Azure");
    assert_eq!(d["tags"]["cost-center"], "42");
    assert_eq!(d["tags"]["aoai.dev-owner"], format!("{ns}/rich"));
    for (key, want) in held.as_object().unwrap() {
        assert_eq!(&d["properties"][key], want, "properties.{key} kept: {d:#}");
    }
    bed.assert_contract_clean();
    bed.stop().await;
}

/// The operator paces its ARM calls inside the subscription's budget (issue 11): with ARM's
/// buckets made small, a burst of creates converges without a single 429, at the refill rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_arm_budget_is_respected_without_429() {
    let mut bed = Bed::with(|c| {
        c.read_capacity = 12;
        c.read_refill_per_sec = 8;
        c.write_capacity = 4;
        c.write_refill_per_sec = 4;
        c.provisioning_delay = Duration::from_millis(100);
    })
    .await;
    bed.start_with(|c| {
        c.budget = aoai_operator::azure::budget::BudgetConfig {
            read_capacity: 12.0,
            reads_per_second: 8.0,
            write_capacity: 4.0,
            writes_per_second: 4.0,
            delete_capacity: 4.0,
            deletes_per_second: 4.0,
            ..Default::default()
        }
    })
    .await;
    bed.wait_account_ready().await;
    let names: Vec<String> = (0..12).map(|i| format!("paced-{i}")).collect();
    futures::future::join_all(
        names
            .iter()
            .map(|n| bed.create_md(&bed.team_a, n, json!({"sku": {"capacity": 2}}))),
    )
    .await;
    for n in &names {
        bed.wait_md(&bed.team_a, n, Duration::from_secs(90), "Ready", |m| {
            m.is_some_and(is_ready)
        })
        .await;
    }
    let log = bed.azure.request_log();
    let reads = log.iter().filter(|r| r.method == "GET").count();
    assert!(
        reads > 12,
        "the burst needed more reads ({reads}) than the bucket holds: the test would catch unpaced calls"
    );
    let throttled: Vec<_> = log.iter().filter(|r| r.status == 429).collect();
    assert!(throttled.is_empty(), "429s: {throttled:#?}");
    bed.assert_contract_clean();
    bed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_finalizer_patch_returns_the_object_and_never_duplicates() {
    use aoai_operator::reconcile::{MD_FINALIZER, add_finalizer};
    use kube::api::{Patch, PatchParams};
    let bed = Bed::new().await;
    let api = bed.mds(&bed.team_a);
    // No finalizers yet: the patch adds ours and returns the object as the server holds it.
    let created = bed.create_md(&bed.team_a, "plain", json!({})).await;
    let got = add_finalizer(&api, &created, MD_FINALIZER)
        .await
        .expect("patch")
        .expect("object exists");
    assert_eq!(got.finalizers(), [MD_FINALIZER.to_string()]);
    assert_ne!(got.resource_version(), created.resource_version());
    assert_eq!(got.spec, created.spec);
    // Another writer's finalizer is kept; ours goes after it.
    bed.create_md(&bed.team_a, "shared", json!({})).await;
    let other = api
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/other"]}})),
        )
        .await
        .unwrap();
    let got = add_finalizer(&api, &other, MD_FINALIZER)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.finalizers(),
        ["example.com/other".to_string(), MD_FINALIZER.to_string()]
    );
    // A stale copy (from before that patch) fails instead of adding ours a second time.
    assert!(add_finalizer(&api, &other, MD_FINALIZER).await.is_err());
    assert!(add_finalizer(&api, &created, MD_FINALIZER).await.is_err());
    let now = api.get("shared").await.unwrap();
    assert_eq!(now.finalizers().len(), 2, "{:?}", now.finalizers());
    // A resource that is gone is no error.
    let mut gone = created.clone();
    gone.metadata.name = Some("never-created".into());
    assert!(
        add_finalizer(&api, &gone, MD_FINALIZER)
            .await
            .unwrap()
            .is_none()
    );
    for name in ["plain", "shared"] {
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    }
}

/// Issue 14 (part 2): `Verified` after Ready, once per generation, False with the data plane's
/// error when the deployment does not answer; a deployment that does not opt in is never called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_once_per_generation_and_false_with_the_data_planes_error() {
    let mut bed = Bed::new().await;
    bed.start().await;
    bed.create_md(&bed.team_a, "chat", json!({"verify": true}))
        .await;
    bed.create_md(&bed.team_a, "plain", json!({})).await;
    let name = name_of(&bed.team_a, "chat");
    let verified = |m: &ModelDeployment, status: &str| {
        m.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Verified"
                    && c.status == status
                    && c.observed_generation == m.metadata.generation
            })
        })
    };
    bed.wait_md(
        &bed.team_a,
        "chat",
        Duration::from_secs(30),
        "Verified",
        |m| m.is_some_and(|m| verified(m, "True")),
    )
    .await;
    bed.wait_ready(&bed.team_a, "plain").await;
    assert_eq!(bed.azure.data_plane_requests(&bed.account_id, &name), 1);
    // Resyncs do not call again; the deployment that did not opt in is never called.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(bed.azure.data_plane_requests(&bed.account_id, &name), 1);
    let plain = bed.mds(&bed.team_a).get("plain").await.unwrap();
    assert_eq!(
        bed.azure
            .data_plane_requests(&bed.account_id, &name_of(&bed.team_a, "plain")),
        0
    );
    assert!(
        plain
            .status
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.type_ != "Verified")
    );
    // The data plane stops answering; a spec change verifies again and reports its error.
    bed.azure.fail_deployment(
        &bed.account_id,
        &name,
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist.",
    );
    bed.patch_spec(&bed.team_a, "chat", json!({"sku": {"capacity": 11}}))
        .await;
    let md = bed
        .wait_md(
            &bed.team_a,
            "chat",
            Duration::from_secs(30),
            "Verified=False",
            |m| m.is_some_and(|m| verified(m, "False")),
        )
        .await
        .unwrap();
    let st = md.status.unwrap();
    let v = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Verified")
        .unwrap();
    assert_eq!(v.reason, "DeploymentNotFound");
    assert!(v.message.contains("does not exist"), "{}", v.message);
    assert!(is_ready(&bed.mds(&bed.team_a).get("chat").await.unwrap()));
    let key = bed.azure.account_keys(&bed.account_id).0;
    assert!(!v.message.contains(&key));
    // Never in a loop: the condition stands until the next change.
    let at = v.last_transition_time.clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = bed
        .mds(&bed.team_a)
        .get("chat")
        .await
        .unwrap()
        .status
        .unwrap();
    let v2 = again
        .conditions
        .iter()
        .find(|c| c.type_ == "Verified")
        .unwrap();
    assert_eq!(
        (v2.status.as_str(), &v2.last_transition_time),
        ("False", &at)
    );
    bed.stop().await;
}
