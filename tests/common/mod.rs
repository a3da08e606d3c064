//! Test bed for the operator's end-to-end tests: this binary's real Kubernetes control plane
//! (see `cluster`), the Azure emulator in-process, the CRDs, three namespaces of the test's own
//! (`team_a`, `team_b`, `team_c` — unique names; team-c carries the `ai-access` label), an
//! operator namespace, an AIAccount, and the controller running in-process.
#![allow(dead_code)]

pub mod cluster;

use aoai_operator::crd::{AIAccount, ModelDeployment};
use aoai_operator::{Config, Operator};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use testbed::azure::{AzureConfig, AzureEmulator, RequestRecord};
use testbed::harness::{Cluster, Exclusive};

pub const ACCOUNT: &str = "shared";
pub const SECRET_NAME: &str = "shared-key";

pub struct Bed {
    pub cluster: Cluster,
    pub azure: AzureEmulator,
    pub client: kube::Client,
    pub dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
    pub account_id: String,
    pub vault: String,
    pub op: Option<Operator>,
    /// This test's namespaces (unique names): team-a is allowed by name, team-c by label,
    /// team-b not at all.
    pub team_a: String,
    pub team_b: String,
    pub team_c: String,
    /// The operator's own namespace (client-secret Secrets, Leases).
    pub operator_ns: String,
    _exclusive: Exclusive,
}

pub fn specs_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("AZURE_SPECS_DIR").map(Into::into)
}

impl Bed {
    pub async fn new() -> Bed {
        Self::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut AzureConfig)) -> Bed {
        aoai_operator::telemetry::init(
            false,
            &std::env::var("TEST_LOG").unwrap_or_else(|_| "warn,aoai_operator=info".into()),
        );
        let mut cfg = AzureConfig {
            provisioning_delay: Duration::from_millis(300),
            lro_retry_after_secs: 0,
            specs_dir: specs_dir(),
            ..Default::default()
        };
        tweak(&mut cfg);
        let azure = AzureEmulator::start(cfg).await.expect("azure emulator");
        let dir = tempfile::tempdir().unwrap();
        azure.write_files(dir.path()).unwrap();
        let env: HashMap<String, String> = azure
            .env()
            .vars()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let cluster::Prepared {
            cluster,
            client,
            exclusive,
        } = cluster::prepare(cluster::Options::default(), false).await;
        let team_a = cluster.namespace("team-a", &[]).await.expect("namespace");
        let team_b = cluster.namespace("team-b", &[]).await.expect("namespace");
        let team_c = cluster
            .namespace("team-c", &[("ai-access", "true")])
            .await
            .expect("namespace");
        let operator_ns = cluster
            .namespace("aoai-system", &[])
            .await
            .expect("namespace");
        let account_id = azure.default_account_id();
        let vault = azure.default_vault_uri();
        let bed = Bed {
            cluster,
            azure,
            client,
            dir,
            env,
            account_id,
            vault,
            op: None,
            team_a,
            team_b,
            team_c,
            operator_ns,
            _exclusive: exclusive,
        };
        bed.create_account(ACCOUNT, json!({})).await;
        bed
    }

    pub async fn create_account(&self, name: &str, extra_spec: Value) {
        let mut spec = json!({
            "subscriptionId": self.env["AZURE_SUBSCRIPTION_ID"],
            "resourceGroup": self.env["AZURE_RESOURCE_GROUP"],
            "accountName": self.env["AZURE_OPENAI_ACCOUNT"],
            "keyVault": {"vaultUri": self.vault, "secretName": SECRET_NAME},
            "allowedNamespaces": {"names": [self.team_a], "selector": {"matchLabels": {"ai-access": "true"}}},
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        let a: AIAccount = serde_json::from_value(json!({
            "apiVersion": "aoai.dev/v1alpha1", "kind": "AIAccount",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        Api::<AIAccount>::all(self.client.clone())
            .create(&PostParams::default(), &a)
            .await
            .expect("create AIAccount");
    }

    pub fn config(&self) -> Config {
        let mut c = Config::for_tests(self.client.clone(), &self.env);
        c.operator_namespace = self.operator_ns.clone();
        c
    }

    pub async fn start(&mut self) {
        self.start_with(|_| {}).await;
    }

    pub async fn start_with(&mut self, f: impl FnOnce(&mut Config)) {
        let mut c = self.config();
        c.timing.resync = Duration::from_millis(700);
        f(&mut c);
        self.op = Some(aoai_operator::start(c).await.expect("operator starts"));
    }

    pub async fn stop(&mut self) {
        if let Some(op) = self.op.take() {
            op.shutdown().await.expect("operator stops");
        }
    }

    pub fn mds(&self, ns: &str) -> Api<ModelDeployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn create_md(&self, ns: &str, name: &str, spec: Value) -> ModelDeployment {
        let mut full = json!({
            "accountRef": {"name": ACCOUNT},
            "model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"},
            "sku": {"name": "GlobalStandard", "capacity": 10},
        });
        merge(&mut full, spec);
        let md: ModelDeployment = serde_json::from_value(json!({
            "apiVersion": "aoai.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": ns}, "spec": full,
        }))
        .unwrap();
        self.mds(ns)
            .create(&PostParams::default(), &md)
            .await
            .expect("create ModelDeployment")
    }

    pub async fn patch_spec(&self, ns: &str, name: &str, spec: Value) {
        self.mds(ns)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": spec})),
            )
            .await
            .expect("patch spec");
    }

    pub async fn delete_md(&self, ns: &str, name: &str) {
        self.mds(ns)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    /// Wait until `pred` holds for the ModelDeployment (None = it is gone).
    pub async fn wait_md(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(Option<&ModelDeployment>) -> bool,
    ) -> Option<ModelDeployment> {
        let start = Instant::now();
        loop {
            let md = self.mds(ns).get_opt(name).await.expect("get");
            if pred(md.as_ref()) {
                return md;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {ns}/{name} to be {what}; last status: {}",
                    serde_json::to_string_pretty(&md.and_then(|m| m.status)).unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ready=True for the current generation.
    pub async fn wait_ready(&self, ns: &str, name: &str) -> ModelDeployment {
        self.wait_md(ns, name, Duration::from_secs(30), "Ready", |m| {
            m.is_some_and(is_ready)
        })
        .await
        .unwrap()
    }

    pub async fn wait_reason(&self, ns: &str, name: &str, reason: &str) -> ModelDeployment {
        self.wait_md(ns, name, Duration::from_secs(30), reason, |m| {
            m.is_some_and(|m| ready_reason(m).as_deref() == Some(reason))
        })
        .await
        .unwrap()
    }

    pub async fn wait_gone(&self, ns: &str, name: &str) {
        self.wait_md(ns, name, Duration::from_secs(30), "gone", |m| m.is_none())
            .await;
    }

    pub async fn wait_account_ready(&self) {
        let api: Api<AIAccount> = Api::all(self.client.clone());
        let start = Instant::now();
        loop {
            let a = api.get(ACCOUNT).await.unwrap();
            let ok = a.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "AIAccount not ready: {:?}",
                a.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn azure_deployment(&self, name: &str) -> Option<Value> {
        self.azure.deployment(&self.account_id, name)
    }

    /// Requests (from the emulator's log) whose path ends with `/deployments/{name}` (+ action).
    pub fn deployment_requests(&self, name: &str) -> Vec<RequestRecord> {
        let needle = format!("/deployments/{}", name.to_ascii_lowercase());
        self.azure
            .request_log()
            .into_iter()
            .filter(|r| {
                let p = r.path.to_ascii_lowercase();
                p.ends_with(&needle) || p.contains(&format!("{needle}/"))
            })
            .collect()
    }

    pub fn puts(&self, name: &str) -> Vec<RequestRecord> {
        self.deployment_requests(name)
            .into_iter()
            .filter(|r| r.method == "PUT")
            .collect()
    }

    pub fn assert_contract_clean(&self) {
        let v = self.azure.contract_violations();
        assert!(
            v.is_empty(),
            "requests/responses violating the Azure spec: {v:#?}"
        );
        if specs_dir().is_some() {
            assert!(
                self.azure.contract_loaded(),
                "AZURE_SPECS_DIR is set but the emulator did not load the contract"
            );
        } else {
            eprintln!(
                "NOTE: AZURE_SPECS_DIR not set: the emulator did not validate request bodies against the spec"
            );
        }
    }

    /// Waits (up to 20 s) for an event on `name` that `pred` accepts: events are published after
    /// the write and the status save they report, so an Azure change can be seen before its event.
    pub async fn wait_event(
        &self,
        ns: &str,
        name: &str,
        pred: impl Fn(&(String, String, String)) -> bool,
    ) -> Vec<(String, String, String)> {
        let start = std::time::Instant::now();
        loop {
            let events = self.events_for(ns, name).await;
            if events.iter().any(&pred) {
                return events;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "no matching event on {ns}/{name} after 20s: {events:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub async fn events_for(&self, ns: &str, name: &str) -> Vec<(String, String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), ns);
        api.list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }
}

pub fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

pub fn ready_reason(m: &ModelDeployment) -> Option<String> {
    m.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone())
}

pub fn is_ready(m: &ModelDeployment) -> bool {
    let g = m.metadata.generation;
    m.status.as_ref().is_some_and(|s| {
        s.observed_generation == g
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True" && c.observed_generation == g)
    })
}

pub fn name_of(ns: &str, name: &str) -> String {
    format!("{ns}.{name}")
}

pub fn md_name(m: &ModelDeployment) -> String {
    m.status
        .as_ref()
        .and_then(|s| s.deployment_name.clone())
        .unwrap_or_else(|| m.name_any())
}
