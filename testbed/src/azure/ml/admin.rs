//! Admin HTTP routes of the ML emulator (under `/ml/` on the plain-HTTP admin listener), so
//! other processes can drive it: seed workspaces, set VM quota, read and replace the registry
//! catalogue, read the scoring requests each deployment served, inspect state, and edit
//! endpoints and deployments out of band. JSON in, JSON out.
use std::sync::Arc;

use serde_json::{Value, json};

use super::registry::RegistryModel;
use super::state::{Scope, key, quota_key, workspace_id};
use super::workspaces;
use crate::azure::Inner;
use crate::azure::server::{Req, Resp, empty_response, json_response};

const ROUTES: &[&str] = &[
    "GET /ml/state",
    "POST /ml/workspaces {subscription?, resource_group?, name, location?, kind: Hub|Project|Default, hub?}",
    "POST /ml/vm-quota {subscription?, location, family, limit}",
    "GET|PUT /ml/catalog [RegistryModel]",
    "GET|DELETE /ml/served?endpoint_id=",
    "GET|PATCH /ml/endpoint?id= (JSON merge)",
    "GET|PATCH|DELETE /ml/deployment?endpoint_id=&name= (JSON merge)",
];

fn bad(msg: &str) -> Resp {
    json_response(400, json!({"error": msg}))
}

fn absent() -> Resp {
    json_response(404, json!({"error": "not found"}))
}

pub(crate) fn handle(inner: &Arc<Inner>, req: &Req) -> Resp {
    let body = req.json().unwrap_or(Value::Null);
    let sub = body["subscription"]
        .as_str()
        .unwrap_or(&inner.subscription_id)
        .to_string();
    let mut w = inner.ml.world.lock();
    w.settle();
    match (req.method.as_str(), req.path.trim_end_matches('/')) {
        ("GET", "/ml") => json_response(200, json!({"routes": ROUTES})),
        ("GET", "/ml/state") => {
            let endpoints: Vec<Value> = w
                .endpoints
                .values()
                .map(|e| {
                    let deployments: Vec<Value> = e
                        .deployments
                        .values()
                        .map(|d| json!({"name": d.body["name"], "provisioningState": d.state(), "instanceType": d.instance_type(), "instanceCount": d.instance_count()}))
                        .collect();
                    json!({"id": e.id, "provisioningState": e.state(), "authMode": e.auth_mode(), "traffic": e.body["properties"]["traffic"], "deployments": deployments})
                })
                .collect();
            let serverless: Vec<Value> = w
                .serverless
                .values()
                .map(|s| json!({"id": s.body["id"], "provisioningState": s.body["properties"]["provisioningState"], "modelId": s.body["properties"]["modelSettings"]["modelId"]}))
                .collect();
            json_response(
                200,
                json!({
                    "workspaces": w.workspaces.values().map(|ws| ws.body["id"].clone()).collect::<Vec<_>>(),
                    "endpoints": endpoints,
                    "serverless_endpoints": serverless,
                    "max_concurrent_writes_per_endpoint": w.max_concurrent,
                    "contract_loaded": inner.ml.contract(&inner.violations).is_some(),
                }),
            )
        }
        ("POST", "/ml/workspaces") => {
            let Some(name) = body["name"].as_str() else {
                return bad("name required");
            };
            let rg = body["resource_group"]
                .as_str()
                .unwrap_or(&inner.resource_group)
                .to_string();
            let hub = body["hub"].as_str().map(|h| {
                if h.starts_with('/') {
                    h.to_string()
                } else {
                    workspace_id(&sub, &rg, h)
                }
            });
            let scope = Scope {
                subscription: sub.clone(),
                resource_group: rg,
                workspace: name.to_string(),
                location: body["location"].as_str().unwrap_or("eastus").to_string(),
            };
            let kind = body["kind"].as_str().unwrap_or("Default");
            let id = workspaces::insert(&mut w, scope, kind, hub.as_deref(), &inner.tenant_id);
            json_response(200, json!({"id": id}))
        }
        ("POST", "/ml/vm-quota") => {
            let (Some(loc), Some(family), Some(limit)) = (
                body["location"].as_str(),
                body["family"].as_str(),
                body["limit"].as_u64(),
            ) else {
                return bad("location, family, limit required");
            };
            w.vm_quota
                .insert(quota_key(&sub, loc, family), limit as u32);
            empty_response(204)
        }
        ("GET", "/ml/catalog") => json_response(200, json!(w.catalog)),
        ("PUT", "/ml/catalog") => match serde_json::from_value::<Vec<RegistryModel>>(body) {
            Ok(models) => {
                w.catalog = models;
                empty_response(204)
            }
            Err(e) => bad(&e.to_string()),
        },
        ("GET", "/ml/served") => {
            let wanted = req.query("endpoint_id").map(|e| key(&e));
            let start = w.served.first().map(|s| s.at);
            let list: Vec<Value> = w
                .served
                .iter()
                .filter(|s| wanted.as_ref().is_none_or(|k| key(&s.endpoint) == *k))
                .map(|s| {
                    json!({
                        "endpoint_id": s.endpoint, "deployment": s.deployment, "status": s.status,
                        "at_ms": start.map(|t| s.at.duration_since(t).as_millis() as u64),
                    })
                })
                .collect();
            json_response(200, Value::Array(list))
        }
        ("DELETE", "/ml/served") => {
            w.served.clear();
            empty_response(204)
        }
        (m, "/ml/endpoint") => {
            let Some(e) = req
                .query("id")
                .and_then(|id| w.endpoints.get_mut(&key(&id)))
            else {
                return absent();
            };
            match m {
                "GET" => json_response(200, e.body.clone()),
                "PATCH" => {
                    json_patch::merge(&mut e.body, &body);
                    empty_response(204)
                }
                _ => bad("method"),
            }
        }
        (m, "/ml/deployment") => {
            let (Some(eid), Some(name)) = (req.query("endpoint_id"), req.query("name")) else {
                return bad("endpoint_id and name required");
            };
            let Some(e) = w.endpoints.get_mut(&key(&eid)) else {
                return absent();
            };
            let lname = name.to_ascii_lowercase();
            match m {
                "DELETE" => {
                    e.deployments.remove(&lname);
                    empty_response(204)
                }
                "GET" | "PATCH" => {
                    let Some(d) = e.deployments.get_mut(&lname) else {
                        return absent();
                    };
                    if m == "PATCH" {
                        json_patch::merge(&mut d.body, &body);
                        return empty_response(204);
                    }
                    json_response(200, d.body.clone())
                }
                _ => bad("method"),
            }
        }
        _ => json_response(
            404,
            json!({"error": format!("no admin route {} {}", req.method, req.path), "routes": ROUTES}),
        ),
    }
}
