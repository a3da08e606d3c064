//! Entra ID on the Azure emulator: client-secret and client-assertion (workload identity)
//! token requests, discovery documents, the managed identity endpoint, and how ARM, Key Vault
//! and the data plane reject missing, expired, wrong-audience or forged tokens.
mod azure_common;

use azure_common::*;
use base64::Engine;
use serde_json::{Value, json};

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn token_request(az: &Az, form: &[(&str, &str)]) -> Reply {
    let url = format!(
        "{}{}/oauth2/v2.0/token",
        az.env.authority_host, az.env.tenant_id
    );
    let resp = az.http.post(url).form(form).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Reply {
        status,
        headers,
        body: resp.json().await.unwrap(),
    }
}

#[tokio::test]
async fn client_secret_token_carries_audience_and_expiry() {
    let az = Az::default().await;
    let r = token_request(
        &az,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &az.env.client_id),
            ("client_secret", &az.env.client_secret),
            ("scope", "https://management.azure.com/.default"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    let exp_in = r.body["expires_in"].as_i64().unwrap();
    assert!(exp_in > 3000);
    let c = claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], "https://management.azure.com");
    assert_eq!(c["appid"], az.env.client_id.as_str());
    assert_eq!(c["tid"], az.env.tenant_id.as_str());
    assert!(c["exp"].as_i64().unwrap() > chrono::Utc::now().timestamp() + 3000);
    // The emulator remembers what it issued (leak scans look for these).
    assert_eq!(
        az.emu.issued_tokens(),
        vec![r.body["access_token"].as_str().unwrap().to_string()]
    );
    // The token works on ARM; the log records the principal.
    let ok = az
        .arm_with(
            r.body["access_token"].as_str().unwrap(),
            "GET",
            &az.account_path(),
            None,
        )
        .await;
    assert_eq!(ok.status, 200);
    let log = az.emu.request_log();
    assert!(log.iter().any(|l| l.path.ends_with("/oauth2/v2.0/token")
        && l.principal.as_deref() == Some(az.env.client_id.as_str())));
    assert!(log.iter().any(|l| l.status == 200
        && l.path.contains("/accounts/")
        && l.principal.as_deref() == Some(az.env.client_id.as_str())));
}

#[tokio::test]
async fn token_endpoint_errors_look_like_entra() {
    let az = Az::default().await;
    let bad_secret = token_request(
        &az,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &az.env.client_id),
            ("client_secret", "nope"),
            ("scope", "https://management.azure.com/.default"),
        ],
    )
    .await;
    assert_eq!(bad_secret.status, 401);
    assert_eq!(bad_secret.body["error"], "invalid_client");
    assert!(
        bad_secret.body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    let unknown = token_request(
        &az,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "00000000-dead-beef-0000-000000000000"),
            ("client_secret", "x"),
            ("scope", "https://management.azure.com/.default"),
        ],
    )
    .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["error"], "unauthorized_client");
    assert_eq!(unknown.body["error_codes"][0], 700016);
    let bad_scope = token_request(
        &az,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &az.env.client_id),
            ("client_secret", &az.env.client_secret),
            ("scope", "https://management.azure.com"),
        ],
    )
    .await;
    assert_eq!(bad_scope.body["error"], "invalid_scope");
}

#[tokio::test]
async fn client_assertion_from_the_federated_token_file() {
    let az = Az::default().await;
    let assertion = std::fs::read_to_string(&az.env.federated_token_file).unwrap();
    let form = |a: &str| {
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), az.env.client_id.clone()),
            (
                "client_assertion_type".to_string(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
            ),
            ("client_assertion".to_string(), a.to_string()),
            (
                "scope".to_string(),
                "https://vault.azure.net/.default".to_string(),
            ),
        ]
    };
    let url = format!(
        "{}{}/oauth2/v2.0/token",
        az.env.authority_host, az.env.tenant_id
    );
    let ok = az
        .http
        .post(&url)
        .form(&form(&assertion))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "https://vault.azure.net"
    );
    // A forged assertion is refused.
    let mut forged = assertion.clone();
    forged.push('x');
    let bad = az
        .http
        .post(&url)
        .form(&form(&forged))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn discovery_documents_for_msal() {
    let az = Az::default().await;
    let r = az
        .send(
            "GET",
            &format!(
                "{}{}/v2.0/.well-known/openid-configuration",
                az.env.authority_host, az.env.tenant_id
            ),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["token_endpoint"],
        format!(
            "{}{}/oauth2/v2.0/token",
            az.env.authority_host, az.env.tenant_id
        )
    );
    assert_eq!(
        r.body["issuer"],
        format!("{}{}/v2.0", az.env.authority_host, az.env.tenant_id)
    );
    let unknown = az
        .send(
            "GET",
            &format!(
                "{}not-a-tenant/v2.0/.well-known/openid-configuration",
                az.env.authority_host
            ),
            None,
            None,
        )
        .await;
    assert_eq!(unknown.status, 400);
    let inst = az
        .send(
            "GET",
            &format!(
                "{}common/discovery/instance?api-version=1.1",
                az.env.authority_host
            ),
            None,
            None,
        )
        .await;
    assert!(
        inst.body["tenant_discovery_endpoint"]
            .as_str()
            .unwrap()
            .starts_with(&az.env.authority_host)
    );
}

#[tokio::test]
async fn managed_identity_endpoint_requires_metadata_header() {
    let az = Az::default().await;
    let url = format!(
        "{}metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com",
        az.env.managed_identity_endpoint
    );
    let no_header = az.http.get(&url).send().await.unwrap();
    assert_eq!(no_header.status(), 400);
    let r = az
        .http
        .get(&url)
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resource"], "https://management.azure.com");
    assert_eq!(
        body["client_id"],
        az.env.managed_identity_client_id.as_str()
    );
    assert!(
        body["expires_on"].as_str().unwrap().parse::<i64>().unwrap()
            > chrono::Utc::now().timestamp()
    );
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        az.arm_with(token, "GET", &az.account_path(), None)
            .await
            .status,
        200
    );
    // A client id that is no managed identity is refused.
    let other = az
        .http
        .get(format!("{url}&client_id={}", az.env.client_id))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 400);
}

#[tokio::test]
async fn arm_rejects_missing_expired_wrong_audience_and_forged_tokens() {
    let az = Az::default().await;
    let url = format!(
        "{}{}?api-version={API}",
        az.env.resource_manager_endpoint,
        az.account_path()
    );
    let missing = az.send("GET", &url, None, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.code(), "AuthenticationFailed");
    assert_eq!(
        missing.message(),
        "Authentication failed. The 'Authorization' header is missing."
    );
    let challenge = missing.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer authorization_uri=")
            && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );

    let expired = az
        .send(
            "GET",
            &url,
            Some(&az.emu.issue_token("https://management.azure.com", -60)),
            None,
        )
        .await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.code(), "ExpiredAuthenticationToken");
    assert!(
        expired
            .message()
            .starts_with("The access token expiry UTC time")
    );

    let wrong = az
        .send(
            "GET",
            &url,
            Some(&az.emu.issue_token("https://vault.azure.net", 600)),
            None,
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.code(), "InvalidAuthenticationTokenAudience");
    assert!(wrong.message().contains("'https://vault.azure.net'"));

    let forged = az
        .send(
            "GET",
            &url,
            Some("eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.sig"),
            None,
        )
        .await;
    assert_eq!(forged.code(), "InvalidAuthenticationToken");
    // Trailing slash in the audience is accepted, as Azure does.
    let slash = az
        .send(
            "GET",
            &url,
            Some(&az.emu.issue_token("https://management.azure.com/", 600)),
            None,
        )
        .await;
    assert_eq!(slash.status, 200);
}

#[tokio::test]
async fn key_vault_answers_401_with_a_challenge() {
    let az = Az::default().await;
    let url = format!("{}secrets/s1/?api-version=2026-04-01", az.env.key_vault_uri);
    let missing = az.send("GET", &url, None, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.code(), "Unauthorized");
    let challenge = missing.header("www-authenticate").unwrap();
    assert_eq!(
        challenge,
        format!(
            "Bearer authorization=\"{}{}\", resource=\"https://vault.azure.net\"",
            az.env.authority_host, az.env.tenant_id
        )
    );
    let wrong = az
        .send(
            "GET",
            &url,
            Some(&az.emu.issue_token("https://management.azure.com", 600)),
            None,
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.message().contains("Invalid audience"));
    let expired = az
        .send(
            "GET",
            &url,
            Some(&az.emu.issue_token("https://vault.azure.net", -5)),
            None,
        )
        .await;
    assert_eq!(expired.status, 401);
    let ok = az
        .send(
            "GET",
            &url,
            Some(&az.emu.issue_token("https://vault.azure.net", 600)),
            None,
        )
        .await;
    assert_eq!(
        ok.status, 404,
        "authenticated, the secret just does not exist"
    );
    assert_eq!(ok.code(), "SecretNotFound");
    let _ = json!({});
}
