//! Table tests of `decide_ml`: every branch of the managed-compute, serverless and deletion
//! policies from hand-built snapshots.

use super::*;

#[test]
fn a_new_managed_compute_deployment_reads_the_endpoint_first() {
    let s = fixtures::managed();
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Endpoint));
}

pub(super) mod fixtures {
    use super::*;
    use crate::crd::ManagedComputeSpec;

    pub fn managed() -> MlSnapshot {
        let mc: ManagedComputeSpec = serde_json::from_value(json!({
            "model": "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1",
            "instanceType": "Standard_NC24ads_A100_v4",
            "instanceCount": 1,
        }))
        .unwrap();
        MlSnapshot {
            md: MlResource {
                owner: "team-a/phi".into(),
                generation: 1,
                form: Form::ManagedCompute(mc),
                endpoint_name: "team-a-phi".into(),
                deletion_policy: DeletionPolicy::Delete,
                adopt_existing: false,
                status: Default::default(),
            },
            workspace: WorkspaceFacts {
                exists: true,
                deleting: false,
                namespace_allowed: true,
                id: Some(WorkspaceId {
                    subscription_id: "sub".into(),
                    resource_group: "rg".into(),
                    name: "proj".into(),
                }),
                location: Some("eastus".into()),
                marketplace: Default::default(),
                vault_uri: "https://kv.vault.azure.net/".into(),
                secret_prefix: "shared-ws".into(),
            },
            credential_error: None,
            read_error: None,
            write_error: None,
            poll: Known::Unknown,
            endpoint: Known::Unknown,
            deployments: Known::Unknown,
            model: Known::Unknown,
            vm: Known::Unknown,
            quota: Known::Unknown,
            marketplace: Known::Unknown,
            stored_key: None,
            now: "2026-12-04T00:00:00Z".into(),
            timing: MlTiming {
                poll_interval: Duration::from_secs(5),
                resync: Duration::from_secs(300),
                backoff: Duration::from_secs(2),
            },
            deleting: false,
        }
    }
}
