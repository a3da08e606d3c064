//! The policy of an AIWorkspace, pure: from what Azure answered for the workspace (or why it
//! could not be asked), the status to show and whether to retry. The workspace is Ready when
//! Azure has it; its region is where its ModelDeployments' VM quota is counted.

use super::status::{EventSpec, ready_condition, set_condition};
use crate::crd::AIWorkspaceStatus;
use crate::error::{AzureError, ErrorClass};
use crate::reason::*;
use serde_json::Value;

/// What the reconciler learnt.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkspaceObserved {
    CredentialError(String),
    Azure(Result<Option<Value>, AzureError>),
}

/// The status to save, its events, and the error to retry with backoff (a transient failure).
#[derive(Clone, Debug, PartialEq)]
pub struct WorkspaceOutcome {
    pub status: AIWorkspaceStatus,
    pub events: Vec<EventSpec>,
    pub retry: Option<AzureError>,
}

pub fn decide_workspace(
    prev: &AIWorkspaceStatus,
    generation: i64,
    observed: WorkspaceObserved,
    now: &str,
) -> WorkspaceOutcome {
    let mut st = prev.clone();
    st.observed_generation = Some(generation);
    let (ok, reason, message, retry) = match observed {
        WorkspaceObserved::CredentialError(m) => (false, CREDENTIAL_ERROR.to_string(), m, None),
        WorkspaceObserved::Azure(Ok(Some(ws))) => {
            st.azure_resource_id = ws["id"].as_str().map(str::to_string);
            st.location = ws["location"].as_str().map(str::to_ascii_lowercase);
            st.kind = ws["kind"].as_str().map(str::to_string);
            (true, READY.to_string(), format!("Azure ML workspace {} ({}) in {}", ws["name"].as_str().unwrap_or_default(), st.kind.as_deref().unwrap_or("Default"), st.location.as_deref().unwrap_or("?")), None)
        }
        WorkspaceObserved::Azure(Ok(None)) => (false, WORKSPACE_NOT_FOUND.to_string(), "Azure has no such workspace: check spec.subscriptionId, spec.resourceGroup and spec.workspaceName".to_string(), None),
        WorkspaceObserved::Azure(Err(e)) => match e.class {
            ErrorClass::Transient => {
                let msg = e.to_string();
                (false, AZURE_UNAVAILABLE.to_string(), msg, Some(e))
            }
            ErrorClass::Auth => (false, AUTHORIZATION_FAILED.to_string(), format!("{e} — grant the AIWorkspace's identity AzureML Data Scientist (or Contributor) on the workspace, and check spec.credential"), None),
            _ => (false, e.code.clone(), e.to_string(), None),
        },
    };
    let before = ready_condition(&prev.conditions).map(|c| (c.status.clone(), c.reason.clone()));
    set_condition(
        &mut st.conditions,
        "Ready",
        ok,
        &reason,
        &message,
        Some(generation),
        now,
    );
    let changed = before
        != Some((
            (if ok { "True" } else { "False" }).to_string(),
            reason.clone(),
        ));
    let mut events = vec![];
    if changed {
        st.last_sync_time = Some(now.to_string());
        if !ok {
            events.push(EventSpec::warning(&reason, "Check", message));
        }
    }
    WorkspaceOutcome {
        status: st,
        events,
        retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_workspace_azure_has_is_ready_with_its_region() {
        let ws = json!({"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/p", "name": "p", "location": "EastUS", "kind": "Project"});
        let o = decide_workspace(
            &Default::default(),
            1,
            WorkspaceObserved::Azure(Ok(Some(ws))),
            "t1",
        );
        assert_eq!(o.status.location.as_deref(), Some("eastus"));
        assert_eq!(o.status.kind.as_deref(), Some("Project"));
        let c = ready_condition(&o.status.conditions).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", READY));
        assert!(o.events.is_empty() && o.retry.is_none());
        // Unchanged on the next check: nothing moves (steady state writes nothing).
        let again = decide_workspace(
            &o.status,
            1,
            WorkspaceObserved::Azure(Ok(Some(
                json!({"id": o.status.azure_resource_id, "name": "p", "location": "EastUS", "kind": "Project"}),
            ))),
            "t2",
        );
        assert_eq!(again.status, o.status);
    }

    #[test]
    fn failures_name_what_to_do_and_only_transient_ones_retry() {
        let missing = decide_workspace(
            &Default::default(),
            1,
            WorkspaceObserved::Azure(Ok(None)),
            "t",
        );
        let c = ready_condition(&missing.status.conditions).unwrap();
        assert_eq!(c.reason, WORKSPACE_NOT_FOUND);
        assert!(c.message.contains("spec.workspaceName"));
        assert_eq!(missing.events.len(), 1);
        let auth = AzureError::response(
            "ml.workspaces.get",
            403,
            "AuthorizationFailed".into(),
            "no".into(),
            None,
        );
        let o = decide_workspace(
            &Default::default(),
            1,
            WorkspaceObserved::Azure(Err(auth)),
            "t",
        );
        assert_eq!(
            ready_condition(&o.status.conditions).unwrap().reason,
            AUTHORIZATION_FAILED
        );
        assert!(o.retry.is_none());
        let busy = AzureError::response(
            "ml.workspaces.get",
            503,
            "ServiceUnavailable".into(),
            "later".into(),
            None,
        );
        let o = decide_workspace(
            &Default::default(),
            1,
            WorkspaceObserved::Azure(Err(busy)),
            "t",
        );
        assert!(o.retry.is_some());
        let o = decide_workspace(
            &Default::default(),
            1,
            WorkspaceObserved::CredentialError("Secret x missing".into()),
            "t",
        );
        assert_eq!(
            ready_condition(&o.status.conditions).unwrap().reason,
            CREDENTIAL_ERROR
        );
    }
}
