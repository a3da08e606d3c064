//! Pre-validation of a planned write against the account's model catalog and the
//! subscription's quota (read only when a write is planned), so a request Azure would reject —
//! an unknown model or version, an unsupported SKU, a capacity outside the model's rules for the
//! SKU (`skus[].capacity`: minimum, maximum, step, allowed values, e.g. the PTU minimum and
//! increment), or quota exceeded — ends as Ready=False with a reason that says what is allowed,
//! and no write. Pure. Azure still enforces everything: when the catalog or usage is unknown,
//! the write goes ahead.

use crate::azure::arm::{AccountModel, CapacityConfig, Deployment, Usage};
use crate::crd::CognitiveSpec;
use crate::reason;

/// A rejection with its reason and a message that says what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

fn eq(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.eq_ignore_ascii_case(b))
}

/// Does this catalog entry describe model `name` (by its name, its `name.version` form, or its base model)?
fn names_model(m: &AccountModel, format: &str, name: &str) -> bool {
    let format_ok = m
        .format
        .as_deref()
        .is_none_or(|f| f.eq_ignore_ascii_case(format));
    let version = m.version.as_deref().unwrap_or_default();
    let by_name =
        eq(m.name.as_deref(), name) || eq(m.name.as_deref(), &format!("{name}.{version}"));
    let by_base = m
        .base_model
        .as_ref()
        .is_some_and(|b| eq(b.name.as_deref(), name));
    format_ok && (by_name || by_base)
}

fn entry_version(m: &AccountModel) -> Option<&str> {
    m.version
        .as_deref()
        .or(m.base_model.as_ref().and_then(|b| b.version.as_deref()))
}

/// Check the spec against the catalog. Returns the usage name of the SKU when known.
pub fn check_catalog(
    spec: &CognitiveSpec,
    models: &[AccountModel],
) -> Result<Option<String>, Rejection> {
    if models.is_empty() {
        return Ok(None); // unknown catalog: let Azure decide
    }
    let (format, name) = (spec.model.format.as_str(), spec.model.name.as_str());
    let candidates: Vec<&AccountModel> = models
        .iter()
        .filter(|m| names_model(m, format, name))
        .collect();
    if candidates.is_empty() {
        return Err(Rejection {
            code: reason::DEPLOYMENT_MODEL_NOT_SUPPORTED,
            message: format!(
                "the account does not offer model {format}/{name}: check spec.model.format and spec.model.name against the account's models (az cognitiveservices account list-models)"
            ),
        });
    }
    if spec.model.version.is_some() && candidates.iter().all(|m| entry_version(m).is_none()) {
        return Ok(None); // the catalog does not list versions for this model
    }
    let chosen: Vec<&AccountModel> = match &spec.model.version {
        Some(v) => candidates
            .iter()
            .copied()
            .filter(|m| eq(entry_version(m), v))
            .collect(),
        None => {
            let d: Vec<_> = candidates
                .iter()
                .copied()
                .filter(|m| m.is_default_version == Some(true))
                .collect();
            if d.is_empty() { candidates.clone() } else { d }
        }
    };
    let Some(model) = chosen.first() else {
        let mut versions: Vec<&str> = candidates.iter().filter_map(|m| entry_version(m)).collect();
        versions.sort();
        versions.dedup();
        return Err(Rejection {
            code: reason::DEPLOYMENT_MODEL_NOT_SUPPORTED,
            message: format!(
                "model {format}/{name} has no version {:?} on this account; available: {}. Fix spec.model.version (or omit it for Azure's default)",
                spec.model.version.clone().unwrap_or_default(),
                versions.join(", ")
            ),
        });
    };
    let sku = spec.sku.name.as_str();
    let Some(skus) = &model.skus else {
        return Ok(None);
    };
    let Some(s) = skus.iter().find(|s| eq(s.name.as_deref(), sku)) else {
        let offered: Vec<&str> = skus.iter().filter_map(|s| s.name.as_deref()).collect();
        return Err(Rejection {
            code: reason::INVALID_RESOURCE_PROPERTIES,
            message: format!(
                "SKU {sku} is not supported for model {name} {} on this account; supported: {}. Fix spec.sku.name",
                entry_version(model).unwrap_or_default(),
                offered.join(", ")
            ),
        });
    };
    let rules = s.capacity.clone().unwrap_or_default();
    let rules = CapacityConfig {
        maximum: rules.maximum.or(model.max_capacity),
        ..rules
    };
    check_capacity(spec.sku.capacity, &rules).map_err(|allowed| Rejection {
        code: reason::INVALID_CAPACITY,
        message: format!(
            "capacity {} is not allowed for {name} {} with SKU {sku} on this account: {allowed}. Fix spec.sku.capacity",
            spec.sku.capacity,
            entry_version(model).unwrap_or_default(),
        ),
    })?;
    Ok(s.usage_name.clone())
}

/// Check a capacity against the model's rules for the SKU; Err names what is allowed.
pub fn check_capacity(capacity: i32, rules: &CapacityConfig) -> Result<(), String> {
    let c = i64::from(capacity);
    if let Some(allowed) = rules.allowed_values.as_ref().filter(|a| !a.is_empty()) {
        if allowed.contains(&c) {
            return Ok(());
        }
        let list: Vec<String> = allowed.iter().map(i64::to_string).collect();
        return Err(format!("the allowed values are {}", list.join(", ")));
    }
    let min = rules.minimum.unwrap_or(1).max(1);
    let step = rules.step.unwrap_or(1).max(1);
    let in_range = c >= min && rules.maximum.is_none_or(|max| c <= max);
    if in_range && (c - min) % step == 0 {
        return Ok(());
    }
    let upto = rules
        .maximum
        .map(|m| format!(" to {m}"))
        .unwrap_or_else(|| " or more".into());
    Err(if step > 1 {
        let examples: Vec<String> = (0..3).map(|i| (min + i * step).to_string()).collect();
        format!(
            "allowed are {min}{upto} in steps of {step} ({}, ...)",
            examples.join(", ")
        )
    } else {
        format!("allowed are {min}{upto}")
    })
}

/// Check the quota: the capacity this write needs beyond what the deployment already holds.
pub fn check_quota(
    spec: &CognitiveSpec,
    usage_name: &str,
    usages: &[Usage],
    observed: Option<&Deployment>,
) -> Result<(), Rejection> {
    let Some(u) = usages
        .iter()
        .find(|u| eq(u.name.as_ref().and_then(|n| n.value.as_deref()), usage_name))
    else {
        return Ok(()); // unknown usage: let Azure decide
    };
    let (Some(limit), Some(current)) = (u.limit, u.current_value) else {
        return Ok(());
    };
    let held = observed
        .filter(|d| {
            let m = d.props().model.unwrap_or_default();
            eq(m.name.as_deref(), &spec.model.name)
                && eq(
                    d.sku.as_ref().map(|s| s.name.as_str()),
                    spec.sku.name.as_str(),
                )
        })
        .and_then(|d| d.sku.as_ref().and_then(|s| s.capacity))
        .unwrap_or(0) as f64;
    let available = (limit - current + held).max(0.0);
    let need = f64::from(spec.sku.capacity);
    if need > available {
        let display = u
            .name
            .as_ref()
            .and_then(|n| n.localized_value.clone())
            .unwrap_or_else(|| usage_name.to_string());
        return Err(Rejection {
            code: reason::INSUFFICIENT_QUOTA,
            message: format!(
                "this deployment needs capacity {need} of quota {display}, but only {available} is available (usage {current} of limit {limit}): lower spec.sku.capacity, free capacity elsewhere, or request more quota"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn models() -> Vec<AccountModel> {
        serde_json::from_value(json!([
            {"name": "gpt-4o-mini.2024-07-18", "format": "OpenAI", "version": "2024-07-18", "isDefaultVersion": true,
             "baseModel": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"}, "maxCapacity": 1000,
             "skus": [{"name": "GlobalStandard", "usageName": "OpenAI.GlobalStandard.gpt-4o-mini", "capacity": {"maximum": 1000}},
                      {"name": "Standard", "usageName": "OpenAI.Standard.gpt-4o-mini", "capacity": {"maximum": 50}}]},
            {"name": "gpt-4o", "format": "OpenAI", "version": "2024-08-06", "isDefaultVersion": true,
             "skus": [{"name": "GlobalStandard", "usageName": "OpenAI.GlobalStandard.gpt-4o"}]},
            {"name": "gpt-4o", "format": "OpenAI", "version": "2024-05-13",
             "skus": [{"name": "GlobalStandard", "usageName": "OpenAI.GlobalStandard.gpt-4o"}]},
            {"name": "dall-e-3", "format": "OpenAI"}
        ]))
        .unwrap()
    }

    fn spec(v: serde_json::Value) -> CognitiveSpec {
        let mut base = json!({"accountRef": {"name": "a"}, "model": {"name": "gpt-4o-mini", "version": "2024-07-18"},
            "sku": {"name": "GlobalStandard", "capacity": 10}});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn catalog_table() {
        let m = models();
        let ok = |s| check_catalog(&spec(s), &m);
        assert_eq!(
            ok(json!({})).unwrap().as_deref(),
            Some("OpenAI.GlobalStandard.gpt-4o-mini")
        );
        assert!(
            ok(json!({"model": {"name": "gpt-4o-mini"}})).is_ok(),
            "default version"
        );
        assert!(ok(json!({"model": {"name": "gpt-4o", "version": "2024-05-13"}})).is_ok());
        assert_eq!(
            ok(json!({"model": {"name": "gpt-5"}})).unwrap_err().code,
            "DeploymentModelNotSupported"
        );
        let e = ok(json!({"model": {"name": "gpt-4o", "version": "1999-01-01"}})).unwrap_err();
        assert_eq!(e.code, "DeploymentModelNotSupported");
        assert!(
            e.message.contains("2024-05-13, 2024-08-06"),
            "{}",
            e.message
        );
        assert_eq!(
            ok(json!({"sku": {"name": "GlobalBatch", "capacity": 1}}))
                .unwrap_err()
                .code,
            "InvalidResourceProperties"
        );
        let e = ok(json!({"sku": {"name": "Standard", "capacity": 51}})).unwrap_err();
        assert_eq!(e.code, "InvalidCapacity");
        assert!(e.message.contains("allowed are 1 to 50"), "{}", e.message);
        assert!(
            ok(json!({"model": {"name": "dall-e-3", "version": "3.0"}})).is_ok(),
            "no version info: let Azure decide"
        );
        assert!(
            check_catalog(&spec(json!({"model": {"name": "x"}})), &[]).is_ok(),
            "unknown catalog"
        );
        assert_eq!(
            ok(json!({"model": {"format": "Microsoft", "name": "gpt-4o-mini"}}))
                .unwrap_err()
                .code,
            "DeploymentModelNotSupported"
        );
    }

    #[test]
    fn capacity_rules_table() {
        let rules = |v: serde_json::Value| -> CapacityConfig { serde_json::from_value(v).unwrap() };
        // PTU: a minimum and an increment (e.g. GlobalProvisionedManaged: 15, then steps of 5).
        let ptu = rules(json!({"minimum": 15, "maximum": 10000, "step": 5, "default": 15}));
        for (c, ok) in [
            (15, true),
            (20, true),
            (3, false),
            (16, false),
            (10000, true),
            (10005, false),
        ] {
            assert_eq!(check_capacity(c, &ptu).is_ok(), ok, "{c}");
        }
        assert_eq!(
            check_capacity(3, &ptu).unwrap_err(),
            "allowed are 15 to 10000 in steps of 5 (15, 20, 25, ...)"
        );
        let listed = rules(json!({"allowedValues": [50, 100, 200]}));
        assert!(check_capacity(100, &listed).is_ok());
        assert_eq!(
            check_capacity(75, &listed).unwrap_err(),
            "the allowed values are 50, 100, 200"
        );
        assert!(
            check_capacity(1, &CapacityConfig::default()).is_ok(),
            "no rules: anything from 1"
        );
        assert_eq!(
            check_capacity(0, &rules(json!({"maximum": 10}))).unwrap_err(),
            "allowed are 1 to 10"
        );
        // Through the catalog: a PTU entry with its rules.
        let m: Vec<AccountModel> = serde_json::from_value(json!([
            {"name": "gpt-4o", "format": "OpenAI", "version": "2024-11-20", "isDefaultVersion": true,
             "skus": [{"name": "GlobalProvisionedManaged", "usageName": "OpenAI.GlobalProvisionedManaged",
                       "capacity": {"minimum": 15, "maximum": 10000, "step": 5}}]}
        ]))
        .unwrap();
        let s = spec(
            json!({"model": {"name": "gpt-4o"}, "sku": {"name": "GlobalProvisionedManaged", "capacity": 3}}),
        );
        let e = check_catalog(&s, &m).unwrap_err();
        assert_eq!(e.code, "InvalidCapacity");
        assert!(e.message.contains("steps of 5"), "{}", e.message);
        let s = spec(
            json!({"model": {"name": "gpt-4o"}, "sku": {"name": "GlobalProvisionedManaged", "capacity": 25}}),
        );
        assert!(check_catalog(&s, &m).is_ok());
    }

    #[test]
    fn quota_table() {
        let usages: Vec<Usage> = serde_json::from_value(json!([
            {"name": {"value": "OpenAI.GlobalStandard.gpt-4o-mini", "localizedValue": "TPM gpt-4o-mini"}, "currentValue": 8, "limit": 20}
        ]))
        .unwrap();
        let u = "OpenAI.GlobalStandard.gpt-4o-mini";
        assert!(check_quota(&spec(json!({})), u, &usages, None).is_ok());
        assert_eq!(
            check_quota(
                &spec(json!({"sku": {"name": "GlobalStandard", "capacity": 13}})),
                u,
                &usages,
                None
            )
            .unwrap_err()
            .code,
            "InsufficientQuota"
        );
        // Growing an existing deployment from 8 to 20 fits: its own 8 are already counted.
        let d: Deployment =
            serde_json::from_value(json!({"sku": {"name": "GlobalStandard", "capacity": 8},
            "properties": {"model": {"name": "gpt-4o-mini"}}}))
            .unwrap();
        assert!(
            check_quota(
                &spec(json!({"sku": {"name": "GlobalStandard", "capacity": 20}})),
                u,
                &usages,
                Some(&d)
            )
            .is_ok()
        );
        assert!(
            check_quota(
                &spec(json!({"sku": {"name": "GlobalStandard", "capacity": 21}})),
                u,
                &usages,
                Some(&d)
            )
            .is_err()
        );
        assert!(
            check_quota(&spec(json!({})), "Other.usage", &usages, None).is_ok(),
            "unknown usage"
        );
    }
}
