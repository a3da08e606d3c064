//! Pure status helpers: conditions (keeping lastTransitionTime when the status does not change),
//! what a ModelDeployment's status shows of an observed Azure deployment, and event specs.

use crate::azure::arm::Deployment;
use crate::crd::{Condition, ModelDeploymentStatus, RateLimit, ResolvedModel};

/// Set a condition, keeping lastTransitionTime when the status did not change.
pub fn set_condition(
    conds: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) {
    let status = if ok { "True" } else { "False" };
    let prev = conds.iter().find(|c| c.type_ == type_).cloned();
    let ltt = match &prev {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(now.to_string()),
    };
    conds.retain(|c| c.type_ != type_);
    conds.push(Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: truncate(message, 1000),
        observed_generation: generation,
        last_transition_time: ltt,
    });
}

pub fn ready_condition(conds: &[Condition]) -> Option<&Condition> {
    conds.iter().find(|c| c.type_ == "Ready")
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What the status shows of the Azure deployment.
pub fn show_deployment(st: &mut ModelDeploymentStatus, d: &Deployment) {
    let p = d.props();
    st.azure_resource_id = d.id.clone();
    st.provisioning_state = p.provisioning_state.clone();
    st.model = p.model.as_ref().map(|m| ResolvedModel {
        format: m.format.clone(),
        name: m.name.clone(),
        version: m.version.clone(),
    });
    st.sku_name = d.sku.as_ref().map(|s| s.name.clone());
    st.capacity = p
        .current_capacity
        .or(d.sku.as_ref().and_then(|s| s.capacity));
    st.deployment_state = p.deployment_state.clone();
    st.rate_limits = p
        .rate_limits
        .unwrap_or_default()
        .into_iter()
        .map(|r| RateLimit {
            key: r.key,
            count: r.count,
            renewal_period: r.renewal_period,
        })
        .collect();
}

/// An event to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSpec {
    pub warning: bool,
    pub reason: String,
    pub action: &'static str,
    pub note: String,
}

impl EventSpec {
    pub fn normal(reason: &str, action: &'static str, note: String) -> Self {
        EventSpec {
            warning: false,
            reason: reason.into(),
            action,
            note,
        }
    }
    pub fn warning(reason: &str, action: &'static str, note: String) -> Self {
        EventSpec {
            warning: true,
            reason: reason.into(),
            action,
            note,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut c = vec![];
        set_condition(&mut c, "Ready", false, "Creating", "a", Some(1), "t1");
        set_condition(&mut c, "Ready", false, "Updating", "b", Some(2), "t2");
        assert_eq!(c[0].last_transition_time.as_deref(), Some("t1"));
        assert_eq!(c[0].reason, "Updating");
        set_condition(&mut c, "Ready", true, "Ready", "c", Some(2), "t3");
        assert_eq!(c[0].last_transition_time.as_deref(), Some("t3"));
        assert_eq!(c.len(), 1);
        assert_eq!(truncate("héllo", 2), "h…");
    }
}
