//! Keyless access on the Azure emulator (issue 14): Microsoft.Authorization role assignments
//! (PUT/GET/list/DELETE and Azure's errors), the data plane accepting Entra tokens only of
//! principals holding an inference role on the account (401 PermissionDenied otherwise), and
//! `disableLocalAuth` turning API keys away (403 AuthenticationTypeDisabled).
mod azure_common;

use azure_common::*;
use serde_json::{Value, json};

const CONTRIBUTOR: &str = "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68";
const AUTHZ: &str = "2022-04-01";

fn assignment_path(scope: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version={AUTHZ}",
        scope.trim_start_matches('/')
    )
}

fn assignment(az: &Az, role: &str, principal: &str) -> Value {
    json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}", az.env.subscription_id),
        "principalId": principal,
        "principalType": "ServicePrincipal",
    }})
}

async fn chat_with_token(az: &Az, token: &str) -> (u16, Value) {
    let r = az
        .http
        .post(format!(
            "{}openai/deployments/chat/chat/completions?api-version=2024-10-21",
            az.env.openai_endpoint
        ))
        .bearer_auth(token)
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn role_assignments_at_account_scope_with_azures_errors() {
    let az = Az::default().await;
    let account = az.emu.default_account_id();
    let app = az.emu.add_identity();
    let name = "0b1d7e5a-2f4c-4a8e-9c3d-000000000001";
    let r = az
        .arm(
            "PUT",
            &assignment_path(&account, name),
            Some(&assignment(&az, OPENAI_USER, &app.object_id)),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["properties"]["scope"], account.as_str());
    assert_eq!(r.body["properties"]["principalId"], app.object_id.as_str());
    assert!(
        r.header("x-ms-ratelimit-remaining-subscription-writes")
            .is_some()
    );
    let again = az
        .arm(
            "PUT",
            &assignment_path(&account, name),
            Some(&assignment(&az, OPENAI_USER, &app.object_id)),
        )
        .await;
    assert_eq!(again.status, 200, "the same PUT again is accepted");
    let errors = [
        (
            "not-a-guid",
            assignment(&az, OPENAI_USER, &app.object_id),
            400,
            "InvalidRoleAssignmentId",
        ),
        (
            "0b1d7e5a-2f4c-4a8e-9c3d-000000000002",
            assignment(&az, "00000000-1111-2222-3333-444444444444", &app.object_id),
            400,
            "RoleDefinitionDoesNotExist",
        ),
        (
            "0b1d7e5a-2f4c-4a8e-9c3d-000000000003",
            assignment(&az, OPENAI_USER, "12345678-0000-0000-0000-000000000000"),
            400,
            "PrincipalNotFound",
        ),
        (
            "0b1d7e5a-2f4c-4a8e-9c3d-000000000004",
            assignment(&az, OPENAI_USER, &app.object_id),
            409,
            "RoleAssignmentExists",
        ),
        (
            name,
            assignment(&az, CONTRIBUTOR, &app.object_id),
            409,
            "RoleAssignmentUpdateNotPermitted",
        ),
    ];
    for (n, body, status, code) in errors {
        let r = az
            .arm("PUT", &assignment_path(&account, n), Some(&body))
            .await;
        assert_eq!((r.status, r.code()), (status, code), "{n}: {:?}", r.body);
    }
    let filter = format!("$filter=principalId%20eq%20'{}'", app.object_id);
    let list = az
        .arm(
            "GET",
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments?api-version={AUTHZ}&{filter}",
                account.trim_start_matches('/')
            ),
            None,
        )
        .await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
    let defs = az
        .arm(
            "GET",
            &format!(
                "subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions?api-version={AUTHZ}&$filter=roleName%20eq%20'Cognitive%20Services%20OpenAI%20User'",
                az.env.subscription_id
            ),
            None,
        )
        .await;
    assert_eq!(defs.body["value"][0]["name"], OPENAI_USER);
    let del = az
        .arm("DELETE", &assignment_path(&account, name), None)
        .await;
    assert_eq!(del.status, 200);
    assert_eq!(del.body["name"], name);
    assert_eq!(
        az.arm("DELETE", &assignment_path(&account, name), None)
            .await
            .status,
        204
    );
    assert_eq!(
        az.arm("GET", &assignment_path(&account, name), None)
            .await
            .status,
        404
    );
    let bad = az
        .arm(
            "GET",
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments?api-version=1999-01-01",
                account.trim_start_matches('/')
            ),
            None,
        )
        .await;
    assert_eq!(bad.code(), "InvalidApiVersionParameter");
}

#[tokio::test]
async fn the_data_plane_admits_tokens_of_principals_holding_an_inference_role() {
    let az = Az::default().await;
    let account = az.emu.default_account_id();
    az.emu.put_deployment_out_of_band(
        &account,
        "chat",
        deployment_body("gpt-4o-mini", None, "GlobalStandard", 1),
    );
    let app = az.emu.add_identity();
    let token = az
        .token_as(
            &app.client_id,
            app.client_secret.as_deref().unwrap(),
            "https://cognitiveservices.azure.com",
        )
        .await;
    let (s, e) = chat_with_token(&az, &token).await;
    assert_eq!(s, 401);
    assert_eq!(e["error"]["code"], "PermissionDenied");
    assert_eq!(
        e["error"]["message"],
        format!(
            "The principal `{}` lacks the required data action `Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action` to perform `POST /openai/deployments/{{deployment-id}}/chat/completions` operation.",
            app.object_id
        )
    );
    // A control-plane role does not help; an inference role on the account does.
    let name = "0b1d7e5a-2f4c-4a8e-9c3d-0000000000c1";
    az.arm(
        "PUT",
        &assignment_path(&account, name),
        Some(&assignment(&az, CONTRIBUTOR, &app.object_id)),
    )
    .await;
    assert_eq!(chat_with_token(&az, &token).await.0, 401);
    let name2 = "0b1d7e5a-2f4c-4a8e-9c3d-0000000000c2";
    let r = az
        .arm(
            "PUT",
            &assignment_path(&account, name2),
            Some(&assignment(&az, OPENAI_USER, &app.object_id)),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(chat_with_token(&az, &token).await.0, 200);
    // Removing it takes the access away at once.
    az.arm("DELETE", &assignment_path(&account, name2), None)
        .await;
    assert_eq!(chat_with_token(&az, &token).await.0, 401);
    // An assignment at the resource group covers the account.
    let rg = format!(
        "/subscriptions/{}/resourceGroups/{}",
        az.env.subscription_id, az.env.resource_group
    );
    az.emu.assign_role(&rg, &app.object_id, OPENAI_USER);
    assert_eq!(chat_with_token(&az, &token).await.0, 200);
    // A managed identity signs in through the IMDS-style endpoint and needs its own role.
    let mi = az.emu.add_managed_identity();
    let mi_token: Value = az
        .http
        .get(format!(
            "{}metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://cognitiveservices.azure.com&client_id={}",
            az.env.managed_identity_endpoint, mi.client_id
        ))
        .header("metadata", "true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mi_token = mi_token["access_token"].as_str().unwrap();
    assert_eq!(token_oid(mi_token), mi.object_id);
    assert_eq!(chat_with_token(&az, mi_token).await.0, 401);
}

#[tokio::test]
async fn disable_local_auth_turns_keys_away() {
    let az = Az::default().await;
    let account = az.emu.default_account_id();
    az.emu.put_deployment_out_of_band(
        &account,
        "chat",
        deployment_body("gpt-4o-mini", None, "GlobalStandard", 1),
    );
    let p = az
        .arm(
            "PATCH",
            &az.account_path(),
            Some(&json!({"properties": {"disableLocalAuth": true}})),
        )
        .await;
    az.wait_operation(&p.header("azure-asyncoperation").unwrap())
        .await;
    let (k1, _) = az.emu.account_keys(&account);
    let r = az
        .http
        .post(format!(
            "{}openai/deployments/chat/chat/completions?api-version=2024-10-21",
            az.env.openai_endpoint
        ))
        .header("api-key", k1)
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "AuthenticationTypeDisabled");
    assert_eq!(
        e["error"]["message"],
        "Key based authentication is disabled for this resource."
    );
    let token = az.token("https://cognitiveservices.azure.com").await;
    az.emu
        .assign_role(&account, &token_oid(&token), OPENAI_USER);
    assert_eq!(chat_with_token(&az, &token).await.0, 200);
}
