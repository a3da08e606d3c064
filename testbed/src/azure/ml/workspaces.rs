//! Workspaces (`Workspaces_Get`, `_ListByResourceGroup`, `_ListBySubscription`): hubs,
//! projects (with `hubResourceId`) and plain workspaces, seeded through the admin API; each
//! renders the ARM JSON Azure returns (workspace id, discovery URL, associated resources).
use chrono::Utc;
use serde_json::{Value, json};

use super::errors::not_found;
use super::routes::Ctx;
use super::state::{MlWorld, Scope, Workspace, key, provider_prefix};
use crate::azure::server::{Resp, json_response};
use crate::azure::world::{new_etag, timestamp};

/// `Hub`, `Project` or `Default`, spelt as Azure does.
pub(crate) fn canonical_kind(kind: &str) -> &'static str {
    match kind.to_ascii_lowercase().as_str() {
        "hub" => "Hub",
        "project" => "Project",
        _ => "Default",
    }
}

/// Inserts (or replaces) a workspace; `hub` = the hub's ARM id for a project. Returns its id.
pub(crate) fn insert(
    w: &mut MlWorld,
    scope: Scope,
    kind: &str,
    hub: Option<&str>,
    tenant: &str,
) -> String {
    let kind = canonical_kind(kind);
    let id = scope.workspace_id();
    let prefix = provider_prefix(&scope.subscription, &scope.resource_group);
    let arm_rg = prefix.trim_end_matches("/providers/Microsoft.MachineLearningServices");
    let short: String = scope
        .workspace
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    let now = timestamp(Utc::now());
    let mut props = json!({
        "friendlyName": scope.workspace,
        "description": format!("{kind} workspace {}", scope.workspace),
        "workspaceId": uuid::Uuid::new_v4().to_string(),
        "provisioningState": "Succeeded",
        "publicNetworkAccess": "Enabled",
        "discoveryUrl": format!("https://{}.api.azureml.ms/discovery", scope.location),
        "mlFlowTrackingUri": format!("azureml://{}.api.azureml.ms/mlflow/v1.0{id}", scope.location),
        "storageAccount": format!("{arm_rg}/providers/Microsoft.Storage/storageAccounts/st{short}"),
        "keyVault": format!("{arm_rg}/providers/Microsoft.KeyVault/vaults/kv{short}"),
        "applicationInsights": format!("{arm_rg}/providers/Microsoft.Insights/components/ai{short}"),
        "tenantId": tenant,
        "hbiWorkspace": false,
        "v1LegacyMode": false,
        "enableDataIsolation": false,
        "storageHnsEnabled": false,
        "privateLinkCount": 0,
    });
    if kind == "Hub" {
        props["workspaceHubConfig"] = json!({"defaultWorkspaceResourceGroup": arm_rg});
        props["associatedWorkspaces"] = json!([]);
    }
    if let Some(hub) = hub {
        props["hubResourceId"] = json!(hub);
        if let Some(h) = w.workspaces.get_mut(&key(hub))
            && let Some(list) = h.body["properties"]["associatedWorkspaces"].as_array_mut()
        {
            list.push(json!(id));
        }
    }
    let body = json!({
        "id": id,
        "name": scope.workspace,
        "type": "Microsoft.MachineLearningServices/workspaces",
        "location": scope.location,
        "kind": kind,
        "etag": new_etag(),
        "tags": {},
        "sku": {"name": "Basic", "tier": "Basic"},
        "identity": {"type": "SystemAssigned", "principalId": uuid::Uuid::new_v4().to_string(), "tenantId": tenant},
        "properties": props,
        "systemData": {
            "createdBy": "testbed", "createdByType": "Application", "createdAt": now,
            "lastModifiedBy": "testbed", "lastModifiedByType": "Application", "lastModifiedAt": now,
        },
    });
    w.workspaces.insert(
        key(&id),
        Workspace {
            scope,
            kind: kind.to_string(),
            body,
        },
    );
    id
}

pub(crate) fn get(ctx: &Ctx, sub: &str, rg: &str, name: &str) -> Resp {
    let w = ctx.inner.ml.world.lock();
    match w.workspace(sub, rg, name) {
        Some(ws) => json_response(200, ws.body.clone()),
        None => not_found(rg, &format!("workspaces/{name}")),
    }
}

pub(crate) fn list(ctx: &Ctx, sub: &str, rg: Option<&str>) -> Resp {
    let w = ctx.inner.ml.world.lock();
    let value: Vec<Value> = w
        .workspaces
        .values()
        .filter(|ws| ws.scope.subscription.eq_ignore_ascii_case(sub))
        .filter(|ws| rg.is_none_or(|rg| ws.scope.resource_group.eq_ignore_ascii_case(rg)))
        .map(|ws| ws.body.clone())
        .collect();
    json_response(200, json!({"value": value}))
}
