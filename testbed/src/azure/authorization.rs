//! `Microsoft.Authorization` on ARM, enough for keyless access: built-in role definitions
//! (GET one, list with `$filter=roleName eq '...'`) and role assignments at any scope (PUT,
//! GET, DELETE, list for a scope with `$filter=principalId eq '...'` or `atScope()`), with
//! Azure's errors (InvalidRoleAssignmentId, RoleDefinitionDoesNotExist, PrincipalNotFound,
//! RoleAssignmentExists, RoleAssignmentUpdateNotPermitted). The data plane asks
//! `grants_data_access` whether a principal holds an inference role on an account (an
//! assignment at the account or at a scope above it). There is no Authorization spec in the
//! specs folder: azure-mgmt-authorization is the judge of these shapes.
use chrono::Utc;
use serde_json::{Value, json};

use super::Inner;
use super::arm::{arm_error, invalid_api_version};
use super::server::{Req, Resp, empty_response, json_response};
use super::world::timestamp;

/// api-versions of Microsoft.Authorization the emulator answers.
const API_VERSIONS: &[&str] = &[
    "2015-07-01",
    "2018-01-01-preview",
    "2020-04-01-preview",
    "2022-04-01",
];

/// Built-in roles: (id, name, description, data actions).
pub const ROLES: &[(&str, &str, &str, &[&str])] = &[
    (
        "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
        "Cognitive Services OpenAI User",
        "Read access to view files, models, deployments. The ability to create completion and embedding calls.",
        &[
            "Microsoft.CognitiveServices/accounts/OpenAI/*/read",
            "Microsoft.CognitiveServices/accounts/OpenAI/deployments/*/action",
        ],
    ),
    (
        "a001fd3d-188f-4b5d-821b-7da978bf7442",
        "Cognitive Services OpenAI Contributor",
        "Full access including the ability to fine-tune, deploy and generate text.",
        &["Microsoft.CognitiveServices/accounts/OpenAI/*"],
    ),
    (
        "a97b65f3-24c7-4388-baec-2e87135dc908",
        "Cognitive Services User",
        "Lets you read and list keys of Cognitive Services.",
        &["Microsoft.CognitiveServices/*"],
    ),
    (
        "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68",
        "Cognitive Services Contributor",
        "Lets you create, read, update, delete and manage keys of Cognitive Services.",
        &[],
    ),
    (
        "53ca6127-db72-4b80-b1b0-d745d6d5456d",
        "Azure AI User",
        "Grants reader access to AI projects, reader access to AI accounts, and data actions for an AI project.",
        &["Microsoft.CognitiveServices/*"],
    ),
    (
        "4633458b-17de-408a-b874-0445c86b69e6",
        "Key Vault Secrets User",
        "Read secret contents.",
        &[
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ],
    ),
    (
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        "Key Vault Secrets Officer",
        "Perform any action on the secrets of a key vault.",
        &["Microsoft.KeyVault/vaults/secrets/*"],
    ),
];

/// Roles whose data actions cover OpenAI inference (chat completions, embeddings).
const INFERENCE_ROLES: &[&str] = &[
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
    "a001fd3d-188f-4b5d-821b-7da978bf7442",
    "a97b65f3-24c7-4388-baec-2e87135dc908",
    "53ca6127-db72-4b80-b1b0-d745d6d5456d",
];

/// Whether a path is an Authorization resource (`{scope}/providers/Microsoft.Authorization/...`).
pub(crate) fn owns(lower: &[String]) -> bool {
    split(lower).is_some()
}

/// (index of the `providers` segment before Microsoft.Authorization).
fn split(lower: &[String]) -> Option<usize> {
    (0..lower.len().saturating_sub(1))
        .rev()
        .find(|&i| lower[i] == "providers" && lower[i + 1] == "microsoft.authorization")
}

fn norm_scope(scope: &str) -> String {
    format!("/{}", scope.trim_matches('/')).to_ascii_lowercase()
}

/// Whether assignment scope `scope` covers resource `id` (equal, or a parent scope).
fn covers(scope: &str, id: &str) -> bool {
    let (s, i) = (norm_scope(scope), norm_scope(id));
    s == "/" || i == s || i.starts_with(&format!("{s}/"))
}

/// Whether `principal` (object id) holds an inference role on account `account_id`.
pub(crate) fn grants_data_access(inner: &Inner, account_id: &str, principal: &str) -> bool {
    inner.world.lock().role_assignments.values().any(|a| {
        let p = &a["properties"];
        p["principalId"]
            .as_str()
            .is_some_and(|x| x.eq_ignore_ascii_case(principal))
            && p["scope"].as_str().is_some_and(|s| covers(s, account_id))
            && role_of(p["roleDefinitionId"].as_str().unwrap_or_default())
                .is_some_and(|r| INFERENCE_ROLES.contains(&r.0))
    })
}

type Role = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

fn role_of(definition_id: &str) -> Option<&'static Role> {
    let guid = definition_id.rsplit('/').next().unwrap_or_default();
    ROLES.iter().find(|r| r.0.eq_ignore_ascii_case(guid))
}

fn role_definition_json(scope: &str, role: &Role) -> Value {
    json!({
        "id": format!("{}/providers/Microsoft.Authorization/roleDefinitions/{}", scope.trim_end_matches('/'), role.0),
        "name": role.0,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.1,
            "description": role.2,
            "type": "BuiltInRole",
            "permissions": [{"actions": [], "notActions": [], "dataActions": role.3, "notDataActions": []}],
            "assignableScopes": ["/"],
        },
    })
}

/// `eq '...'` value of a `$filter` clause for `field`.
fn filter_value(filter: &str, field: &str) -> Option<String> {
    let lower = filter.to_ascii_lowercase();
    let at = lower.find(&format!("{} eq '", field.to_ascii_lowercase()))?;
    let rest = &filter[at + field.len() + 5..];
    rest.split('\'').next().map(str::to_string)
}

/// Answers `{scope}/providers/Microsoft.Authorization/{roleDefinitions|roleAssignments}[/{name}]`.
pub(crate) fn handle(
    inner: &Inner,
    req: &Req,
    segs: &[String],
    lower: &[String],
    caller_oid: &str,
) -> Resp {
    match req.query("api-version") {
        Some(v) if API_VERSIONS.contains(&v.as_str()) => {}
        Some(v) => return invalid_api_version(&v, API_VERSIONS),
        None => {
            return arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
    }
    let at = split(lower).expect("an Authorization path");
    let scope = format!("/{}", segs[..at].join("/"));
    let rest: Vec<&str> = lower[at + 2..].iter().map(String::as_str).collect();
    let filter = req.query("$filter").unwrap_or_default();
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", ["roledefinitions"]) => {
            let wanted = filter_value(&filter, "roleName");
            let value: Vec<Value> = ROLES
                .iter()
                .filter(|r| wanted.as_ref().is_none_or(|w| r.1.eq_ignore_ascii_case(w)))
                .map(|r| role_definition_json(&scope, r))
                .collect();
            json_response(200, json!({"value": value}))
        }
        ("GET", ["roledefinitions", id]) => match role_of(id) {
            Some(r) => json_response(200, role_definition_json(&scope, r)),
            None => arm_error(
                404,
                "RoleDefinitionDoesNotExist",
                &format!(
                    "The specified role definition with ID '{}' does not exist.",
                    segs[at + 3]
                ),
            ),
        },
        ("GET", ["roleassignments"]) => {
            let principal = filter_value(&filter, "principalId");
            let at_scope = filter.to_ascii_lowercase().contains("atscope()");
            let value: Vec<Value> = inner
                .world
                .lock()
                .role_assignments
                .values()
                .filter(|a| {
                    let s = a["properties"]["scope"].as_str().unwrap_or_default();
                    if at_scope {
                        covers(s, &scope)
                    } else {
                        covers(s, &scope) || covers(&scope, s)
                    }
                })
                .filter(|a| {
                    principal.as_ref().is_none_or(|p| {
                        a["properties"]["principalId"]
                            .as_str()
                            .is_some_and(|x| x.eq_ignore_ascii_case(p))
                    })
                })
                .cloned()
                .collect();
            json_response(200, json!({"value": value}))
        }
        ("GET", ["roleassignments", _]) => {
            let id = assignment_id(&scope, &segs[at + 3]);
            match inner
                .world
                .lock()
                .role_assignments
                .get(&id.to_ascii_lowercase())
            {
                Some(a) => json_response(200, a.clone()),
                None => assignment_not_found(),
            }
        }
        ("PUT", ["roleassignments", _]) => put(inner, req, &scope, &segs[at + 3], caller_oid),
        ("DELETE", ["roleassignments", _]) => {
            let id = assignment_id(&scope, &segs[at + 3]);
            match inner
                .world
                .lock()
                .role_assignments
                .remove(&id.to_ascii_lowercase())
            {
                Some(a) => json_response(200, a),
                None => empty_response(204),
            }
        }
        _ => arm_error(
            404,
            "InvalidResourceType",
            &format!(
                "The resource type '{}' could not be found in the namespace 'Microsoft.Authorization'.",
                rest.first().unwrap_or(&"")
            ),
        ),
    }
}

fn assignment_id(scope: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
        scope.trim_end_matches('/')
    )
}

fn assignment_not_found() -> Resp {
    arm_error(
        404,
        "RoleAssignmentNotFound",
        "The role assignment does not exist.",
    )
}

fn put(inner: &Inner, req: &Req, scope: &str, name: &str, caller_oid: &str) -> Resp {
    if uuid::Uuid::parse_str(name).is_err() {
        return arm_error(
            400,
            "InvalidRoleAssignmentId",
            &format!(
                "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
            ),
        );
    }
    let body = match req.json() {
        Ok(b) if b.is_object() => b,
        _ => {
            return arm_error(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: a JSON object with properties.roleDefinitionId and properties.principalId is required.",
            );
        }
    };
    let props = &body["properties"];
    let (Some(definition), Some(principal)) = (
        props["roleDefinitionId"].as_str(),
        props["principalId"].as_str(),
    ) else {
        return arm_error(
            400,
            "InvalidRequestContent",
            "The request content was invalid: properties.roleDefinitionId and properties.principalId are required.",
        );
    };
    if role_of(definition).is_none() {
        return arm_error(
            400,
            "RoleDefinitionDoesNotExist",
            &format!(
                "The specified role definition with ID '{}' does not exist.",
                definition.rsplit('/').next().unwrap_or(definition)
            ),
        );
    }
    if !inner.knows_principal(principal) {
        return arm_error(
            400,
            "PrincipalNotFound",
            &format!(
                "Principal {} does not exist in the directory {}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
                principal.replace('-', ""),
                inner.tenant_id
            ),
        );
    }
    let id = assignment_id(scope, name);
    let key = id.to_ascii_lowercase();
    let same = |a: &Value| {
        let p = &a["properties"];
        p["principalId"]
            .as_str()
            .is_some_and(|x| x.eq_ignore_ascii_case(principal))
            && p["roleDefinitionId"]
                .as_str()
                .and_then(role_of)
                .map(|r| r.0)
                == role_of(definition).map(|r| r.0)
            && p["scope"]
                .as_str()
                .is_some_and(|s| norm_scope(s) == norm_scope(scope))
    };
    let mut w = inner.world.lock();
    if let Some(existing) = w.role_assignments.get(&key) {
        return if same(existing) {
            json_response(200, existing.clone())
        } else {
            arm_error(
                409,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        };
    }
    if w.role_assignments.values().any(same) {
        return arm_error(
            409,
            "RoleAssignmentExists",
            "The role assignment already exists.",
        );
    }
    let now = timestamp(Utc::now());
    let sub = scope.split('/').nth(2).unwrap_or_default();
    let assignment = json!({
        "id": id,
        "name": name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{}", role_of(definition).map(|r| r.0).unwrap_or_default()),
            "principalId": principal,
            "principalType": props["principalType"].as_str().unwrap_or("ServicePrincipal"),
            "scope": scope,
            "description": props["description"],
            "condition": props["condition"],
            "conditionVersion": props["conditionVersion"],
            "createdOn": now, "updatedOn": now,
            "createdBy": caller_oid, "updatedBy": caller_oid,
        },
    });
    w.role_assignments.insert(key, assignment.clone());
    json_response(201, assignment)
}
