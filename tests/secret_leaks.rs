//! Secret-leak scan (issue 6): with every credential kind in use (ambient client secret, client
//! secret from a Kubernetes Secret, workload identity, managed identity), a key rotation and
//! error paths, the operator's debug logs (in-process subscriber; and the real binary's
//! stdout/stderr in text and JSON), Kubernetes Events, every AIAccount/ModelDeployment, every
//! ConfigMap and /metrics must contain no account key, client secret, federated token or bearer
//! token. The values are collected from the emulators. (The chaos and catalogue suites run the
//! same scan at the end of every scenario.)

mod support_chaos;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;
use support_chaos::leaks::Corpus;
use support_chaos::{AccountInfo, Bed, BedOptions, RG, SUB, md, wait_for};
use testbed::azure::{AccountSeed, Fault, FaultAction, Surface};

const EXTRA_CLIENT: &str = "c1c1c1c1-0000-4000-8000-0000000000c1";
const EXTRA_SECRET: &str = "kube-secret-client-secret-9d8c7b6a5f";

/// Accounts with every credential kind: acct-0 ambient (from the bed), acct-cs client secret
/// from a Secret, acct-wi workload identity, acct-mi managed identity.
async fn bed_with_all_credentials() -> Bed {
    let mut bed = Bed::new(BedOptions {
        accounts: 1,
        token_lifetime: Duration::from_secs(6),
        ..Default::default()
    })
    .await;
    bed.azure.add_client(EXTRA_CLIENT, EXTRA_SECRET);
    bed.extra_secrets.lock().push(EXTRA_SECRET.to_string());
    let secrets: Api<Secret> = Api::namespaced(bed.client.clone(), &bed.operator_ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "aoai-sp"},
                "stringData": {"client-secret": EXTRA_SECRET},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let env = bed.azure.env();
    let creds = [
        (
            "acct-cs",
            json!({"clientSecret": {"tenantId": env.tenant_id, "clientId": EXTRA_CLIENT, "secretRef": {"name": "aoai-sp", "key": "client-secret"}}}),
        ),
        (
            "acct-wi",
            json!({"workloadIdentity": {"tenantId": env.tenant_id, "clientId": env.client_id}}),
        ),
        (
            "acct-mi",
            json!({"managedIdentity": {"clientId": env.managed_identity_client_id}}),
        ),
    ];
    for (cr, cred) in creds {
        let account_name = format!("leak-{cr}");
        let arm_id = bed.azure.add_account(AccountSeed {
            subscription_id: SUB.into(),
            resource_group: RG.into(),
            name: account_name.clone(),
            location: "eastus".into(),
            kind: "AIServices".into(),
        });
        let a = AccountInfo {
            cr_name: cr.into(),
            account_name,
            arm_id,
            vault_uri: bed.azure.default_vault_uri(),
            secret_name: format!("{cr}-key"),
        };
        bed.create_account_cr(&a, Some(cred)).await;
        bed.accounts.push(a);
    }
    bed
}

async fn deploy_everywhere(bed: &Bed) {
    for (i, a) in bed.accounts.iter().enumerate() {
        let mut m = md(
            &bed.namespaces[0],
            &format!("leak-{i}"),
            &a.cr_name,
            "gpt-4o-mini",
            Some("2024-07-18"),
            "GlobalStandard",
            1,
        );
        m.spec.connection_config_map = Some(format!("leak-{i}-connection"));
        bed.create_md(&m).await;
    }
}

async fn wait_all_ready(bed: &Bed) {
    wait_for(
        Duration::from_secs(90),
        "all ModelDeployments Ready",
        || async {
            let mds = bed.list_mds().await;
            !mds.is_empty()
                && mds.iter().all(|m| {
                    m.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Force an AIAccount reconcile (annotations are part of its trigger).
async fn poke_account(bed: &Bed, cr: &str, n: u32) {
    let api: Api<aoai_operator::crd::AIAccount> = Api::all(bed.client.clone());
    api.patch(
        cr,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"chaos.aoai.dev/poke": n.to_string()}}})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_debug_logs_events_status_configmaps_and_metrics_hold_no_secret() {
    let bed = bed_with_all_credentials().await;
    let op = bed.start_operator().await;
    bed.wait_accounts_ready(Duration::from_secs(60)).await;
    // The keys really went to Key Vault (so the values we scan for are the ones the operator handled).
    for a in &bed.accounts {
        let (k1, _) = bed.azure.account_keys(&a.arm_id);
        let stored = bed.azure.secret(&a.vault_uri, &a.secret_name).map(|s| s.0);
        assert_eq!(
            stored.as_deref(),
            Some(k1.as_str()),
            "key of {} in Key Vault",
            a.cr_name
        );
    }
    deploy_everywhere(&bed).await;
    wait_all_ready(&bed).await;

    // Error paths that carry Azure bodies: Key Vault and ARM failures, a token endpoint failure.
    bed.azure.inject(Fault {
        surface: Surface::KeyVault,
        method: None,
        path_contains: None,
        count: 2,
        action: FaultAction::Error {
            status: 403,
            code: "Forbidden".into(),
            message: "injected: caller is not authorized".into(),
            retry_after: None,
        },
    });
    bed.azure.inject(Fault {
        surface: Surface::Token,
        method: None,
        path_contains: None,
        count: 2,
        action: FaultAction::Error {
            status: 401,
            code: "invalid_client".into(),
            message: "injected: AADSTS7000215 invalid client secret".into(),
            retry_after: None,
        },
    });
    // Key rotation: the operator stores the new key (and must not print it).
    let a0 = bed.accounts[0].clone();
    bed.azure.regenerate_key(&a0.arm_id, true);
    for n in 1..=3 {
        poke_account(&bed, &a0.cr_name, n).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let (new_key, _) = bed.azure.account_keys(&a0.arm_id);
    wait_for(
        Duration::from_secs(60),
        "rotated key in Key Vault",
        || async {
            bed.azure
                .secret(&a0.vault_uri, &a0.secret_name)
                .is_some_and(|s| s.0 == new_key)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // A capacity change (more events and status writes) and an out-of-band drift.
    bed.patch_md_spec(
        &bed.namespaces[0],
        "leak-0",
        json!({"sku": {"capacity": 2}}),
    )
    .await;
    bed.azure.patch_deployment_out_of_band(
        &bed.accounts[1].arm_id,
        &format!("{}.leak-1", bed.namespaces[0]),
        |d| d["sku"]["capacity"] = json!(4),
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    wait_all_ready(&bed).await;
    bed.azure.clear_faults();
    assert!(
        bed.logs.len() > 10_000,
        "the debug log capture is suspiciously small ({} bytes)",
        bed.logs.len()
    );
    assert!(
        bed.logs.text().contains("DEBUG"),
        "debug level was not captured"
    );
    support_chaos::leaks::assert_no_leaks(&bed, vec![]).await;
    op.shutdown().await.unwrap();
}

/// The real binary, as deployed: `aoai-operator run` with RUST_LOG=debug, text logs then JSON
/// logs (a restart in between), against the real apiserver and the Azure emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_debug_output_text_and_json_holds_no_secret() {
    let bed = bed_with_all_credentials().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // The operator's own ServiceAccount token (its leak is looked for too).
    std::fs::write(&kubeconfig, bed.operator_kubeconfig()).unwrap();
    let mut extra = Vec::new();
    for (round, json_logs) in [(0, false), (1, true)] {
        let out_path = dir.path().join(format!("operator-{round}.log"));
        let out = std::fs::File::create(&out_path).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_aoai-operator"));
        cmd.arg("run")
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--leader-election=false",
                "--namespace",
                &bed.operator_ns,
            ])
            .args([
                "--resync",
                "2s",
                "--poll-interval",
                "100ms",
                "--max-poll-interval",
                "500ms",
                "--write-slot-retry",
                "100ms",
                "--backoff-base",
                "100ms",
                "--backoff-max",
                "2s",
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "debug")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true);
        if json_logs {
            cmd.arg("--log-json");
        }
        for (k, v) in &bed.vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start aoai-operator");
        if round == 0 {
            bed.wait_accounts_ready(Duration::from_secs(60)).await;
            deploy_everywhere(&bed).await;
            wait_all_ready(&bed).await;
        } else {
            bed.azure.regenerate_key(&bed.accounts[0].arm_id, true);
            poke_account(&bed, "acct-0", 1).await;
            bed.patch_md_spec(
                &bed.namespaces[0],
                "leak-2",
                json!({"sku": {"capacity": 3}}),
            )
            .await;
            let (k, _) = bed.azure.account_keys(&bed.accounts[0].arm_id);
            let a0 = bed.accounts[0].clone();
            wait_for(Duration::from_secs(60), "rotated key stored", || async {
                bed.azure
                    .secret(&a0.vault_uri, &a0.secret_name)
                    .is_some_and(|s| s.0 == k)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            tokio::time::sleep(Duration::from_secs(3)).await;
            wait_all_ready(&bed).await;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the operator exited early: {}",
            std::fs::read_to_string(&out_path).unwrap_or_default()
        );
        // SIGTERM, as Kubernetes stops a pod.
        let pid = child.id().unwrap() as i32;
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
        let _ = child.kill().await;
        let text = std::fs::read_to_string(&out_path).unwrap();
        assert!(
            text.len() > 5_000,
            "operator output is suspiciously small ({} bytes)",
            text.len()
        );
        assert!(
            text.contains("DEBUG") || text.contains("\"level\":\"DEBUG\""),
            "debug level not on"
        );
        extra.push(Corpus {
            name: format!(
                "aoai-operator binary output ({})",
                if json_logs { "json" } else { "text" }
            ),
            text,
        });
    }
    support_chaos::leaks::assert_no_leaks(&bed, extra).await;
}
