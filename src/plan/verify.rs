//! The `Verified` condition of a Cognitive Services deployment, pure: whether a pass that ends
//! Ready should make its one data-plane check (opt-in, once per generation, none for batch
//! deployments, an embedding call for embedding models, a one-token chat completion otherwise),
//! and the condition its outcome sets. A transient failure (throttled, unavailable,
//! unreachable) records nothing, so the check is made again on the next pass — at the resync,
//! never in a loop; a definite answer is kept until the spec changes.

use super::status::{ready_condition, set_condition};
use crate::crd::{CognitiveSpec, ModelDeploymentStatus, SkuName};

pub const VERIFIED: &str = "Verified";

/// The data-plane call to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `chat/completions` with `max_tokens: 1`.
    Chat,
    /// `embeddings` of one word.
    Embedding,
}

/// What the data plane answered.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeOutcome {
    Answered,
    /// The data plane's error (code, message): the deployment does not serve.
    Refused {
        code: String,
        message: String,
    },
    /// Throttled, unavailable or unreachable: try again on a later pass.
    Transient,
}

/// Whether verification is wanted: the deployment's own choice, else its account's.
pub fn wanted(spec: &CognitiveSpec, account_default: bool) -> bool {
    spec.verify.unwrap_or(account_default)
}

/// The check to make now, if any: wanted, Ready for this generation, not yet verified for it,
/// and a deployment that answers synchronous calls.
pub fn probe(
    spec: &CognitiveSpec,
    status: &ModelDeploymentStatus,
    generation: i64,
    wanted: bool,
) -> Option<Probe> {
    if !wanted || matches!(spec.sku.name, SkuName::GlobalBatch | SkuName::DataZoneBatch) {
        return None;
    }
    let ready = ready_condition(&status.conditions)
        .is_some_and(|c| c.status == "True" && c.observed_generation == Some(generation));
    let done = status
        .conditions
        .iter()
        .any(|c| c.type_ == VERIFIED && c.observed_generation == Some(generation));
    if !ready || done || status.pending_operation.is_some() {
        return None;
    }
    Some(
        if spec.model.name.to_ascii_lowercase().contains("embedding") {
            Probe::Embedding
        } else {
            Probe::Chat
        },
    )
}

/// Record the outcome in the status (nothing for a transient one).
pub fn record(
    status: &mut ModelDeploymentStatus,
    outcome: &ProbeOutcome,
    generation: i64,
    now: &str,
) {
    let (ok, reason, message) = match outcome {
        ProbeOutcome::Transient => return,
        ProbeOutcome::Answered => (
            true,
            VERIFIED.to_string(),
            "the deployment answered a minimal data-plane call with the stored key".to_string(),
        ),
        ProbeOutcome::Refused { code, message } => (
            false,
            code.clone(),
            format!("the data plane refused a minimal call with the stored key: {message}"),
        ),
    };
    set_condition(
        &mut status.conditions,
        VERIFIED,
        ok,
        &reason,
        &message,
        Some(generation),
        now,
    );
}

/// Verification no longer wanted: drop the condition.
pub fn forget(status: &mut ModelDeploymentStatus, wanted: bool) {
    if !wanted {
        status.conditions.retain(|c| c.type_ != VERIFIED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(sku: &str, model: &str, verify: Option<bool>) -> CognitiveSpec {
        let mut v = json!({"accountRef": {"name": "a"}, "model": {"name": model},
                           "sku": {"name": sku, "capacity": 1}});
        if let Some(b) = verify {
            v["verify"] = json!(b);
        }
        serde_json::from_value(v).unwrap()
    }

    fn ready(generation: i64) -> ModelDeploymentStatus {
        let mut st = ModelDeploymentStatus::default();
        set_condition(
            &mut st.conditions,
            "Ready",
            true,
            "Ready",
            "ok",
            Some(generation),
            "t",
        );
        st
    }

    #[test]
    fn a_ready_deployment_is_verified_once_per_generation() {
        let s = spec("GlobalStandard", "gpt-4o-mini", Some(true));
        assert_eq!(probe(&s, &ready(2), 2, true), Some(Probe::Chat));
        let mut st = ready(2);
        record(&mut st, &ProbeOutcome::Answered, 2, "t2");
        assert_eq!(
            probe(&s, &st, 2, true),
            None,
            "never again for the same generation"
        );
        let v = st.conditions.iter().find(|c| c.type_ == VERIFIED).unwrap();
        assert_eq!((v.status.as_str(), v.reason.as_str()), ("True", VERIFIED));
        // A spec change (new generation, Ready again) is verified again.
        set_condition(
            &mut st.conditions,
            "Ready",
            true,
            "Ready",
            "ok",
            Some(3),
            "t3",
        );
        assert_eq!(probe(&s, &st, 3, true), Some(Probe::Chat));
    }

    #[test]
    fn what_is_not_checked() {
        let s = spec("GlobalStandard", "gpt-4o-mini", None);
        assert_eq!(probe(&s, &ready(1), 1, false), None, "not wanted");
        assert_eq!(
            probe(&s, &ready(1), 2, true),
            None,
            "Ready for an older generation"
        );
        let mut pending = ready(1);
        pending.pending_operation = Some(Default::default());
        assert_eq!(probe(&s, &pending, 1, true), None, "an operation runs");
        let batch = spec("GlobalBatch", "gpt-4o-mini", Some(true));
        assert_eq!(
            probe(&batch, &ready(1), 1, true),
            None,
            "batch answers no calls"
        );
        let emb = spec("Standard", "text-embedding-3-small", Some(true));
        assert_eq!(probe(&emb, &ready(1), 1, true), Some(Probe::Embedding));
    }

    #[test]
    fn the_deployment_overrides_the_account() {
        assert!(wanted(&spec("Standard", "m", Some(true)), false));
        assert!(!wanted(&spec("Standard", "m", Some(false)), true));
        assert!(wanted(&spec("Standard", "m", None), true));
    }

    #[test]
    fn a_refusal_names_the_data_planes_error_and_a_transient_failure_records_nothing() {
        let mut st = ready(1);
        record(&mut st, &ProbeOutcome::Transient, 1, "t");
        assert!(st.conditions.iter().all(|c| c.type_ != VERIFIED));
        record(
            &mut st,
            &ProbeOutcome::Refused {
                code: "DeploymentNotReady".into(),
                message: "the model is warming up".into(),
            },
            1,
            "t",
        );
        let v = st.conditions.iter().find(|c| c.type_ == VERIFIED).unwrap();
        assert_eq!(v.status, "False");
        assert_eq!(v.reason, "DeploymentNotReady");
        assert!(v.message.contains("warming up"));
        forget(&mut st, false);
        assert!(st.conditions.iter().all(|c| c.type_ != VERIFIED));
    }
}
