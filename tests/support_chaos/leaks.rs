//! Secret-leak scan: look for every real secret value (account keys, client secrets, the
//! federated token, issued bearer tokens) — raw and base64-encoded — and for anything shaped like
//! a JWT, in the operator's logs, Kubernetes Events, every AIAccount/ModelDeployment (status
//! included), every ConfigMap, and the operator's /metrics.

use super::Bed;
use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};

/// A named text to scan.
pub struct Corpus {
    pub name: String,
    pub text: String,
}

/// Gather everything the operator wrote that a user or log pipeline can read.
pub async fn gather(bed: &Bed, extra: Vec<Corpus>) -> Vec<Corpus> {
    let mut out = vec![Corpus {
        name: "operator logs (debug, text+json)".into(),
        text: bed.logs.text(),
    }];
    let c = bed.client.clone();
    let lp = ListParams::default();
    if let Ok(l) = Api::<Event>::all(c.clone()).list(&lp).await {
        out.push(Corpus {
            name: format!("{} events.k8s.io Events", l.items.len()),
            text: serde_json::to_string(&l.items).unwrap(),
        });
    }
    if let Ok(l) = Api::<CoreEvent>::all(c.clone()).list(&lp).await {
        out.push(Corpus {
            name: format!("{} core/v1 Events", l.items.len()),
            text: serde_json::to_string(&l.items).unwrap(),
        });
    }
    let mds = bed.list_mds().await;
    out.push(Corpus {
        name: format!("{} ModelDeployments (spec+status)", mds.len()),
        text: serde_json::to_string(&mds).unwrap(),
    });
    let accts = bed.list_accounts().await;
    out.push(Corpus {
        name: format!("{} AIAccounts (spec+status)", accts.len()),
        text: serde_json::to_string(&accts).unwrap(),
    });
    if let Ok(l) = Api::<ConfigMap>::all(c.clone()).list(&lp).await {
        out.push(Corpus {
            name: format!("{} ConfigMaps", l.items.len()),
            text: serde_json::to_string(&l.items).unwrap(),
        });
    }
    let addrs = bed.metrics_addrs.lock().clone();
    for a in addrs {
        if let Ok(r) = reqwest::get(format!("http://{a}/metrics")).await {
            if let Ok(t) = r.text().await {
                out.push(Corpus {
                    name: format!("/metrics of {a}"),
                    text: t,
                });
            }
        }
    }
    out.extend(extra);
    out
}

/// Every secret needle: (what, value) with base64 variants.
pub fn needles(secrets: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (what, v) in secrets {
        out.push((what.clone(), v.clone()));
        let std = base64::engine::general_purpose::STANDARD.encode(v.as_bytes());
        out.push((
            format!("{what} (base64)"),
            std.trim_end_matches('=').to_string(),
        ));
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.as_bytes());
        out.push((format!("{what} (base64url)"), url));
    }
    out.retain(|(_, v)| v.len() >= 8);
    let mut seen = std::collections::HashSet::new();
    out.retain(|(_, v)| seen.insert(v.clone()));
    out
}

/// A JWT-shaped token: `eyJ` + base64url, `.`, base64url, `.`, base64url (≥ 16 chars each part).
pub fn find_jwt(text: &str) -> Option<String> {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut from = 0;
    while let Some(i) = text[from..].find("eyJ") {
        let start = from + i;
        let rest = &text[start..];
        let parts: Vec<&str> = rest.splitn(4, '.').collect();
        if parts.len() >= 3 {
            let p0 = parts[0];
            let p1 = parts[1];
            let p2: String = parts[2].chars().take_while(|c| is_b64(*c)).collect();
            if p0.chars().all(is_b64)
                && p0.len() >= 16
                && p1.len() >= 16
                && p1.chars().all(is_b64)
                && p2.len() >= 16
            {
                return Some(format!("{}.{}.{}…", p0, &p1[..16.min(p1.len())], &p2[..8]));
            }
        }
        from = start + 3;
    }
    None
}

/// Scan; returns one line per finding (empty = clean).
pub fn scan(corpora: &[Corpus], secrets: &[(String, String)]) -> Vec<String> {
    let needles = needles(secrets);
    let mut findings = Vec::new();
    for c in corpora {
        for (what, v) in &needles {
            if let Some(pos) = c.text.find(v.as_str()) {
                let mut lo = pos.saturating_sub(120);
                while !c.text.is_char_boundary(lo) {
                    lo -= 1;
                }
                let ctx = &c.text[lo..pos];
                findings.push(format!("{what} found in {} after …{ctx}", c.name));
            }
        }
        if let Some(j) = find_jwt(&c.text) {
            findings.push(format!("a JWT-shaped token ({j}) found in {}", c.name));
        }
    }
    findings
}

/// Gather and scan; panics with every finding.
pub async fn assert_no_leaks(bed: &Bed, extra: Vec<Corpus>) {
    let corpora = gather(bed, extra).await;
    let secrets = bed.secret_values();
    assert!(
        secrets.len() >= 4,
        "the scan needs real secret values, got {}",
        secrets.len()
    );
    assert!(
        secrets
            .iter()
            .any(|(what, _)| what.starts_with("signature of issued bearer token")),
        "no bearer token was issued, so none would be checked"
    );
    let findings = scan(&corpora, &secrets);
    let sizes: Vec<String> = corpora
        .iter()
        .map(|c| format!("{}: {} bytes", c.name, c.text.len()))
        .collect();
    assert!(
        findings.is_empty(),
        "secret leak(s):\n{}\n(scanned {})",
        findings.join("\n"),
        sizes.join("; ")
    );
    eprintln!(
        "leak scan clean: {} secret values x {} corpora ({})",
        secrets.len(),
        corpora.len(),
        sizes.join("; ")
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn jwt_detection() {
        assert!(super::find_jwt("Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQ.c2lnbmF0dXJlc2lnbmF0dXJl").is_some());
        assert!(super::find_jwt("eyJ short.no.no").is_none());
    }

    /// Positive control: the scan finds a planted secret, raw and base64-encoded.
    #[test]
    fn scan_finds_planted_secrets() {
        use base64::Engine;
        let secret = (
            "key1 of acct".to_string(),
            "s3cr3t-account-key-value-0123456789".to_string(),
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&secret.1);
        for text in [
            format!("level=debug msg=\"got {}\"", secret.1),
            format!("{{\"data\":\"{b64}\"}}"),
        ] {
            let c = super::Corpus {
                name: "t".into(),
                text,
            };
            assert_eq!(super::scan(&[c], std::slice::from_ref(&secret)).len(), 1);
        }
        let clean = super::Corpus {
            name: "t".into(),
            text: "nothing to see".into(),
        };
        assert!(super::scan(&[clean], &[secret]).is_empty());
    }
}
