//! Azure clients: cloud endpoints and settings, the shared HTTP client (custom CA),
//! Entra ID token credentials, ARM (Microsoft.CognitiveServices), Key Vault secrets,
//! the per-account write gate, the long-running-operation poll clock and a TTL cache for shared reads.

pub mod arm;
pub mod auth;
pub mod cloud;
pub mod http;
pub mod keyvault;
pub mod lock;
pub mod poll_clock;
pub mod ttl_cache;

/// Microsoft.CognitiveServices api-version spoken to ARM.
pub const ARM_API_VERSION: &str = "2026-09-01";
/// Key Vault data-plane api-version.
pub const KEY_VAULT_API_VERSION: &str = "2026-04-01";
