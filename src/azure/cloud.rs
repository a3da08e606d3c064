//! Cloud endpoints (presets for Azure public, China, US Government; custom overrides)
//! and the operator's Azure settings read from the azure.env variable names.

use std::path::PathBuf;

/// Endpoints and token audiences of one Azure cloud.
#[derive(Clone, Debug, PartialEq)]
pub struct Cloud {
    /// ARM base URL.
    pub resource_manager: String,
    /// Token audience for ARM.
    pub resource_manager_audience: String,
    /// Entra ID authority host base URL.
    pub authority_host: String,
    /// Key Vault DNS suffix; the token audience is `https://{suffix}`.
    pub key_vault_suffix: String,
    /// Azure ML registry discovery base URL; `{location}` is replaced by the workspace's region.
    pub ml_registry_discovery: String,
}

impl Cloud {
    pub fn public() -> Self {
        Cloud {
            resource_manager: "https://management.azure.com/".into(),
            resource_manager_audience: "https://management.azure.com".into(),
            authority_host: "https://login.microsoftonline.com/".into(),
            key_vault_suffix: "vault.azure.net".into(),
            ml_registry_discovery: "https://{location}.api.azureml.ms/".into(),
        }
    }
    pub fn china() -> Self {
        Cloud {
            resource_manager: "https://management.chinacloudapi.cn/".into(),
            resource_manager_audience: "https://management.chinacloudapi.cn".into(),
            authority_host: "https://login.chinacloudapi.cn/".into(),
            key_vault_suffix: "vault.azure.cn".into(),
            ml_registry_discovery: "https://{location}.api.ml.azure.cn/".into(),
        }
    }
    pub fn us_gov() -> Self {
        Cloud {
            resource_manager: "https://management.usgovcloudapi.net/".into(),
            resource_manager_audience: "https://management.usgovcloudapi.net".into(),
            authority_host: "https://login.microsoftonline.us/".into(),
            key_vault_suffix: "vault.usgovcloudapi.net".into(),
            ml_registry_discovery: "https://{location}.api.ml.azure.us/".into(),
        }
    }
    /// `AzurePublicCloud`/`public`, `AzureChinaCloud`/`china`, `AzureUSGovernment`/`usgov`.
    pub fn preset(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "public" | "azurepubliccloud" | "azurecloud" => Some(Self::public()),
            "china" | "azurechinacloud" => Some(Self::china()),
            "usgov" | "usgovernment" | "azureusgovernment" | "azureusgovernmentcloud" => {
                Some(Self::us_gov())
            }
            _ => None,
        }
    }
    pub fn arm_scope(&self) -> String {
        format!(
            "{}/.default",
            self.resource_manager_audience.trim_end_matches('/')
        )
    }
    /// The registry discovery base URL for a region.
    pub fn ml_registry_discovery_for(&self, location: &str) -> String {
        with_slash(
            &self
                .ml_registry_discovery
                .replace("{location}", &location.to_ascii_lowercase()),
        )
    }
    pub fn key_vault_scope(&self) -> String {
        format!("https://{}/.default", self.key_vault_suffix)
    }
}

/// Azure settings of the operator process (flags or the azure.env variable names).
#[derive(Clone, Debug, Default)]
pub struct AzureSettings {
    /// AZURE_CLOUD preset name (public, china, usgov); default public.
    pub cloud_name: Option<String>,
    /// AZURE_RESOURCE_MANAGER_ENDPOINT override.
    pub resource_manager_endpoint: Option<String>,
    /// AZURE_RESOURCE_MANAGER_AUDIENCE override.
    pub resource_manager_audience: Option<String>,
    /// AZURE_AUTHORITY_HOST override.
    pub authority_host: Option<String>,
    /// AZURE_KEY_VAULT_SUFFIX override (token audience https://{suffix}).
    pub key_vault_suffix: Option<String>,
    /// AZURE_ML_REGISTRY_DISCOVERY_ENDPOINT override (`{location}` is the workspace's region).
    pub ml_registry_discovery_endpoint: Option<String>,
    /// Ambient identity: AZURE_TENANT_ID.
    pub tenant_id: Option<String>,
    /// Ambient identity: AZURE_CLIENT_ID.
    pub client_id: Option<String>,
    /// Ambient identity: AZURE_CLIENT_SECRET (never logged).
    pub client_secret: Option<String>,
    /// Ambient/workload identity: AZURE_FEDERATED_TOKEN_FILE.
    pub federated_token_file: Option<PathBuf>,
    /// Managed identity endpoint: AZURE_POD_IDENTITY_AUTHORITY_HOST (IMDS style), default http://169.254.169.254.
    pub pod_identity_authority_host: Option<String>,
    /// Extra CA bundle (PEM): SSL_CERT_FILE or --ca-file.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Display for AzureSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cloud={} arm={} authority={} ambient={}",
            self.cloud_name.as_deref().unwrap_or("public"),
            self.resource_manager_endpoint
                .as_deref()
                .unwrap_or("(preset)"),
            self.authority_host.as_deref().unwrap_or("(preset)"),
            self.ambient_kind()
        )
    }
}

impl AzureSettings {
    /// Read the azure.env names through `get` (e.g. `std::env::var`).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let g = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        AzureSettings {
            cloud_name: g("AZURE_CLOUD").or_else(|| g("AZURE_ENVIRONMENT")),
            resource_manager_endpoint: g("AZURE_RESOURCE_MANAGER_ENDPOINT"),
            resource_manager_audience: g("AZURE_RESOURCE_MANAGER_AUDIENCE"),
            authority_host: g("AZURE_AUTHORITY_HOST"),
            key_vault_suffix: g("AZURE_KEY_VAULT_SUFFIX"),
            ml_registry_discovery_endpoint: g("AZURE_ML_REGISTRY_DISCOVERY_ENDPOINT"),
            tenant_id: g("AZURE_TENANT_ID"),
            client_id: g("AZURE_CLIENT_ID"),
            client_secret: g("AZURE_CLIENT_SECRET"),
            federated_token_file: g("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from),
            pod_identity_authority_host: g("AZURE_POD_IDENTITY_AUTHORITY_HOST"),
            ca_file: g("SSL_CERT_FILE").map(PathBuf::from),
        }
    }

    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// The effective cloud (preset + overrides).
    pub fn cloud(&self) -> Result<Cloud, String> {
        let mut cloud = match &self.cloud_name {
            None => Cloud::public(),
            Some(n) => Cloud::preset(n).ok_or_else(|| {
                format!("unknown Azure cloud {n:?}: use public, china or usgov (and the endpoint overrides for a custom cloud)")
            })?,
        };
        if let Some(e) = &self.resource_manager_endpoint {
            cloud.resource_manager = with_slash(e);
        }
        if let Some(a) = &self.resource_manager_audience {
            cloud.resource_manager_audience = a.clone();
        }
        if let Some(a) = &self.authority_host {
            cloud.authority_host = with_slash(a);
        }
        if let Some(e) = &self.ml_registry_discovery_endpoint {
            cloud.ml_registry_discovery = with_slash(e);
        }
        if let Some(s) = &self.key_vault_suffix {
            cloud.key_vault_suffix = s.trim_start_matches('.').to_string();
        }
        Ok(cloud)
    }

    /// Which ambient credential the environment selects (client secret, then workload
    /// identity, then managed identity), as azure-identity's DefaultAzureCredential does.
    pub fn ambient_kind(&self) -> &'static str {
        if self.tenant_id.is_some() && self.client_id.is_some() && self.client_secret.is_some() {
            "client-secret"
        } else if self.tenant_id.is_some()
            && self.client_id.is_some()
            && self.federated_token_file.is_some()
        {
            "workload-identity"
        } else {
            "managed-identity"
        }
    }
}

pub(crate) fn with_slash(s: &str) -> String {
    if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_overrides() {
        assert_eq!(
            Cloud::preset("china").unwrap().key_vault_suffix,
            "vault.azure.cn"
        );
        assert_eq!(
            Cloud::preset("AzureUSGovernment").unwrap().resource_manager,
            "https://management.usgovcloudapi.net/"
        );
        assert_eq!(
            Cloud::public().arm_scope(),
            "https://management.azure.com/.default"
        );
        assert_eq!(
            Cloud::public().key_vault_scope(),
            "https://vault.azure.net/.default"
        );
        let s = AzureSettings::from_vars(|k| match k {
            "AZURE_RESOURCE_MANAGER_ENDPOINT" => Some("https://127.0.0.1:1".into()),
            "AZURE_AUTHORITY_HOST" => Some("https://127.0.0.1:2/".into()),
            "AZURE_TENANT_ID" | "AZURE_CLIENT_ID" => Some("x".into()),
            "AZURE_FEDERATED_TOKEN_FILE" => Some("/tmp/t".into()),
            _ => None,
        });
        let c = s.cloud().unwrap();
        assert_eq!(c.resource_manager, "https://127.0.0.1:1/");
        assert_eq!(c.resource_manager_audience, "https://management.azure.com");
        assert_eq!(s.ambient_kind(), "workload-identity");
        assert!(
            AzureSettings {
                cloud_name: Some("mars".into()),
                ..Default::default()
            }
            .cloud()
            .unwrap_err()
            .contains("unknown Azure cloud")
        );
    }
}
