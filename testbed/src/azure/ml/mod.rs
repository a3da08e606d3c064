//! Azure Machine Learning side of the Azure emulator (issue 12): `Microsoft.MachineLearningServices`
//! workspaces (hub / project), managed online endpoints and deployments, serverless endpoints,
//! marketplace subscriptions, the model registry catalogue, VM-family vCPU quota, and the data
//! planes (scoring URI of an online endpoint, chat completions of a serverless endpoint).
//! Validated against its own spec tree (`AZURE_SPECS_ML_DIR`, default `azure-specs-ml` beside
//! `AZURE_SPECS_DIR`), which needs a newer common-types revision than the Cognitive Services tree.
//!
//! Modules: `routes` (ARM entry: auth, api-versions, dispatch), `errors` (the RP's error bodies),
//! `state` (the ML world), `operations` (long-running operations), `workspaces`, `endpoints`
//! (online endpoints, traffic, keys, tokens), `deployments` (online deployments), `serverless`,
//! `marketplace`, `registry` (catalogue), `quota` (VM sizes, vCPU quota, usages), `scoring`
//! (data planes), `resource` (shared ARM plumbing), `admin` (HTTP control routes), `api` (the
//! `AzureEmulator` methods).
// Handlers return Azure's error answer (`Resp`) by value as the `Err` of their checks.
#![allow(clippy::result_large_err)]

pub(crate) mod admin;
mod api;
mod deployments;
mod endpoints;
mod errors;
mod marketplace;
mod operations;
pub mod quota;
pub mod registry;
mod resource;
pub(crate) mod routes;
pub(crate) mod scoring;
mod serverless;
mod state;
mod workspaces;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

pub use api::{MlEnv, ServedRequest, WorkspaceSeed};
pub use quota::VmSize;
pub use registry::RegistryModel;

use super::contract::{self, Contract};
use state::MlWorld;

/// Name of the ML spec tree beside the Cognitive Services one (`../shared/azure-specs-ml`).
const SPECS_FOLDER: &str = "azure-specs-ml";

/// The ML emulator's state inside `Inner`: its contract and its world.
pub(crate) struct MlState {
    /// The specs folder, if any; its contract is parsed on first use (most emulators of the
    /// test suite never see an ML request).
    specs: Option<PathBuf>,
    contract: OnceLock<Option<Arc<Contract>>>,
    pub world: Mutex<MlWorld>,
    pub seeded: Mutex<MlEnv>,
}

impl MlState {
    /// Finds the ML specs: `explicit`, else env `AZURE_SPECS_ML_DIR`, else the `azure-specs-ml`
    /// folder beside the Cognitive Services specs folder.
    pub fn new(explicit: Option<PathBuf>, cs_specs: Option<&Path>) -> MlState {
        MlState {
            specs: specs_dir(explicit, cs_specs),
            contract: OnceLock::new(),
            world: Mutex::new(MlWorld::default()),
            seeded: Mutex::new(MlEnv::default()),
        }
    }

    /// The ML contract (loaded on first use); a specs folder that does not load is reported
    /// as a contract violation, so that no test passes unvalidated.
    pub fn contract(&self, violations: &Mutex<Vec<String>>) -> Option<&Arc<Contract>> {
        self.contract
            .get_or_init(|| {
                let dir = self.specs.as_ref()?;
                match Contract::load_shared(dir) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        let msg = format!(
                            "the Machine Learning specs in {} do not load: {e:#}",
                            dir.display()
                        );
                        tracing::error!("{msg}");
                        violations.lock().push(msg);
                        None
                    }
                }
            })
            .as_ref()
    }
}

/// The ML specs folder, resolved (see `MlState::new`).
pub fn specs_dir(explicit: Option<PathBuf>, cs_specs: Option<&Path>) -> Option<PathBuf> {
    let from_env = || std::env::var_os("AZURE_SPECS_ML_DIR").map(PathBuf::from);
    if let Some(dir) = explicit.or_else(from_env) {
        return contract::resolve_specs_dir(&dir);
    }
    let beside = cs_specs?.parent()?.join(SPECS_FOLDER);
    beside.is_dir().then_some(beside)
}

/// The ML specs folder from the environment alone (`AZURE_SPECS_ML_DIR`, else beside
/// `AZURE_SPECS_DIR`), for the contract tests.
pub fn specs_dir_from_env() -> Option<PathBuf> {
    specs_dir(None, contract::specs_dir_from_env().as_deref())
}

/// Path prefix of a registry's regional management front end (after registry discovery).
pub(crate) const MFE_PREFIX: &str = "/mferp/managementfrontend";

/// Whether a path on the main listener belongs to `Microsoft.MachineLearningServices`: its ARM
/// routes, registry discovery, and a registry's management front end.
pub(crate) fn owns(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    p.contains("/providers/microsoft.machinelearningservices")
        || p.starts_with("/registrymanagement/")
        || p.starts_with(MFE_PREFIX)
}
