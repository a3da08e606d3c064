//! Key Vault secrets data plane (api-version 2026-04-01): challenge-based bearer auth
//! (401 + `WWW-Authenticate` with authorization and resource), set (new version each time),
//! get latest/by version, list, list versions, update, delete with soft-delete semantics
//! (deleted secrets, recover, purge). One listener per vault.
use std::sync::Arc;

use serde_json::{Value, json};

use super::entra::TokenError;
use super::server::{Req, Resp, empty_response, json_response, with_header};
use super::world::{DeletedSecret, Secret, SecretVersion, Vault};
use super::{Inner, LogInfo, Surface};

pub const API_VERSIONS: &[&str] = &["2026-04-01"];
const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";
const RECOVERABLE_DAYS: i64 = 90;

fn kv_error(status: u16, code: &str, message: &str) -> Resp {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

fn unauthorized(inner: &Inner, message: &str) -> Resp {
    let challenge = format!(
        "Bearer authorization=\"{}{}\", resource=\"https://vault.azure.net\"",
        inner.main_url(),
        inner.tenant_id
    );
    with_header(
        kv_error(401, "Unauthorized", message),
        "www-authenticate",
        &challenge,
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn attributes(v: &SecretVersion) -> Value {
    json!({
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": RECOVERABLE_DAYS,
    })
}

fn bundle(vault: &Vault, name: &str, v: &SecretVersion, with_value: bool) -> Value {
    let mut b = json!({
        "id": format!("{}secrets/{}/{}", vault.uri, name, v.version),
        "attributes": attributes(v),
    });
    if with_value {
        b["value"] = json!(v.value);
    }
    if let Some(ct) = &v.content_type {
        b["contentType"] = json!(ct);
    }
    if let Some(tags) = &v.tags {
        b["tags"] = tags.clone();
    }
    b
}

fn item(id: String, v: &SecretVersion) -> Value {
    let mut b = json!({"id": id, "attributes": attributes(v)});
    if let Some(ct) = &v.content_type {
        b["contentType"] = json!(ct);
    }
    if let Some(tags) = &v.tags {
        b["tags"] = tags.clone();
    }
    b
}

fn deleted_bundle(vault: &Vault, d: &DeletedSecret) -> Value {
    let latest = d.secret.versions.last().expect("a version");
    let mut b = bundle(vault, &d.secret.name, latest, false);
    b["recoveryId"] = json!(format!("{}deletedsecrets/{}", vault.uri, d.secret.name));
    b["deletedDate"] = json!(d.deleted_date);
    b["scheduledPurgeDate"] = json!(d.deleted_date + RECOVERABLE_DAYS * 86400);
    b
}

fn not_found(name: &str) -> Resp {
    kv_error(
        404,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

pub(crate) fn handle(inner: &Arc<Inner>, vault_key: &str, req: &Req) -> Resp {
    let mut resp = handle_inner(inner, vault_key, req);
    let is_write = req.method != "GET";
    let principal = resp
        .extensions()
        .get::<LogInfo>()
        .and_then(|l| l.principal.clone());
    resp.extensions_mut().insert(LogInfo {
        principal,
        account_id: None,
        is_write,
    });
    with_header(resp, "x-ms-keyvault-service-version", "1.9.2000.1")
}

fn handle_inner(inner: &Arc<Inner>, vault_key: &str, req: &Req) -> Resp {
    let Some(token) = req.bearer() else {
        return unauthorized(inner, "AKV10000: Request is missing a Bearer or PoP token.");
    };
    let claims = match inner.signer.validate(&token, &["https://vault.azure.net"]) {
        Ok(c) => c,
        Err(TokenError::Expired { .. }) => {
            return unauthorized(inner, "AKV10022: Invalid token: the token is expired.");
        }
        Err(TokenError::WrongAudience { aud }) => {
            return unauthorized(
                inner,
                &format!(
                    "AKV10022: Invalid audience. Expected https://vault.azure.net, found: {aud}."
                ),
            );
        }
        Err(_) => return unauthorized(inner, "AKV10032: Invalid issuer or signature."),
    };
    let principal = claims["appid"].as_str().map(str::to_string);
    let mut resp = route(inner, vault_key, req);
    resp.extensions_mut().insert(LogInfo {
        principal,
        ..Default::default()
    });
    resp
}

fn route(inner: &Arc<Inner>, vault_key: &str, req: &Req) -> Resp {
    match req.query("api-version") {
        None => {
            return kv_error(
                400,
                "BadParameter",
                "The request URI contains an invalid or missing api-version.",
            );
        }
        Some(v) if !API_VERSIONS.contains(&v.as_str()) => {
            return kv_error(
                400,
                "BadParameter",
                &format!(
                    "The specified version ({v}) is not recognized. Consider using the latest supported version ({}).",
                    API_VERSIONS[0]
                ),
            );
        }
        _ => {}
    }
    let path = req.path.trim_start_matches('/');
    let segs: Vec<&str> = path.split('/').collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    if matches!(m, "PUT" | "PATCH" | "POST")
        && let Some(r) = inner.check_request(Surface::KeyVault, req)
    {
        return r;
    }
    let mut world = inner.world.lock();
    let Some(vault) = world.vaults.get_mut(vault_key) else {
        return kv_error(404, "VaultNotFound", "The vault was not found.");
    };
    match (m, l.as_slice()) {
        ("GET", ["secrets"] | ["secrets", ""]) => {
            let value: Vec<Value> = vault
                .secrets
                .values()
                .filter_map(|s| {
                    s.versions
                        .last()
                        .map(|v| item(format!("{}secrets/{}", vault.uri, s.name), v))
                })
                .collect();
            json_response(200, json!({"value": value}))
        }
        ("PUT", ["secrets", _]) => set_secret(vault, segs[1], req),
        ("GET", ["secrets", _, "versions"]) => match vault.secrets.get(l[1]) {
            Some(s) => {
                let value: Vec<Value> = s
                    .versions
                    .iter()
                    .map(|v| item(format!("{}secrets/{}/{}", vault.uri, s.name, v.version), v))
                    .collect();
                json_response(200, json!({"value": value}))
            }
            None => not_found(segs[1]),
        },
        ("GET", ["secrets", _] | ["secrets", _, _]) => {
            let version = l.get(2).copied().unwrap_or("");
            let Some(s) = vault.secrets.get(l[1]) else {
                return not_found(segs[1]);
            };
            let v = if version.is_empty() {
                s.versions.last()
            } else {
                s.versions.iter().find(|v| v.version == version)
            };
            match v {
                Some(v) if v.enabled => json_response(200, bundle(vault, &s.name, v, true)),
                Some(_) => kv_error(
                    403,
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                ),
                None => kv_error(
                    404,
                    "SecretNotFound",
                    &format!(
                        "A secret with (name/id) {}/{} was not found in this key vault.",
                        segs[1], version
                    ),
                ),
            }
        }
        ("PATCH", ["secrets", _, _]) => {
            let body = req.json().unwrap_or(Value::Null);
            let Some(s) = vault.secrets.get_mut(l[1]) else {
                return not_found(segs[1]);
            };
            let version = l[2];
            let idx = if version.is_empty() {
                s.versions.len().checked_sub(1)
            } else {
                s.versions.iter().position(|v| v.version == version)
            };
            let Some(idx) = idx else {
                return not_found(segs[1]);
            };
            let v = &mut s.versions[idx];
            if let Some(ct) = body["contentType"].as_str() {
                v.content_type = Some(ct.to_string());
            }
            if body.get("tags").is_some_and(Value::is_object) {
                v.tags = Some(body["tags"].clone());
            }
            if let Some(e) = body["attributes"]["enabled"].as_bool() {
                v.enabled = e;
            }
            v.updated = now();
            let (name, v) = (s.name.clone(), v.clone());
            json_response(200, bundle(vault, &name, &v, false))
        }
        ("DELETE", ["secrets", _]) => {
            let Some(s) = vault.secrets.remove(l[1]) else {
                return not_found(segs[1]);
            };
            let d = DeletedSecret {
                secret: s,
                deleted_date: now(),
            };
            let body = deleted_bundle(vault, &d);
            vault.deleted.insert(l[1].to_string(), d);
            json_response(200, body)
        }
        ("GET", ["deletedsecrets"]) => {
            let value: Vec<Value> = vault
                .deleted
                .values()
                .map(|d| {
                    let mut b = deleted_bundle(vault, d);
                    b["id"] = json!(format!("{}secrets/{}", vault.uri, d.secret.name));
                    b
                })
                .collect();
            json_response(200, json!({"value": value}))
        }
        ("GET", ["deletedsecrets", _]) => match vault.deleted.get(l[1]) {
            Some(d) => json_response(200, deleted_bundle(vault, d)),
            None => kv_error(
                404,
                "SecretNotFound",
                &format!("Deleted Secret not found: {}", segs[1]),
            ),
        },
        ("DELETE", ["deletedsecrets", _]) => match vault.deleted.remove(l[1]) {
            Some(_) => empty_response(204),
            None => kv_error(
                404,
                "SecretNotFound",
                &format!("Deleted Secret not found: {}", segs[1]),
            ),
        },
        ("POST", ["deletedsecrets", _, "recover"]) => match vault.deleted.remove(l[1]) {
            Some(d) => {
                let latest = d.secret.versions.last().expect("a version").clone();
                let body = bundle(vault, &d.secret.name, &latest, false);
                vault.secrets.insert(l[1].to_string(), d.secret);
                json_response(200, body)
            }
            None => kv_error(
                404,
                "SecretNotFound",
                &format!("Deleted Secret not found: {}", segs[1]),
            ),
        },
        _ => kv_error(
            404,
            "NotFound",
            &format!("The requested resource {} was not found.", req.path),
        ),
    }
}

fn set_secret(vault: &mut Vault, name: &str, req: &Req) -> Resp {
    let body = match req.json() {
        Ok(b) if b.is_object() => b,
        _ => return kv_error(400, "BadParameter", "The request body is not valid JSON."),
    };
    let re = regex::Regex::new("^[0-9a-zA-Z-]{1,127}$").expect("regex");
    if !re.is_match(name) {
        return kv_error(
            400,
            "BadParameter",
            &format!("The request URI contains an invalid name: {name}"),
        );
    }
    let Some(value) = body["value"].as_str() else {
        return kv_error(400, "BadParameter", "Property 'value' is required.");
    };
    let key = name.to_ascii_lowercase();
    if vault.deleted.contains_key(&key) {
        return kv_error(
            409,
            "Conflict",
            &format!(
                "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
            ),
        );
    }
    let t = now();
    let v = SecretVersion {
        version: uuid::Uuid::new_v4().simple().to_string(),
        value: value.to_string(),
        content_type: body["contentType"].as_str().map(str::to_string),
        tags: body.get("tags").filter(|t| t.is_object()).cloned(),
        enabled: body["attributes"]["enabled"].as_bool().unwrap_or(true),
        created: t,
        updated: t,
    };
    let s = vault.secrets.entry(key).or_insert_with(|| Secret {
        name: name.to_string(),
        versions: Vec::new(),
    });
    s.versions.push(v.clone());
    let name = s.name.clone();
    json_response(200, bundle(vault, &name, &v, true))
}
