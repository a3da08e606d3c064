//! Key Vault secrets on the Azure emulator: set creates a version each time, get latest or by
//! version, list versions, tags and content type, soft delete (deleted secret, name reuse
//! refused, recover, purge), api-version checks.
mod azure_common;

use azure_common::*;
use serde_json::json;

#[tokio::test]
async fn set_get_versions_and_soft_delete() {
    let az = Az::default().await;
    let token = az.token("https://vault.azure.net").await;
    let kv = |p: &str| format!("{}{p}?api-version=2026-04-01", az.env.key_vault_uri);
    let s1 = az
        .send(
            "PUT",
            &kv("secrets/acct-key"),
            Some(&token),
            Some(&json!({"value": "v1", "contentType": "text/plain", "tags": {"owner": "aoai"}})),
        )
        .await;
    assert_eq!(s1.status, 200, "{:?}", s1.body);
    let id1 = s1.body["id"].as_str().unwrap().to_string();
    assert!(id1.starts_with(&format!("{}secrets/acct-key/", az.env.key_vault_uri)));
    assert_eq!(s1.body["contentType"], "text/plain");
    assert_eq!(s1.body["tags"]["owner"], "aoai");
    assert_eq!(
        s1.body["attributes"]["recoveryLevel"],
        "Recoverable+Purgeable"
    );
    let s2 = az
        .send(
            "PUT",
            &kv("secrets/acct-key"),
            Some(&token),
            Some(&json!({"value": "v2"})),
        )
        .await;
    let v2 = s2.body["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let v1 = id1.rsplit('/').next().unwrap().to_string();
    assert_ne!(v1, v2);

    let latest = az
        .send("GET", &kv("secrets/acct-key/"), Some(&token), None)
        .await;
    assert_eq!(latest.body["value"], "v2");
    let old = az
        .send(
            "GET",
            &kv(&format!("secrets/acct-key/{v1}")),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(old.body["value"], "v1");
    assert_eq!(
        az.emu.secret(&az.env.key_vault_uri, "acct-key"),
        Some(("v2".to_string(), v2.clone()))
    );
    let versions = az
        .send("GET", &kv("secrets/acct-key/versions"), Some(&token), None)
        .await;
    assert_eq!(versions.body["value"].as_array().unwrap().len(), 2);
    assert!(
        versions.body["value"][0].get("value").is_none(),
        "list never returns values"
    );
    let list = az.send("GET", &kv("secrets"), Some(&token), None).await;
    assert_eq!(
        list.body["value"][0]["id"],
        format!("{}secrets/acct-key", az.env.key_vault_uri)
    );

    let del = az
        .send("DELETE", &kv("secrets/acct-key"), Some(&token), None)
        .await;
    assert_eq!(del.status, 200);
    assert_eq!(
        del.body["recoveryId"],
        format!("{}deletedsecrets/acct-key", az.env.key_vault_uri)
    );
    assert!(
        del.body["scheduledPurgeDate"].as_i64().unwrap()
            > del.body["deletedDate"].as_i64().unwrap()
    );
    assert!(del.body.get("value").is_none());
    assert_eq!(
        az.send("GET", &kv("secrets/acct-key/"), Some(&token), None)
            .await
            .status,
        404
    );
    assert_eq!(
        az.send("GET", &kv("deletedsecrets/acct-key"), Some(&token), None)
            .await
            .status,
        200
    );
    let reuse = az
        .send(
            "PUT",
            &kv("secrets/acct-key"),
            Some(&token),
            Some(&json!({"value": "v3"})),
        )
        .await;
    assert_eq!(reuse.status, 409);
    assert_eq!(reuse.code(), "Conflict");
    let rec = az
        .send(
            "POST",
            &kv("deletedsecrets/acct-key/recover"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(rec.status, 200);
    assert_eq!(
        az.send("GET", &kv("secrets/acct-key/"), Some(&token), None)
            .await
            .body["value"],
        "v2"
    );
    az.send("DELETE", &kv("secrets/acct-key"), Some(&token), None)
        .await;
    assert_eq!(
        az.send("DELETE", &kv("deletedsecrets/acct-key"), Some(&token), None)
            .await
            .status,
        204
    );
    assert_eq!(
        az.send(
            "PUT",
            &kv("secrets/acct-key"),
            Some(&token),
            Some(&json!({"value": "v4"}))
        )
        .await
        .status,
        200
    );
    let log = az.emu.request_log();
    assert!(
        log.iter()
            .filter(|l| l.method == "PUT" && l.status == 200)
            .all(|l| l.is_write)
    );
}

#[tokio::test]
async fn api_version_and_name_checks() {
    let az = Az::default().await;
    let token = az.token("https://vault.azure.net").await;
    let r = az
        .send(
            "GET",
            &format!("{}secrets/x/?api-version=7.4", az.env.key_vault_uri),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "BadParameter");
    let r = az
        .send(
            "PUT",
            &format!(
                "{}secrets/bad_name?api-version=2026-04-01",
                az.env.key_vault_uri
            ),
            Some(&token),
            Some(&json!({"value": "x"})),
        )
        .await;
    assert_eq!(r.status, 400);
    // A second vault is independent.
    let other = az.emu.add_vault("other-kv");
    assert_ne!(other, az.env.key_vault_uri);
    az.send(
        "PUT",
        &format!("{other}secrets/s?api-version=2026-04-01"),
        Some(&token),
        Some(&json!({"value": "o"})),
    )
    .await;
    assert!(az.emu.secret(&other, "s").is_some());
    assert!(az.emu.secret(&az.env.key_vault_uri, "s").is_none());
}
