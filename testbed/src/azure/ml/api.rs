//! The Rust test API of the ML emulator on `AzureEmulator`: seeding workspaces, VM quota and
//! the registry catalogue; reading endpoints, deployments, keys and the scoring requests each
//! deployment served; out-of-band edits (as if made in the portal); the default world (a hub
//! and a project in the seeded resource group) and its `azure.env` coordinates.
use std::time::Instant;

use serde_json::Value;

use super::quota::VmSize;
use super::registry::RegistryModel;
use super::state::{Scope, key, quota_key, workspace_id};
use super::workspaces;
use crate::azure::AzureEmulator;

/// Seed for a workspace (`add_ml_workspace`).
#[derive(Clone, Debug)]
pub struct WorkspaceSeed {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    /// `Hub`, `Project` or `Default`.
    pub kind: String,
    /// For a project: its hub's name (same resource group) or ARM id.
    pub hub: Option<String>,
}

/// Coordinates of the seeded ML world (the `AZURE_ML_*` lines of `azure.env`).
#[derive(Clone, Debug, Default)]
pub struct MlEnv {
    pub subscription_id: String,
    pub resource_group: String,
    pub hub_workspace: String,
    /// The hub's project, where endpoints go.
    pub workspace: String,
    pub location: String,
    /// The system registry of the catalogue's open models.
    pub registry: String,
    /// Registry discovery base URL (this emulator; Azure's is `https://{region}.api.azureml.ms/`).
    pub registry_discovery_endpoint: String,
}

impl MlEnv {
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_ML_WORKSPACE", self.workspace.clone()),
            ("AZURE_ML_HUB_WORKSPACE", self.hub_workspace.clone()),
            ("AZURE_ML_LOCATION", self.location.clone()),
            ("AZURE_ML_REGISTRY", self.registry.clone()),
            (
                "AZURE_ML_REGISTRY_DISCOVERY_ENDPOINT",
                self.registry_discovery_endpoint.clone(),
            ),
        ]
    }

    /// ARM id of the project workspace.
    pub fn workspace_id(&self) -> String {
        workspace_id(&self.subscription_id, &self.resource_group, &self.workspace)
    }
}

/// One scoring request an online endpoint answered.
#[derive(Clone, Debug)]
pub struct ServedRequest {
    pub endpoint_id: String,
    /// The deployment that answered (None when none could: 401, 404).
    pub deployment: Option<String>,
    pub status: u16,
    pub at: Instant,
}

impl AzureEmulator {
    /// Seeds hub `contoso-hub` and its project `contoso-project` (eastus) beside the seeded
    /// account; called by `start`.
    pub(crate) fn seed_ml(&self) {
        let i = &self.inner;
        let seed = |name: &str, kind: &str, hub: Option<&str>| WorkspaceSeed {
            subscription_id: i.subscription_id.clone(),
            resource_group: i.resource_group.clone(),
            name: name.into(),
            location: "eastus".into(),
            kind: kind.into(),
            hub: hub.map(str::to_string),
        };
        self.add_ml_workspace(seed("contoso-hub", "Hub", None));
        self.add_ml_workspace(seed("contoso-project", "Project", Some("contoso-hub")));
        *i.ml.seeded.lock() = MlEnv {
            subscription_id: i.subscription_id.clone(),
            resource_group: i.resource_group.clone(),
            hub_workspace: "contoso-hub".into(),
            workspace: "contoso-project".into(),
            location: "eastus".into(),
            registry: "azureml".into(),
            registry_discovery_endpoint: i.main_url(),
        };
    }

    /// The seeded ML world's coordinates.
    pub fn ml_env(&self) -> MlEnv {
        self.inner.ml.seeded.lock().clone()
    }

    /// Adds (or replaces) a workspace; returns its ARM id.
    pub fn add_ml_workspace(&self, seed: WorkspaceSeed) -> String {
        let hub = seed.hub.as_ref().map(|h| {
            if h.starts_with('/') {
                h.clone()
            } else {
                workspace_id(&seed.subscription_id, &seed.resource_group, h)
            }
        });
        let scope = Scope {
            subscription: seed.subscription_id,
            resource_group: seed.resource_group,
            workspace: seed.name,
            location: seed.location,
        };
        let mut w = self.inner.ml.world.lock();
        workspaces::insert(
            &mut w,
            scope,
            &seed.kind,
            hub.as_deref(),
            &self.inner.tenant_id,
        )
    }

    /// Sets the vCPU limit of a VM family (e.g. `standardNCADSA100v4Family`) in a region.
    pub fn set_vm_quota(&self, subscription: &str, location: &str, family: &str, limit: u32) {
        self.inner
            .ml
            .world
            .lock()
            .vm_quota
            .insert(quota_key(subscription, location, family), limit);
    }

    /// vCPUs the managed deployments of a region reserve in a VM family.
    pub fn vm_quota_usage(&self, subscription: &str, location: &str, family: &str) -> u32 {
        let mut w = self.inner.ml.world.lock();
        w.settle();
        w.family_usage(subscription, location, family, None)
    }

    pub fn vm_sizes(&self) -> Vec<VmSize> {
        self.inner.ml.world.lock().vm_sizes.clone()
    }

    pub fn set_vm_sizes(&self, sizes: Vec<VmSize>) {
        self.inner.ml.world.lock().vm_sizes = sizes;
    }

    pub fn registry_catalog(&self) -> Vec<RegistryModel> {
        self.inner.ml.world.lock().catalog.clone()
    }

    /// Replaces the registry catalogue (every registry's models).
    pub fn set_registry_catalog(&self, models: Vec<RegistryModel>) {
        self.inner.ml.world.lock().catalog = models;
    }

    /// The scoring requests an online endpoint answered, in order.
    pub fn served_requests(&self, endpoint_id: &str) -> Vec<ServedRequest> {
        let k = key(endpoint_id);
        self.inner
            .ml
            .world
            .lock()
            .served
            .iter()
            .filter(|s| key(&s.endpoint) == k)
            .map(|s| ServedRequest {
                endpoint_id: s.endpoint.clone(),
                deployment: s.deployment.clone(),
                status: s.status,
                at: s.at,
            })
            .collect()
    }

    pub fn clear_served_requests(&self) {
        self.inner.ml.world.lock().served.clear();
    }

    /// ARM JSON of an online endpoint as GET returns it.
    pub fn online_endpoint(&self, endpoint_id: &str) -> Option<Value> {
        let mut w = self.inner.ml.world.lock();
        w.settle();
        w.endpoints.get(&key(endpoint_id)).map(|e| e.body.clone())
    }

    /// (primary, secondary) key of an online endpoint.
    pub fn online_endpoint_keys(&self, endpoint_id: &str) -> Option<(String, String)> {
        let w = self.inner.ml.world.lock();
        w.endpoints
            .get(&key(endpoint_id))
            .map(|e| (e.primary_key.clone(), e.secondary_key.clone()))
    }

    pub fn online_deployment(&self, endpoint_id: &str, name: &str) -> Option<Value> {
        let mut w = self.inner.ml.world.lock();
        w.settle();
        w.endpoints
            .get(&key(endpoint_id))
            .and_then(|e| e.deployments.get(&name.to_ascii_lowercase()))
            .map(|d| d.body.clone())
    }

    pub fn online_deployments(&self, endpoint_id: &str) -> Vec<Value> {
        let mut w = self.inner.ml.world.lock();
        w.settle();
        w.endpoints
            .get(&key(endpoint_id))
            .map(|e| e.deployments.values().map(|d| d.body.clone()).collect())
            .unwrap_or_default()
    }

    pub fn serverless_endpoint(&self, endpoint_id: &str) -> Option<Value> {
        let mut w = self.inner.ml.world.lock();
        w.settle();
        w.serverless.get(&key(endpoint_id)).map(|s| s.body.clone())
    }

    pub fn serverless_endpoint_keys(&self, endpoint_id: &str) -> Option<(String, String)> {
        let w = self.inner.ml.world.lock();
        w.serverless
            .get(&key(endpoint_id))
            .map(|s| (s.primary_key.clone(), s.secondary_key.clone()))
    }

    pub fn marketplace_subscription(&self, id: &str) -> Option<Value> {
        let mut w = self.inner.ml.world.lock();
        w.settle();
        w.subscriptions.get(&key(id)).map(|s| s.body.clone())
    }

    /// Edits the stored ARM JSON of an online endpoint directly (e.g. traffic set in the portal).
    pub fn patch_online_endpoint_out_of_band(&self, endpoint_id: &str, f: impl FnOnce(&mut Value)) {
        let mut w = self.inner.ml.world.lock();
        w.settle();
        if let Some(e) = w.endpoints.get_mut(&key(endpoint_id)) {
            f(&mut e.body);
        }
    }

    /// Edits the stored ARM JSON of an online deployment directly.
    pub fn patch_online_deployment_out_of_band(
        &self,
        endpoint_id: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let mut w = self.inner.ml.world.lock();
        w.settle();
        if let Some(d) = w
            .endpoints
            .get_mut(&key(endpoint_id))
            .and_then(|e| e.deployments.get_mut(&name.to_ascii_lowercase()))
        {
            f(&mut d.body);
        }
    }

    pub fn delete_online_deployment_out_of_band(&self, endpoint_id: &str, name: &str) {
        let mut w = self.inner.ml.world.lock();
        w.settle();
        if let Some(e) = w.endpoints.get_mut(&key(endpoint_id)) {
            e.deployments.remove(&name.to_ascii_lowercase());
        }
    }

    /// High-water mark of writes in flight on one online endpoint (a write counts from its
    /// request until its operation ends; one rejected with 409 counts too).
    pub fn max_concurrent_writes_per_endpoint(&self) -> usize {
        self.inner.ml.world.lock().max_concurrent
    }

    /// Ends every running ML operation now (its planned outcome applies), so tests can hold
    /// operations open with a long `provisioning_delay` and finish them at a chosen point.
    pub fn complete_ml_operations(&self) {
        let mut w = self.inner.ml.world.lock();
        let now = Instant::now();
        let pending: Vec<String> = w.pending.iter().cloned().collect();
        for id in pending {
            if let Some(op) = w.operations.get_mut(&id) {
                op.done_at = now;
            }
        }
        w.settle();
    }

    /// Whether the ML spec contract is loaded (`AZURE_SPECS_ML_DIR`, or beside the specs dir).
    pub fn ml_contract_loaded(&self) -> bool {
        self.inner.ml.contract(&self.inner.violations).is_some()
    }
}
