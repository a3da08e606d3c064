//! Admin HTTP routes (plain HTTP on loopback) so the `testbed` binary can be driven from
//! other processes: faults, request log, out-of-band deployment edits, quotas, catalogs,
//! provisioning delay, list page size, key rotation and contract violations. JSON in, JSON out.
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::server::{Req, Resp, empty_response, json_response};
use super::{CatalogModel, Fault, FaultAction, Inner, Surface};

fn bad(msg: &str) -> Resp {
    json_response(400, json!({"error": msg}))
}

fn parse_surface(s: &str) -> Option<Surface> {
    Some(match s.to_ascii_lowercase().as_str() {
        "any" | "" => Surface::Any,
        "token" => Surface::Token,
        "managedidentity" | "managed_identity" => Surface::ManagedIdentity,
        "arm" => Surface::Arm,
        "keyvault" | "key_vault" => Surface::KeyVault,
        "dataplane" | "data_plane" => Surface::DataPlane,
        _ => return None,
    })
}

/// Parses `{"surface","method","path_contains","count","action": {"error": {"status","code",
/// "message","retry_after"}} | {"delay_ms": N} | "drop"}`.
fn parse_fault(v: &Value) -> Result<Fault, String> {
    let surface = parse_surface(v["surface"].as_str().unwrap_or("any")).ok_or("unknown surface")?;
    let method = match v["method"].as_str() {
        Some(m) => Some(
            http::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let action = &v["action"];
    let action = if action == "drop" {
        FaultAction::Drop
    } else if let Some(ms) = action["delay_ms"].as_u64() {
        FaultAction::Delay(Duration::from_millis(ms))
    } else if action["error"].is_object() {
        let e = &action["error"];
        FaultAction::Error {
            status: e["status"].as_u64().ok_or("error.status required")? as u16,
            code: e["code"]
                .as_str()
                .unwrap_or("InternalServerError")
                .to_string(),
            message: e["message"]
                .as_str()
                .unwrap_or("Injected fault.")
                .to_string(),
            retry_after: e["retry_after"].as_u64(),
        }
    } else {
        return Err("action must be \"drop\", {\"delay_ms\": N} or {\"error\": {...}}".into());
    };
    Ok(Fault {
        surface,
        method,
        path_contains: v["path_contains"].as_str().map(str::to_string),
        count: v["count"].as_u64().unwrap_or(1) as usize,
        action,
    })
}

pub(crate) fn handle(inner: &Arc<Inner>, req: &Req) -> Resp {
    let body = req.json().unwrap_or(Value::Null);
    let account = req
        .query("account_id")
        .unwrap_or_else(|| inner.default_account());
    match (req.method.as_str(), req.path.trim_end_matches('/')) {
        ("GET", "" | "/") => json_response(
            200,
            json!({"routes": [
                "POST /list-page-size",
                "GET /log", "DELETE /log", "POST /faults", "DELETE /faults",
                "GET|PUT|DELETE /deployment?account_id=&name=", "PATCH /deployment?account_id=&name= (JSON merge)",
                "POST /quota", "PUT /catalog?account_id=", "POST /provisioning-delay", "POST /regenerate-key?account_id=&key=key1|key2",
                "POST /fail-operations", "GET /state", "GET /ml (Machine Learning routes)",
            ]}),
        ),
        (_, p) if super::controls::owns(p) => super::controls::handle(inner, req),
        ("GET", "/log") => {
            let log = inner.log.lock();
            let start = log.first().map(|r| r.started);
            let entries: Vec<Value> = log
                .iter()
                .map(|r| json!({
                    "surface": format!("{:?}", r.surface),
                    "method": r.method, "path": r.path, "query": r.query, "status": r.status,
                    "principal": r.principal, "account_id": r.account_id, "is_write": r.is_write,
                    "started_ms": start.map(|s| r.started.duration_since(s).as_millis() as u64),
                    "duration_ms": r.finished.duration_since(r.started).as_millis() as u64,
                }))
                .collect();
            json_response(200, Value::Array(entries))
        }
        ("DELETE", "/log") => {
            inner.log.lock().clear();
            empty_response(204)
        }
        ("POST", "/faults") => match parse_fault(&body) {
            Ok(f) => {
                inner.faults.lock().push(f);
                empty_response(204)
            }
            Err(e) => bad(&e),
        },
        ("DELETE", "/faults") => {
            inner.faults.lock().clear();
            empty_response(204)
        }
        (m, "/deployment") => {
            let Some(name) = req.query("name") else {
                return bad("name required");
            };
            let mut w = inner.world.lock();
            w.settle();
            match m {
                "GET" => match w
                    .account(&account)
                    .and_then(|a| a.deployments.get(&name.to_ascii_lowercase()))
                {
                    Some(d) => json_response(200, d.body.clone()),
                    None => json_response(404, json!({"error": "not found"})),
                },
                "PUT" => {
                    w.put_out_of_band(&account, &name, body);
                    empty_response(204)
                }
                "PATCH" => {
                    if let Some(d) = w
                        .account_mut(&account)
                        .and_then(|a| a.deployments.get_mut(&name.to_ascii_lowercase()))
                    {
                        json_patch::merge(&mut d.body, &body);
                        empty_response(204)
                    } else {
                        json_response(404, json!({"error": "not found"}))
                    }
                }
                "DELETE" => {
                    if let Some(a) = w.account_mut(&account) {
                        a.deployments.remove(&name.to_ascii_lowercase());
                    }
                    empty_response(204)
                }
                _ => bad("method"),
            }
        }
        ("POST", "/quota") => {
            let (Some(sub), Some(loc), Some(usage), Some(limit)) = (
                body["subscription"].as_str(),
                body["location"].as_str(),
                body["usage_name"].as_str(),
                body["limit"].as_u64(),
            ) else {
                return bad("subscription, location, usage_name, limit required");
            };
            inner
                .world
                .lock()
                .quotas
                .insert(super::world::quota_key(sub, loc, usage), limit as u32);
            empty_response(204)
        }
        ("PUT", "/catalog") => match serde_json::from_value::<Vec<CatalogModel>>(body) {
            Ok(models) => {
                if let Some(a) = inner.world.lock().account_mut(&account) {
                    a.catalog = models;
                }
                empty_response(204)
            }
            Err(e) => bad(&e.to_string()),
        },
        ("POST", "/list-page-size") => {
            inner.config.lock().list_page_size = body["size"].as_u64().unwrap_or(0) as usize;
            empty_response(204)
        }
        ("POST", "/provisioning-delay") => {
            inner.config.lock().provisioning_delay =
                Duration::from_millis(body["ms"].as_u64().unwrap_or(0));
            empty_response(204)
        }
        ("POST", "/fail-operations") => {
            let n = body["count"].as_u64().unwrap_or(1);
            let code = body["code"]
                .as_str()
                .unwrap_or("InternalServerError")
                .to_string();
            let message = body["message"]
                .as_str()
                .unwrap_or("The operation failed.")
                .to_string();
            let mut w = inner.world.lock();
            for _ in 0..n {
                w.fail_next.push_back((code.clone(), message.clone()));
            }
            empty_response(204)
        }
        ("POST", "/regenerate-key") => {
            let key1 = req
                .query("key")
                .is_none_or(|k| k.eq_ignore_ascii_case("key1"));
            if let Some(a) = inner.world.lock().account_mut(&account) {
                a.regenerate(key1);
            }
            empty_response(204)
        }
        ("GET", "/state") => {
            let w = inner.world.lock();
            json_response(
                200,
                json!({
                    "max_concurrent_writes_per_account": w.max_concurrent,
                    "contract_loaded": inner.contract.is_some(),
                    "contract_violations": *inner.violations.lock(),
                }),
            )
        }
        (_, p) if p == "/ml" || p.starts_with("/ml/") => super::ml::admin::handle(inner, req),
        _ => json_response(
            404,
            json!({"error": format!("no admin route {} {}", req.method, req.path)}),
        ),
    }
}
