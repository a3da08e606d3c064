//! End-of-scenario invariants, checked from the emulators' state and request logs:
//! 1. every ModelDeployment converges to its spec (Ready=True for its current generation and the
//!    Azure deployment matches model, version, SKU, capacity, owner tag) or ends in an expected
//!    terminal condition with a correct reason;
//! 2. no Azure deployment exists that no resource owns;
//! 3. no Azure deployment was created twice (at most one `201 Created` PUT per name);
//! 4. no spec change is lost (1. is checked against the latest generation);
//! 5. never more than one write in flight per account (the emulator's high-water mark);
//! 6. (leader scenarios) no write from a non-leader — see `writes_by_principal`.

use super::{Bed, deployment_of, is_write_request, log_summary};
use aoai_operator::crd::ModelDeployment;
use kube::ResourceExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use testbed::azure::RequestRecord;

#[derive(Clone, Debug, Default)]
pub struct Expectations {
    /// `ns/name` → reasons it may end with (Ready=False) instead of converging.
    pub terminal: HashMap<String, Vec<String>>,
    /// Reasons any resource may end with when a fault made it terminal (e.g. an injected LRO
    /// failure code); such a resource must record the error in status.lastError.
    pub terminal_any: Vec<String>,
    /// `(account, deployment)` (lower-case) that exist in Azure without an owning resource on purpose.
    pub unowned_ok: HashSet<(String, String)>,
    /// Deployment names (lower-case) that were deleted out of band, so a second create is legitimate.
    pub recreate_ok: HashSet<String>,
}

fn ready(md: &ModelDeployment) -> Option<(String, String, Option<i64>)> {
    let st = md.status.as_ref()?;
    st.conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.observed_generation))
}

/// State invariants (1, 2, 4): empty when every resource is converged or correctly terminal and
/// no orphan exists.
pub async fn state_violations(bed: &Bed, exp: &Expectations) -> Vec<String> {
    let mut v = Vec::new();
    let mds = bed.list_mds().await;
    let acct_by_cr: HashMap<String, &super::AccountInfo> = bed
        .accounts
        .iter()
        .map(|a| (a.cr_name.clone(), a))
        .collect();
    let mut owners: HashSet<(String, String, String)> = HashSet::new(); // (account, deployment, owner)
    for md in &mds {
        let key = format!("{}/{}", md.namespace().unwrap_or_default(), md.name_any());
        if md.metadata.deletion_timestamp.is_some() {
            v.push(format!("{key}: still being deleted"));
            continue;
        }
        let generation = md.metadata.generation;
        let Some((status, reason, cond_gen)) = ready(md) else {
            v.push(format!("{key}: no Ready condition yet"));
            continue;
        };
        let st = md.status.clone().unwrap_or_default();
        let Some(acct) = md.spec.account_name().and_then(|a| acct_by_cr.get(a)) else {
            // Resources on accounts outside the bed (catalogue rows) only need a reasoned condition.
            if status != "True" && !exp.terminal.get(&key).is_some_and(|r| r.contains(&reason)) {
                v.push(format!(
                    "{key}: Ready={status} reason {reason}, not expected"
                ));
            }
            continue;
        };
        let dep_name = md.azure_deployment_name();
        owners.insert((
            acct.account_name.to_ascii_lowercase(),
            dep_name.to_ascii_lowercase(),
            key.clone(),
        ));
        if cond_gen != generation || st.observed_generation != generation {
            v.push(format!(
                "{key}: Ready/observedGeneration {cond_gen:?}/{:?} is not the current generation {generation:?} (spec change not acted on yet)",
                st.observed_generation
            ));
            continue;
        }
        if status != "True" {
            let allowed = exp.terminal.get(&key).is_some_and(|r| r.contains(&reason))
                || (exp.terminal_any.contains(&reason)
                    && st.last_error.as_ref().is_some_and(|e| e.code == reason));
            if !allowed {
                v.push(format!(
                    "{key}: Ready={status} reason {reason} ({})",
                    st.conditions
                        .iter()
                        .find(|c| c.type_ == "Ready")
                        .map(|c| c.message.clone())
                        .unwrap_or_default()
                ));
            }
            continue;
        }
        if st.pending_operation.is_some() {
            v.push(format!(
                "{key}: Ready=True but an operation is still pending in status"
            ));
        }
        // Azure must match the spec.
        let Some(d) = bed.azure.deployment(&acct.arm_id, &dep_name) else {
            v.push(format!(
                "{key}: Ready=True but Azure deployment {dep_name} does not exist"
            ));
            continue;
        };
        let p = &d["properties"];
        let m = &p["model"];
        let Some(spec) = md.spec.cognitive() else {
            v.push(format!("{key}: not a sku deployment"));
            continue;
        };
        let mut diffs = Vec::new();
        if m["name"].as_str() != Some(spec.model.name.as_str()) {
            diffs.push(format!("model {:?} != {}", m["name"], spec.model.name));
        }
        if let Some(ver) = &spec.model.version {
            if m["version"].as_str() != Some(ver.as_str()) {
                diffs.push(format!("version {:?} != {ver}", m["version"]));
            }
        }
        if d["sku"]["name"].as_str() != Some(spec.sku.name.as_str()) {
            diffs.push(format!(
                "sku {:?} != {}",
                d["sku"]["name"],
                spec.sku.name.as_str()
            ));
        }
        if d["sku"]["capacity"].as_i64() != Some(spec.sku.capacity as i64) {
            diffs.push(format!(
                "capacity {:?} != {}",
                d["sku"]["capacity"], spec.sku.capacity
            ));
        }
        if p["provisioningState"].as_str() != Some("Succeeded") {
            diffs.push(format!("provisioningState {:?}", p["provisioningState"]));
        }
        if d["tags"][aoai_operator::plan::OWNER_TAG].as_str() != Some(key.as_str()) {
            diffs.push(format!(
                "owner tag {:?}",
                d["tags"][aoai_operator::plan::OWNER_TAG]
            ));
        }
        if !diffs.is_empty() {
            v.push(format!(
                "{key}: Ready=True but Azure differs from the spec: {}",
                diffs.join(", ")
            ));
        }
    }
    // No orphans: every Azure deployment on the bed's accounts belongs to an existing resource.
    for acct in &bed.accounts {
        for d in bed.azure.deployments(&acct.arm_id) {
            let name = d["name"].as_str().unwrap_or_default().to_ascii_lowercase();
            let a = acct.account_name.to_ascii_lowercase();
            if exp.unowned_ok.contains(&(a.clone(), name.clone())) {
                continue;
            }
            let owner = d["tags"][aoai_operator::plan::OWNER_TAG]
                .as_str()
                .unwrap_or("<untagged>")
                .to_string();
            if !owners.contains(&(a.clone(), name.clone(), owner.clone())) {
                v.push(format!(
                    "orphan Azure deployment {a}/{name} (owner tag {owner}, provisioningState {})",
                    d["properties"]["provisioningState"]
                ));
            }
        }
    }
    v
}

/// Log invariants (3, 5) over the whole request log.
pub fn log_violations(bed: &Bed, exp: &Expectations) -> Vec<String> {
    let mut v = Vec::new();
    let log = bed.azure.request_log();
    let mut creates: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &log {
        if r.method == "PUT" && r.status == 201 {
            if let Some(k) = deployment_of(&r.path) {
                *creates.entry(k).or_default() += 1;
            }
        }
    }
    for ((a, d), n) in creates {
        if n > 1 && !exp.recreate_ok.contains(&d) {
            v.push(format!("Azure deployment {a}/{d} was created {n} times"));
        }
    }
    let m = bed.azure.max_concurrent_writes_per_account();
    if m > 1 {
        v.push(format!(
            "{m} writes were in flight at once on one account (max_concurrent_writes_per_account)"
        ));
    }
    v
}

/// Wait until the state invariants hold, then check the log invariants; panics with details.
pub async fn assert_converged(bed: &Bed, exp: &Expectations, timeout: Duration, phase: &str) {
    let start = std::time::Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < timeout {
        last = state_violations(bed, exp).await;
        if last.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if !last.is_empty() {
        let n = last.len();
        last.truncate(25);
        panic!(
            "[{phase}] not converged after {timeout:?}: {n} violation(s):\n  {}\nAzure requests: {}",
            last.join("\n  "),
            log_summary(&bed.azure.request_log())
        );
    }
    let lv = log_violations(bed, exp);
    assert!(
        lv.is_empty(),
        "[{phase}] request-log invariants violated:\n  {}",
        lv.join("\n  ")
    );
    eprintln!(
        "[{phase}] converged in {:.1}s; {} resources; Azure requests so far: {}",
        start.elapsed().as_secs_f64(),
        bed.list_mds().await.len(),
        log_summary(&bed.azure.request_log())
    );
}

/// Write requests (ARM and Key Vault) grouped by principal.
pub fn writes_by_principal(log: &[RequestRecord]) -> HashMap<String, Vec<RequestRecord>> {
    let mut out: HashMap<String, Vec<RequestRecord>> = HashMap::new();
    for r in log.iter().filter(|r| is_write_request(r)) {
        out.entry(r.principal.clone().unwrap_or_else(|| "<none>".into()))
            .or_default()
            .push(r.clone());
    }
    out
}

/// Write requests (any status) on a deployment name since `from` (index in the log).
pub fn writes_on_deployment(log: &[RequestRecord], from: usize, deployment: &str) -> Vec<String> {
    let d = deployment.to_ascii_lowercase();
    log.iter()
        .skip(from)
        .filter(|r| is_write_request(r) && deployment_of(&r.path).is_some_and(|(_, n)| n == d))
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
        .collect()
}
