//! The operator's tests on the real control plane: attach to this test binary's shared control
//! plane, take its cluster-wide lock (each test runs an operator, which watches every
//! namespace, so tests of one binary run their operators one at a time), clear what an earlier
//! test may have left (AIAccounts and ModelDeployments, finalizers included; its namespaces),
//! and install the CRDs. Shared by tests/common and tests/support_chaos.
#![allow(dead_code)]

use aoai_operator::crd::{AIAccount, AIWorkspace, ModelDeployment};
use kube::core::ApiResource;
use testbed::harness::{Cluster, Exclusive};

pub use testbed::controlplane::Options;

/// A cluster to run one operator test on, held exclusively until the guard is dropped.
pub struct Prepared {
    pub cluster: Cluster,
    pub client: kube::Client,
    pub exclusive: Exclusive,
}

pub async fn prepare(options: Options, owned: bool) -> Prepared {
    let cluster = if owned {
        Cluster::owned(options).await
    } else {
        Cluster::shared_with(options).await
    }
    .unwrap_or_else(|e| panic!("the Kubernetes control plane did not start: {e:#}"));
    let exclusive = cluster.exclusive().await.expect("cluster lock");
    cluster
        .purge(&ApiResource::erase::<ModelDeployment>(&()))
        .await
        .ok();
    cluster
        .purge(&ApiResource::erase::<AIAccount>(&()))
        .await
        .ok();
    cluster
        .purge(&ApiResource::erase::<AIWorkspace>(&()))
        .await
        .ok();
    cluster
        .delete_test_namespaces()
        .await
        .expect("delete earlier tests' namespaces");
    cluster
        .apply_crds(&aoai_operator::crd::crds())
        .await
        .unwrap_or_else(|e| panic!("the apiserver refused the CRDs: {e:#}"));
    let client = cluster.client().await.expect("admin client");
    Prepared {
        cluster,
        client,
        exclusive,
    }
}
