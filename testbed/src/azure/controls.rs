//! Out-of-band controls of the Cognitive Services extensions (issues 11, 13, 14), as
//! `AzureEmulator` methods and as admin routes for other processes: identities of app teams
//! (client secret, workload identity or managed identity), role assignments, the "fail this
//! deployment" switch of the data plane, per-deployment request counters, and the deployment
//! that carries every property a write must keep.
use serde_json::{Value, json};

use super::dataplane::Failure;
use super::entra::App;
use super::server::{Req, Resp, empty_response, json_response};
use super::{AzureEmulator, Inner, held_properties_body};

/// An identity registered in the emulated tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub client_id: String,
    /// The principal (object) id that role assignments name.
    pub object_id: String,
    /// None for a managed identity (tokens from the IMDS-style endpoint only).
    pub client_secret: Option<String>,
}

impl Inner {
    /// Whether `object_id` is a principal of the tenant.
    pub(crate) fn knows_principal(&self, object_id: &str) -> bool {
        self.apps
            .lock()
            .values()
            .any(|a| a.object_id.eq_ignore_ascii_case(object_id))
    }

    fn register(&self, managed: bool) -> Identity {
        let app = App {
            client_id: uuid::Uuid::new_v4().to_string(),
            secret: (!managed).then(super::random_secret),
            object_id: uuid::Uuid::new_v4().to_string(),
        };
        self.apps
            .lock()
            .insert(app.client_id.to_ascii_lowercase(), app.clone());
        Identity {
            client_id: app.client_id,
            object_id: app.object_id,
            client_secret: app.secret,
        }
    }

    fn set_failure(&self, account_id: &str, name: &str, failure: Option<Failure>) -> bool {
        let mut w = self.world.lock();
        let Some(acc) = w.account_mut(account_id) else {
            return false;
        };
        acc.serving
            .entry(name.to_ascii_lowercase())
            .or_default()
            .failure = failure;
        true
    }

    fn requests(&self, account_id: &str, name: &str) -> u64 {
        self.world
            .lock()
            .account(account_id)
            .and_then(|a| a.serving.get(&name.to_ascii_lowercase()))
            .map_or(0, |s| s.requests)
    }

    /// An assignment made out of band (as a platform admin would in the portal).
    fn assign(&self, scope: &str, principal: &str, role_id: &str) -> String {
        let name = uuid::Uuid::new_v4().to_string();
        let id = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
            scope.trim_end_matches('/')
        );
        let sub = scope.split('/').nth(2).unwrap_or_default();
        let assignment = json!({
            "id": id, "name": name, "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"),
                "principalId": principal, "principalType": "ServicePrincipal", "scope": scope,
            },
        });
        self.world
            .lock()
            .role_assignments
            .insert(id.to_ascii_lowercase(), assignment);
        id
    }
}

impl AzureEmulator {
    /// Registers an application (an app team's identity) with a client secret; it can also
    /// sign in as a workload identity with the federated token file.
    pub fn add_identity(&self) -> Identity {
        self.inner.register(false)
    }

    /// Registers a user-assigned managed identity (tokens from the IMDS-style endpoint).
    pub fn add_managed_identity(&self) -> Identity {
        self.inner.register(true)
    }

    /// Assigns a built-in role (`role_id`, e.g. `5e0bd9bd-7b93-4f28-af87-19fc36ad61bd` for
    /// "Cognitive Services OpenAI User") to a principal at a scope, out of band; returns its id.
    pub fn assign_role(&self, scope: &str, principal_object_id: &str, role_id: &str) -> String {
        self.inner.assign(scope, principal_object_id, role_id)
    }

    /// Every role assignment, as ARM returns it.
    pub fn role_assignments(&self) -> Vec<Value> {
        self.inner
            .world
            .lock()
            .role_assignments
            .values()
            .cloned()
            .collect()
    }

    /// From now on the data plane answers every request to this deployment with this error.
    pub fn fail_deployment(
        &self,
        account_id: &str,
        name: &str,
        status: u16,
        code: &str,
        message: &str,
    ) {
        let failure = Failure {
            status,
            code: code.to_string(),
            message: message.to_string(),
        };
        self.inner.set_failure(account_id, name, Some(failure));
    }

    /// Ends `fail_deployment`.
    pub fn clear_deployment_failure(&self, account_id: &str, name: &str) {
        self.inner.set_failure(account_id, name, None);
    }

    /// Data-plane requests that reached this deployment (authenticated ones).
    pub fn data_plane_requests(&self, account_id: &str, name: &str) -> u64 {
        self.inner.requests(account_id, name)
    }

    /// Puts `held_properties_body(account_id)` (every property a write must keep) out of band;
    /// returns the body put.
    pub fn put_deployment_with_held_properties(&self, account_id: &str, name: &str) -> Value {
        let body = held_properties_body(account_id);
        self.put_deployment_out_of_band(account_id, name, body.clone());
        body
    }
}

const ROUTES: &[&str] = &[
    "/identities",
    "/deployment-failure",
    "/deployment-requests",
    "/role-assignments",
];

/// Whether an admin path is one of these controls.
pub(crate) fn owns(path: &str) -> bool {
    ROUTES.contains(&path)
}

fn bad(msg: &str) -> Resp {
    json_response(400, json!({"error": msg}))
}

/// `POST /identities {"managed": bool}` → the identity; `POST|DELETE /deployment-failure
/// ?account_id=&name=` with `{"status","code","message"}`; `GET /deployment-requests
/// ?account_id=&name=` → `{"requests": n}`; `GET /role-assignments`; `POST /role-assignments
/// {"scope","principal_id","role_id"}` → `{"id"}`.
pub(crate) fn handle(inner: &Inner, req: &Req) -> Resp {
    let body = req.json().unwrap_or(Value::Null);
    let account = req
        .query("account_id")
        .unwrap_or_else(|| inner.default_account());
    let name = req.query("name");
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/identities") => {
            let id = inner.register(body["managed"] == json!(true));
            json_response(
                200,
                json!({"client_id": id.client_id, "object_id": id.object_id, "client_secret": id.client_secret}),
            )
        }
        (m @ ("POST" | "DELETE"), "/deployment-failure") => {
            let Some(name) = name else {
                return bad("name required");
            };
            let failure = (m == "POST").then(|| Failure {
                status: body["status"].as_u64().unwrap_or(500) as u16,
                code: body["code"]
                    .as_str()
                    .unwrap_or("InternalServerError")
                    .to_string(),
                message: body["message"]
                    .as_str()
                    .unwrap_or("The server had an error while processing your request.")
                    .to_string(),
            });
            if inner.set_failure(&account, &name, failure) {
                empty_response(204)
            } else {
                json_response(404, json!({"error": "no such account"}))
            }
        }
        ("GET", "/deployment-requests") => match name {
            Some(name) => json_response(200, json!({"requests": inner.requests(&account, &name)})),
            None => bad("name required"),
        },
        ("GET", "/role-assignments") => {
            let all: Vec<Value> = inner
                .world
                .lock()
                .role_assignments
                .values()
                .cloned()
                .collect();
            json_response(200, Value::Array(all))
        }
        ("POST", "/role-assignments") => {
            let (Some(scope), Some(principal), Some(role)) = (
                body["scope"].as_str(),
                body["principal_id"].as_str(),
                body["role_id"].as_str(),
            ) else {
                return bad("scope, principal_id and role_id required");
            };
            json_response(200, json!({"id": inner.assign(scope, principal, role)}))
        }
        _ => json_response(
            404,
            json!({"error": format!("no admin route {} {}", req.method, req.path)}),
        ),
    }
}
