//! Entra ID: the v2 token endpoint (`/{tenant}/oauth2/v2.0/token`, client secret or
//! client assertion), the OpenID discovery documents MSAL reads, the IMDS-style managed
//! identity endpoint, and the JWTs they issue (HMAC-signed by the emulator) with their
//! validation (audience, expiry) used by ARM, Key Vault and the data plane.
use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::server::{Req, Resp, json_response};
use super::{Inner, LogInfo};

pub(crate) const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.iter().map(|b| b ^ 0x36).collect::<Vec<_>>());
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.iter().map(|b| b ^ 0x5c).collect::<Vec<_>>());
    outer.update(inner);
    outer.finalize().into()
}

/// Signs and verifies the emulator's JWTs.
pub(crate) struct Signer {
    key: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenError {
    Malformed,
    BadSignature,
    Expired { exp: i64 },
    WrongAudience { aud: String },
}

impl Signer {
    pub fn new() -> Self {
        Signer {
            key: uuid::Uuid::new_v4().as_bytes().to_vec(),
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let input = format!("{header}.{payload}");
        let sig = B64.encode(hmac_sha256(&self.key, input.as_bytes()));
        format!("{input}.{sig}")
    }

    /// Verifies the signature and returns the claims (no audience/expiry check).
    pub fn verify(&self, token: &str) -> Result<Value, TokenError> {
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err(TokenError::Malformed);
        }
        let input = format!("{}.{}", parts[0], parts[1]);
        let sig = B64.decode(parts[2]).map_err(|_| TokenError::Malformed)?;
        if sig != hmac_sha256(&self.key, input.as_bytes()) {
            return Err(TokenError::BadSignature);
        }
        let payload = B64.decode(parts[1]).map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
    }

    /// Verifies signature, expiry and audience (any of `audiences`, trailing slash ignored).
    pub fn validate(&self, token: &str, audiences: &[&str]) -> Result<Value, TokenError> {
        let claims = self.verify(token)?;
        let exp = claims["exp"].as_i64().ok_or(TokenError::Malformed)?;
        if exp <= now() {
            return Err(TokenError::Expired { exp });
        }
        let auds: Vec<String> = match &claims["aud"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let norm = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
        if !auds
            .iter()
            .any(|aud| audiences.iter().any(|a| norm(a) == norm(aud)))
        {
            return Err(TokenError::WrongAudience {
                aud: auds.join(","),
            });
        }
        Ok(claims)
    }
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A registered application (service principal) or managed identity.
#[derive(Clone, Debug)]
pub(crate) struct App {
    pub client_id: String,
    pub secret: Option<String>,
    pub object_id: String,
}

pub(crate) fn access_token_claims(
    tenant: &str,
    audience: &str,
    app: &App,
    lifetime_secs: i64,
) -> Value {
    let iat = now();
    json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime_secs,
        "appid": app.client_id,
        "azp": app.client_id,
        "oid": app.object_id,
        "sub": app.object_id,
        "tid": tenant,
        "idtyp": "app",
        "ver": "1.0",
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn oauth_error(status: u16, error: &str, code: u32, description: &str) -> Resp {
    json_response(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: {t} Correlation ID: {c} Timestamp: {ts}",
                t = uuid::Uuid::new_v4(), c = uuid::Uuid::new_v4(), ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ")),
            "error_codes": [code],
            "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        }),
    )
}

/// `/{tenant}/...` on the main listener: token endpoint and discovery documents.
pub(crate) fn handle(inner: &Inner, req: &Req) -> Resp {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let base = inner.main_url();
    // Instance discovery (MSAL may call it when instance discovery is not disabled).
    if segs.len() >= 3 && segs[1] == "discovery" && segs[2] == "instance" {
        let host = base.trim_start_matches("https://").trim_end_matches('/');
        return json_response(
            200,
            json!({
                "tenant_discovery_endpoint": format!("{base}{}/v2.0/.well-known/openid-configuration", segs[0]),
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }),
        );
    }
    let tenant = segs[0];
    let known_tenant = tenant.eq_ignore_ascii_case(&inner.tenant_id)
        || tenant == "organizations"
        || tenant == "common";
    let rest = &segs[1..];
    if rest == ["v2.0", ".well-known", "openid-configuration"]
        || rest == [".well-known", "openid-configuration"]
    {
        if !known_tenant {
            return oauth_error(
                400,
                "invalid_tenant",
                90002,
                &format!("Tenant '{tenant}' not found."),
            );
        }
        return json_response(
            200,
            json!({
                "token_endpoint": format!("{base}{tenant}/oauth2/v2.0/token"),
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "jwks_uri": format!("{base}{tenant}/discovery/v2.0/keys"),
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": format!("{base}{tenant}/v2.0"),
                "authorization_endpoint": format!("{base}{tenant}/oauth2/v2.0/authorize"),
                "device_authorization_endpoint": format!("{base}{tenant}/oauth2/v2.0/devicecode"),
                "end_session_endpoint": format!("{base}{tenant}/oauth2/v2.0/logout"),
                "tenant_region_scope": "NA",
                "cloud_instance_name": "microsoftonline.com",
            }),
        );
    }
    if rest == ["oauth2", "v2.0", "token"] || rest == ["oauth2", "token"] {
        if req.method != "POST" {
            return oauth_error(
                405,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.",
            );
        }
        if !known_tenant {
            return oauth_error(
                400,
                "invalid_request",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            );
        }
        return token(inner, req, tenant);
    }
    json_response(
        404,
        json!({"error": "not_found", "error_description": format!("no such Entra ID endpoint: {}", req.path)}),
    )
}

fn token(inner: &Inner, req: &Req, tenant: &str) -> Resp {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != "client_credentials" {
        return oauth_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let Some(client_id) = form.get("client_id") else {
        return oauth_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(app) = inner.app(client_id) else {
        return oauth_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    };
    if let Some(secret) = form.get("client_secret") {
        if app.secret.as_deref() != Some(secret.as_str()) {
            return oauth_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
            );
        }
    } else if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return oauth_error(
                400,
                "invalid_request",
                90014,
                "The request body must contain the following parameter: 'client_assertion_type'.",
            );
        }
        match inner.signer.validate(assertion, &[FEDERATED_AUDIENCE]) {
            Ok(_) => {}
            Err(TokenError::Expired { .. }) => {
                return oauth_error(
                    400,
                    "invalid_client",
                    700024,
                    "Client assertion is not within its valid time range.",
                );
            }
            Err(TokenError::WrongAudience { aud }) => {
                return oauth_error(
                    400,
                    "invalid_client",
                    700212,
                    &format!(
                        "No matching federated identity record found for presented assertion audience '{aud}'."
                    ),
                );
            }
            Err(_) => {
                return oauth_error(
                    401,
                    "invalid_client",
                    700211,
                    "No matching federated identity record found for presented assertion issuer.",
                );
            }
        }
    } else {
        return oauth_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    // v1 endpoint clients send `resource` instead of `scope`.
    let scope = form
        .get("scope")
        .cloned()
        .or_else(|| {
            form.get("resource")
                .map(|r| format!("{}/.default", r.trim_end_matches('/')))
        })
        .unwrap_or_default();
    let Some(resource) = scope
        .split(' ')
        .find(|s| s.ends_with("/.default"))
        .map(|s| s.trim_end_matches("/.default").to_string())
    else {
        return oauth_error(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    };
    let lifetime = inner.config.lock().token_lifetime.as_secs() as i64;
    let claims = access_token_claims(&inner.tenant_id, &resource, &app, lifetime);
    let mut resp = json_response(
        200,
        json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": inner.issue_access_token(&claims),
        }),
    );
    resp.extensions_mut().insert(LogInfo {
        principal: Some(app.client_id.clone()),
        ..Default::default()
    });
    resp
}

/// IMDS-style managed identity endpoint: `GET /metadata/identity/oauth2/token`.
pub(crate) fn managed_identity(inner: &Inner, req: &Req) -> Resp {
    if req
        .header("metadata")
        .map(|v| v.eq_ignore_ascii_case("true"))
        != Some(true)
    {
        return json_response(
            400,
            json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    if req.method != "GET" {
        return json_response(
            405,
            json!({"error": "invalid_request", "error_description": "Only GET is supported"}),
        );
    }
    let Some(resource) = req.query("resource") else {
        return json_response(
            400,
            json!({"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"}),
        );
    };
    let client_id = req
        .query("client_id")
        .unwrap_or_else(|| inner.managed_identity.client_id.clone());
    let app = match inner.app(&client_id) {
        Some(app) if app.secret.is_none() => app,
        _ => {
            return json_response(
                400,
                json!({"error": "invalid_request", "error_description": "Identity not found"}),
            );
        }
    };
    let lifetime = inner.config.lock().token_lifetime.as_secs() as i64;
    let claims = access_token_claims(&inner.tenant_id, &resource, &app, lifetime);
    let iat = claims["iat"].as_i64().unwrap_or_default();
    let mut resp = json_response(
        200,
        json!({
            "access_token": inner.issue_access_token(&claims),
            "client_id": app.client_id,
            "expires_in": lifetime.to_string(),
            "expires_on": (iat + lifetime).to_string(),
            "ext_expires_in": lifetime.to_string(),
            "not_before": iat.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    );
    resp.extensions_mut().insert(LogInfo {
        principal: Some(app.client_id.clone()),
        ..Default::default()
    });
    resp
}
