//! Content filters on the Azure emulator (issue 13): system policies, validated user RAI
//! policies (base policy, categories, sources, thresholds, blocklists that exist), RAI
//! blocklists and their items, and deployments whose `raiPolicyName` must exist.
mod azure_common;

use azure_common::*;
use serde_json::{Value, json};

fn policy(filters: Value, blocklists: Value) -> Value {
    json!({"properties": {"basePolicyName": "Microsoft.DefaultV2", "mode": "Blocking",
        "contentFilters": filters, "customBlocklists": blocklists}})
}

fn filter(name: &str, level: Option<&str>, source: &str) -> Value {
    let mut f = json!({"name": name, "blocking": true, "enabled": true, "source": source});
    if let Some(l) = level {
        f["severityThreshold"] = json!(l);
    }
    f
}

#[tokio::test]
async fn system_policies_are_there_and_cannot_be_changed() {
    let az = Az::default().await;
    let list = az
        .arm("GET", &format!("{}/raiPolicies", az.account_path()), None)
        .await;
    let names: Vec<&str> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Microsoft.Default") && names.contains(&"Microsoft.DefaultV2"));
    let v2 = az
        .arm(
            "GET",
            &format!("{}/raiPolicies/Microsoft.DefaultV2", az.account_path()),
            None,
        )
        .await;
    assert_eq!(v2.body["properties"]["type"], "SystemManaged");
    let r = az
        .arm(
            "PUT",
            &format!("{}/raiPolicies/Microsoft.Default", az.account_path()),
            Some(&policy(json!([]), json!([]))),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.message().contains("system-managed"), "{}", r.message());
}

#[tokio::test]
async fn user_policies_are_validated_before_they_are_stored() {
    let az = Az::default().await;
    let path = format!("{}/raiPolicies/strict", az.account_path());
    let cases = [
        (
            json!({"properties": {"basePolicyName": "Contoso.Base"}}),
            "basePolicyName 'Contoso.Base'",
        ),
        (
            policy(json!([filter("Gore", Some("High"), "Prompt")]), json!([])),
            "'Gore' is not a content filter category",
        ),
        (
            policy(json!([filter("Hate", None, "Prompt")]), json!([])),
            "needs a severityThreshold",
        ),
        (
            policy(
                json!([filter("Hate", Some("Extreme"), "Prompt")]),
                json!([]),
            ),
            "'Extreme' is not Low, Medium or High",
        ),
        (
            policy(
                json!([filter("Violence", Some("Low"), "PreRun")]),
                json!([]),
            ),
            "needs source Prompt or Completion",
        ),
        (
            policy(
                json!([
                    filter("Hate", Some("Low"), "Prompt"),
                    filter("hate", Some("High"), "Prompt")
                ]),
                json!([]),
            ),
            "twice",
        ),
        (
            policy(
                json!([]),
                json!([{"blocklistName": "missing", "blocking": true, "source": "Prompt"}]),
            ),
            "blocklist 'missing', which does not exist",
        ),
    ];
    for (body, expect) in cases {
        let r = az.arm("PUT", &path, Some(&body)).await;
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        assert_eq!(r.code(), "InvalidResourceProperties");
        assert!(r.message().contains(expect), "{expect}: {}", r.message());
    }
    assert_eq!(az.arm("GET", &path, None).await.status, 404);
    let good = policy(
        json!([
            filter("Hate", Some("Low"), "Prompt"),
            filter("Hate", Some("Medium"), "Completion"),
            filter("Jailbreak", None, "Prompt"),
        ]),
        json!([]),
    );
    let r = az.arm("PUT", &path, Some(&good)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["properties"]["type"], "UserManaged");
    assert_eq!(az.arm("PUT", &path, Some(&good)).await.status, 200);
}

#[tokio::test]
async fn blocklists_items_and_the_policies_that_use_them() {
    let az = Az::default().await;
    let list = format!("{}/raiBlocklists/words", az.account_path());
    let r = az
        .arm(
            "PUT",
            &list,
            Some(&json!({"properties": {"description": "blocked words"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let item = |n: &str| format!("{list}/raiBlocklistItems/{n}");
    let r = az
        .arm(
            "PUT",
            &item("one"),
            Some(&json!({"properties": {"pattern": "forbidden", "isRegex": false}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let bad = az
        .arm(
            "PUT",
            &item("bad"),
            Some(&json!({"properties": {"pattern": "([a-z", "isRegex": true}})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.message().contains("regular expression"));
    let add = az
        .arm(
            "POST",
            &format!("{list}/addRaiBlocklistItems"),
            Some(&json!([
                {"name": "two", "properties": {"pattern": "secret\\d+", "isRegex": true}},
                {"name": "three", "properties": {"pattern": "classified", "isRegex": false}},
            ])),
        )
        .await;
    assert_eq!(add.status, 200, "{:?}", add.body);
    assert_eq!(add.body["name"], "words");
    let items = |r: &Reply| -> Vec<String> {
        r.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    let listed = az
        .arm("GET", &format!("{list}/raiBlocklistItems"), None)
        .await;
    assert_eq!(items(&listed), vec!["one", "three", "two"]);
    let del = az
        .arm(
            "POST",
            &format!("{list}/deleteRaiBlocklistItems"),
            Some(&json!(["one", "three"])),
        )
        .await;
    assert_eq!(del.status, 204);
    let listed = az
        .arm("GET", &format!("{list}/raiBlocklistItems"), None)
        .await;
    assert_eq!(items(&listed), vec!["two"]);
    // A policy may now name the blocklist; the blocklist cannot go while it is used.
    let path = format!("{}/raiPolicies/with-words", az.account_path());
    let body = policy(
        json!([filter("Violence", Some("High"), "Completion")]),
        json!([{"blocklistName": "words", "blocking": true, "source": "Prompt"}]),
    );
    assert_eq!(az.arm("PUT", &path, Some(&body)).await.status, 201);
    let in_use = az.arm("DELETE", &list, None).await;
    assert_eq!(in_use.status, 409);
    assert!(in_use.message().contains("with-words"));
    assert_eq!(az.arm("DELETE", &path, None).await.status, 204);
    assert_eq!(az.arm("DELETE", &list, None).await.status, 204);
    assert_eq!(az.arm("GET", &list, None).await.status, 404);
}

#[tokio::test]
async fn a_deployment_names_a_policy_that_exists() {
    let az = Az::default().await;
    let mut body = deployment_body("gpt-4o-mini", None, "GlobalStandard", 1);
    body["properties"]["raiPolicyName"] = json!("team-filter");
    let r = az
        .arm("PUT", &az.deployment_path("chat"), Some(&body))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "InvalidResourceProperties");
    assert!(r.message().contains("'team-filter'"), "{}", r.message());
    let p = az
        .arm(
            "PUT",
            &format!("{}/raiPolicies/team-filter", az.account_path()),
            Some(&policy(
                json!([filter("Sexual", Some("High"), "Prompt")]),
                json!([]),
            )),
        )
        .await;
    assert_eq!(p.status, 201);
    let r = az
        .arm("PUT", &az.deployment_path("chat"), Some(&body))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["properties"]["raiPolicyName"], "team-filter");
    // System policies need no creation.
    body["properties"]["raiPolicyName"] = json!("Microsoft.Default");
    let r = az
        .arm("PUT", &az.deployment_path("other"), Some(&body))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}
