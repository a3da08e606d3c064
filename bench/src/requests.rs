//! What the Azure emulator's request log says: each request's kind, the writes, the ARM reads,
//! the deployment a request concerns, counts in a time window.

use std::collections::HashMap;
use std::time::Instant;
use testbed::azure::{RequestRecord, Surface};

/// What an Azure request was, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Token,
    DeploymentPut,
    DeploymentGet,
    /// The paged LIST of an account's deployments (the operator's steady-state read).
    DeploymentList,
    DeploymentDelete,
    DeploymentOther,
    Poll,
    Account,
    /// Quota usages and model catalog reads (the operator's pre-validation before a write).
    PreValidation,
    KeyVaultRead,
    KeyVaultWrite,
    Other,
}

/// (account, deployment) a path concerns; the deployment is empty for the account's LIST.
pub fn deployment_of(path: &str) -> Option<(String, String)> {
    let p = path.to_ascii_lowercase();
    let segs: Vec<&str> = p.split('/').collect();
    let ai = segs.iter().position(|s| *s == "accounts")?;
    if segs.get(ai + 2) != Some(&"deployments") {
        return None;
    }
    let name = segs.get(ai + 3).copied().unwrap_or("");
    Some((segs.get(ai + 1)?.to_string(), name.to_string()))
}

pub fn classify(r: &RequestRecord) -> Kind {
    match r.surface {
        Surface::Token | Surface::ManagedIdentity => Kind::Token,
        Surface::KeyVault => {
            if r.method == "GET" {
                Kind::KeyVaultRead
            } else {
                Kind::KeyVaultWrite
            }
        }
        Surface::Arm => {
            let p = r.path.to_ascii_lowercase();
            if p.contains("/operationstatuses/") || p.contains("/operationresults/") {
                return Kind::Poll;
            }
            match deployment_of(&p) {
                Some((_, name)) if !name.is_empty() && p.trim_end_matches('/').ends_with(&name) => {
                    match r.method.as_str() {
                        "PUT" | "PATCH" => Kind::DeploymentPut,
                        "GET" => Kind::DeploymentGet,
                        "DELETE" => Kind::DeploymentDelete,
                        _ => Kind::DeploymentOther,
                    }
                }
                Some((_, name)) if name.is_empty() && r.method == "GET" => Kind::DeploymentList,
                Some(_) => Kind::DeploymentOther,
                None if p.ends_with("/usages") || p.ends_with("/models") => Kind::PreValidation,
                None if p.contains("/accounts/") => Kind::Account,
                None => Kind::Other,
            }
        }
        _ => Kind::Other,
    }
}

pub fn is_write(r: &RequestRecord) -> bool {
    matches!(r.surface, Surface::Arm | Surface::KeyVault)
        && r.method != "GET"
        && r.method != "HEAD"
        && !(r.method == "POST" && r.path.to_ascii_lowercase().ends_with("/listkeys"))
}

pub fn count(log: &[RequestRecord], from: Instant, to: Instant) -> HashMap<Kind, usize> {
    let mut m = HashMap::new();
    for r in log.iter().filter(|r| r.started >= from && r.started <= to) {
        *m.entry(classify(r)).or_default() += 1;
    }
    m
}

/// An ARM read (what ARM's read budget counts).
pub fn is_arm_read(r: &RequestRecord) -> bool {
    r.surface == Surface::Arm && r.method == "GET"
}

/// When the first request about each deployment (account, name) was made.
pub fn first_calls(log: &[RequestRecord]) -> HashMap<(String, String), Instant> {
    let mut first: HashMap<(String, String), Instant> = HashMap::new();
    for r in log {
        if let Some(k) = deployment_of(&r.path).filter(|(_, n)| !n.is_empty()) {
            first.entry(k).or_insert(r.started);
        }
    }
    first
}

/// Per account, the time from one write's operation end (PUT + `d`) to the next PUT, in ms.
pub fn handoff_gaps(log: &[RequestRecord], d: std::time::Duration) -> Vec<f64> {
    let mut puts: HashMap<String, Vec<Instant>> = HashMap::new();
    for r in log
        .iter()
        .filter(|r| classify(r) == Kind::DeploymentPut && r.status < 300)
    {
        if let Some((acct, _)) = deployment_of(&r.path) {
            puts.entry(acct).or_default().push(r.started);
        }
    }
    let mut gaps = vec![];
    for v in puts.values_mut() {
        v.sort();
        for w in v.windows(2) {
            gaps.push(w[1].saturating_duration_since(w[0] + d).as_secs_f64() * 1000.0);
        }
    }
    gaps.sort_by(|x, y| x.total_cmp(y));
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_told_apart() {
        let a =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/A";
        assert_eq!(
            deployment_of(&format!("{a}/deployments")),
            Some(("a".into(), "".into()))
        );
        assert_eq!(
            deployment_of(&format!("{a}/deployments/X.y")),
            Some(("a".into(), "x.y".into()))
        );
        assert_eq!(deployment_of(&format!("{a}/models")), None);
    }
}
