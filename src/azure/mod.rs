//! Azure clients: cloud endpoints and settings, the shared HTTP client (custom CA),
//! Entra ID token credentials, the ARM request budget, ARM (Microsoft.CognitiveServices), the
//! per-account deployment listings, Key Vault secrets, the per-account write slot and the
//! long-running-operation poll clock.

pub mod arm;
pub mod auth;
pub mod budget;
pub mod cloud;
pub mod dataplane;
pub mod http;
pub mod inventory;
pub mod keyvault;
pub mod lock;
pub mod ml;
pub mod poll_clock;

/// Microsoft.CognitiveServices api-version spoken to ARM.
pub const ARM_API_VERSION: &str = "2026-09-01";
/// Key Vault data-plane api-version.
pub const KEY_VAULT_API_VERSION: &str = "2026-04-01";
