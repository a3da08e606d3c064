//! Shared helpers for the Azure emulator tests: start an emulator, get tokens through its
//! Entra ID endpoint, and call ARM / Key Vault / the data plane over HTTPS with its CA.
#![allow(dead_code)]
use std::time::Duration;

use serde_json::Value;
use testbed::azure::{AzureConfig, AzureEmulator, AzureEnv};

pub const API: &str = "2026-09-01";

/// The "Cognitive Services OpenAI User" role definition id.
pub const OPENAI_USER: &str = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd";

/// The principal (object id, `oid`) a token was issued to.
pub fn token_oid(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims["oid"].as_str().expect("oid").to_string()
}

pub struct Az {
    pub emu: AzureEmulator,
    pub env: AzureEnv,
    pub http: reqwest::Client,
}

/// Every test doubles as a contract check: with specs loaded, nothing the emulator accepted or
/// answered during the test may violate them.
impl Drop for Az {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let v = self.emu.contract_violations();
            assert!(v.is_empty(), "contract violations:\n{}", v.join("\n"));
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

pub fn client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

impl Az {
    pub async fn start(config: AzureConfig) -> Az {
        let emu = AzureEmulator::start(config).await.expect("start emulator");
        let env = emu.env();
        let http = client(&emu.ca_pem());
        Az { emu, env, http }
    }

    pub async fn default() -> Az {
        Az::start(AzureConfig::default()).await
    }

    /// Client-credentials token of the default client for `resource` (e.g.
    /// `https://management.azure.com`).
    pub async fn token(&self, resource: &str) -> String {
        self.token_as(&self.env.client_id, &self.env.client_secret, resource)
            .await
    }

    /// Client-credentials token of another registered application.
    pub async fn token_as(&self, client_id: &str, secret: &str, resource: &str) -> String {
        let url = format!(
            "{}{}/oauth2/v2.0/token",
            self.env.authority_host, self.env.tenant_id
        );
        let scope = format!("{resource}/.default");
        let resp = self
            .http
            .post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", &scope),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.expect("token json");
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn send(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.http.request(method.parse().expect("method"), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// ARM call; `path` is relative to the ARM base (no leading slash), api-version appended
    /// when absent.
    pub async fn arm(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let token = self.token("https://management.azure.com").await;
        self.arm_with(&token, method, path, body).await
    }

    pub async fn arm_with(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else if path.contains("api-version=") {
            format!(
                "{}{}",
                self.env.resource_manager_endpoint,
                path.trim_start_matches('/')
            )
        } else {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!(
                "{}{}{sep}api-version={API}",
                self.env.resource_manager_endpoint,
                path.trim_start_matches('/')
            )
        };
        self.send(method, &url, Some(token), body).await
    }

    pub fn account_path(&self) -> String {
        self.emu
            .default_account_id()
            .trim_start_matches('/')
            .to_string()
    }

    pub fn deployment_path(&self, name: &str) -> String {
        format!("{}/deployments/{name}", self.account_path())
    }

    /// Polls an Azure-AsyncOperation URL until it is terminal; returns the final status body.
    pub async fn wait_operation(&self, url: &str) -> Value {
        let token = self.token("https://management.azure.com").await;
        for _ in 0..200 {
            let r = self.arm_with(&token, "GET", url, None).await;
            assert_eq!(r.status, 200, "operation status: {:?}", r.body);
            let status = r.body["status"].as_str().unwrap_or("").to_string();
            if status != "InProgress" && status != "Accepted" && status != "Running" {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("operation did not finish");
    }
}

pub fn deployment_body(model: &str, version: Option<&str>, sku: &str, capacity: u32) -> Value {
    let mut m = serde_json::json!({"format": "OpenAI", "name": model});
    if let Some(v) = version {
        m["version"] = Value::String(v.to_string());
    }
    serde_json::json!({"sku": {"name": sku, "capacity": capacity}, "properties": {"model": m}})
}
