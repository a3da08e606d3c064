//! ARM list paging on the Azure emulator (issue 11): lists answer `AzureConfig::list_page_size`
//! items and a `nextLink` with `$skipToken`; following the links yields every item exactly once,
//! also when items change between pages; each page is a read of its own.
mod azure_common;

use azure_common::*;
use serde_json::Value;
use testbed::azure::{AccountSeed, AzureConfig};

fn paged(size: usize) -> AzureConfig {
    AzureConfig {
        list_page_size: size,
        ..Default::default()
    }
}

/// Follows nextLink; returns (names per page, remaining-reads header per page).
async fn walk(az: &Az, first: &str) -> (Vec<Vec<String>>, Vec<u32>) {
    let token = az.token("https://management.azure.com").await;
    let mut pages = Vec::new();
    let mut remaining = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(url) = next.take() {
        let r = az.arm_with(&token, "GET", &url, None).await;
        assert_eq!(r.status, 200, "{url}: {:?}", r.body);
        remaining.push(
            r.header("x-ms-ratelimit-remaining-subscription-reads")
                .unwrap()
                .parse()
                .unwrap(),
        );
        pages.push(
            r.body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect(),
        );
        next = r.body["nextLink"].as_str().map(str::to_string);
        assert!(pages.len() < 50, "runaway nextLink chain");
    }
    (pages, remaining)
}

#[tokio::test]
async fn deployments_are_listed_in_pages_each_counted_as_a_read() {
    // No refill, so each read shows in the remaining count.
    let az = Az::start(AzureConfig {
        read_refill_per_sec: 0,
        ..paged(3)
    })
    .await;
    let acc = az.emu.default_account_id();
    for i in 0..7 {
        az.emu.put_deployment_out_of_band(
            &acc,
            &format!("d{i}"),
            deployment_body("gpt-4o-mini", None, "GlobalStandard", 1),
        );
    }
    let (pages, remaining) = walk(&az, &format!("{}/deployments", az.account_path())).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    let mut all: Vec<String> = pages.concat();
    all.sort();
    assert_eq!(all, (0..7).map(|i| format!("d{i}")).collect::<Vec<_>>());
    assert!(
        remaining.windows(2).all(|w| w[1] + 1 == w[0]),
        "every page takes a read token: {remaining:?}"
    );
    // The first page links on; the walk above ended on a page without nextLink.
    let r = az
        .arm("GET", &format!("{}/deployments", az.account_path()), None)
        .await;
    assert!(r.body["nextLink"].is_string());
}

#[tokio::test]
async fn a_change_between_pages_neither_repeats_nor_skips_the_others() {
    let az = Az::start(paged(2)).await;
    let acc = az.emu.default_account_id();
    for n in ["a", "b", "c", "d", "e"] {
        az.emu.put_deployment_out_of_band(
            &acc,
            n,
            deployment_body("gpt-4o-mini", None, "GlobalStandard", 1),
        );
    }
    let first = az
        .arm("GET", &format!("{}/deployments", az.account_path()), None)
        .await;
    let names = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&first.body), vec!["a", "b"]);
    // "a" (already seen) goes, "bb" (after the cursor) arrives, "c" (not yet seen) stays.
    az.emu.delete_deployment_out_of_band(&acc, "a");
    az.emu.put_deployment_out_of_band(
        &acc,
        "bb",
        deployment_body("gpt-4o-mini", None, "GlobalStandard", 1),
    );
    let link = first.body["nextLink"].as_str().unwrap().to_string();
    assert!(
        link.contains("%24skipToken=") || link.contains("$skipToken="),
        "{link}"
    );
    let (rest, _) = walk(&az, &link).await;
    assert_eq!(rest.concat(), vec!["bb", "c", "d", "e"]);
    // A token that is not one of ours is refused.
    let bad = az
        .arm(
            "GET",
            &format!("{}/deployments?$skipToken=%%%", az.account_path()),
            None,
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.code(), "InvalidSkipToken");
}

#[tokio::test]
async fn accounts_and_catalogs_page_too() {
    let az = Az::start(paged(2)).await;
    for i in 0..3 {
        az.emu.add_account(AccountSeed {
            subscription_id: az.env.subscription_id.clone(),
            resource_group: az.env.resource_group.clone(),
            name: format!("extra-{i}"),
            location: "eastus".into(),
            kind: "AIServices".into(),
        });
    }
    let sub = az.env.subscription_id.clone();
    let (by_sub, _) = walk(
        &az,
        &format!("subscriptions/{sub}/providers/Microsoft.CognitiveServices/accounts"),
    )
    .await;
    assert_eq!(by_sub.len(), 2);
    assert_eq!(by_sub.concat().len(), 4);
    let (by_rg, _) = walk(
        &az,
        &format!(
            "subscriptions/{sub}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts",
            az.env.resource_group
        ),
    )
    .await;
    assert_eq!(by_rg.concat().len(), 4);
    let catalog = az.emu.catalog(&az.emu.default_account_id()).len();
    let (models, _) = walk(&az, &format!("{}/models", az.account_path())).await;
    assert_eq!(models.concat().len(), catalog);
    assert_eq!(models.len(), catalog.div_ceil(2));
}

#[tokio::test]
async fn the_default_page_holds_an_account_at_azures_default_deployment_limit() {
    let az = Az::default().await;
    let acc = az.emu.default_account_id();
    for i in 0..32 {
        az.emu.put_deployment_out_of_band(
            &acc,
            &format!("d{i:02}"),
            deployment_body("gpt-4o-mini", None, "GlobalStandard", 1),
        );
    }
    let (pages, _) = walk(&az, &format!("{}/deployments", az.account_path())).await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].len(), 32);
}
