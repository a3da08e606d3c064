//! Chaos suite (issue 6): 50 ModelDeployments over 3 accounts on the real control plane while
//! the Azure emulator injects faults (in turn, then together), the operator's watches end with
//! `410 Expired` (etcd compaction, watch cache off) and are cut mid-stream (a proxy between the
//! operator and the apiserver), the apiserver is killed and restarted, the operator is killed
//! and restarted mid-operation, and the leader of two replicas is killed. Every scenario ends
//! with the invariants of `support_chaos::invariants` (from Kubernetes, the emulator's state and
//! request log) and the secret-leak scan.
//!
//! Bounded: short provisioning delays (60–800 ms), fast resyncs, ARM Retry-After scaled to 0 s;
//! each scenario takes well under a minute on 2 cores.

mod support_chaos;

use aoai_operator::leader::LeaderSettings;
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;
use std::time::{Duration, Instant};
use support_chaos::invariants::{Expectations, assert_converged, writes_by_principal};
use support_chaos::{Bed, BedOptions, is_write_request, wait_for};
use testbed::azure::{Fault, FaultAction, Surface};

const ACCOUNTS: usize = 3;

/// Every scenario of this binary shares one control plane: watches served by etcd (so
/// compaction expires them) and an audit log (so a test can count the operator's re-lists).
fn chaos_defaults() -> BedOptions {
    BedOptions {
        kube: support_chaos::cluster::Options {
            watch_cache: false,
            audit_log: true,
        },
        ..Default::default()
    }
}

/// Every `period`, compact etcd (every `compact_every`-th time) and cut the operator's
/// connections: the quiet ones (nothing sent for 300 ms: watch streams mid-stream, idle pooled
/// connections) two rounds in three, every connection (requests in flight too) the third,
/// until `stop`; returns how many rounds ran.
fn watch_chaos(
    bed: &Bed,
    period: Duration,
    compact_every: u32,
    stop: tokio_util::sync::CancellationToken,
    max_rounds: Option<u32>,
) -> tokio::task::JoinHandle<u32> {
    let proxy = bed.proxy.clone();
    let etcd = bed.cluster.etcd_url().to_string();
    tokio::spawn(async move {
        let mut n = 0u32;
        while !stop.is_cancelled() && max_rounds.is_none_or(|m| n < m) {
            tokio::time::sleep(period).await;
            if n % compact_every == 0 {
                testbed::controlplane::server::compact_etcd(&etcd)
                    .await
                    .expect("compact etcd");
            }
            // Mostly the quiet connections (watch streams mid-stream, idle ones); every third
            // round every connection, requests in flight too (a status save after an accepted
            // write, for one, is lost and must be made good by the next pass).
            if n % 3 == 2 {
                proxy.cut();
            } else {
                proxy.cut_quiet(Duration::from_millis(300));
            }
            n += 1;
        }
        n
    })
}
const CONVERGE: Duration = Duration::from_secs(90);

fn fault(
    surface: Surface,
    method: Option<http::Method>,
    path: Option<&str>,
    count: usize,
    action: FaultAction,
) -> Fault {
    Fault {
        surface,
        method,
        path_contains: path.map(String::from),
        count,
        action,
    }
}

fn error(status: u16, code: &str, retry_after: Option<u64>) -> FaultAction {
    FaultAction::Error {
        status,
        code: code.into(),
        message: format!("injected by the chaos suite: {code}"),
        retry_after,
    }
}

/// Responses with `status` recorded since log index `from`.
fn responses_with(bed: &Bed, from: usize, status: u16) -> usize {
    bed.azure
        .request_log()
        .iter()
        .skip(from)
        .filter(|r| r.status == status)
        .count()
}

async fn create_batch(bed: &Bed, range: std::ops::Range<usize>) {
    for i in range {
        bed.create_md(&bed.population_md(i, ACCOUNTS)).await;
    }
}

/// Faults one kind at a time (429 + Retry-After, 409 RequestConflict, 500/503, dropped
/// connections, slow responses, long-running operations that end Failed, token-endpoint outage),
/// each while a new batch of deployments is created; then all of them together while watches
/// are dropped, specs change during operations and deployments are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_faults_in_turn_then_together() {
    // Short-lived tokens so the operator keeps asking the token endpoint (outages bite).
    let bed = Bed::new(BedOptions {
        token_lifetime: Duration::from_secs(4),
        ..chaos_defaults()
    })
    .await;
    let op = bed.start_operator().await;
    bed.wait_accounts_ready(Duration::from_secs(30)).await;
    let mut exp = Expectations::default();
    let deployments = Some("/deployments/");
    let lro_failure = "DeploymentProvisioningFailed";

    struct Phase {
        name: &'static str,
        faults: Vec<Fault>,
        /// status that must appear in the log during the phase (proves the fault was hit).
        witness: Option<u16>,
    }
    let phases = vec![
        Phase {
            name: "429 with Retry-After",
            faults: vec![fault(
                Surface::Arm,
                None,
                deployments,
                8,
                error(429, "TooManyRequests", Some(1)),
            )],
            witness: Some(429),
        },
        Phase {
            name: "409 RequestConflict",
            faults: vec![fault(
                Surface::Arm,
                Some(http::Method::PUT),
                deployments,
                6,
                error(409, "RequestConflict", None),
            )],
            witness: Some(409),
        },
        Phase {
            name: "500 and 503",
            faults: vec![
                fault(
                    Surface::Arm,
                    None,
                    deployments,
                    4,
                    error(500, "InternalServerError", None),
                ),
                fault(
                    Surface::Arm,
                    None,
                    deployments,
                    4,
                    error(503, "ServiceUnavailable", Some(1)),
                ),
            ],
            witness: Some(503),
        },
        Phase {
            name: "dropped connections",
            faults: vec![fault(Surface::Arm, None, deployments, 6, FaultAction::Drop)],
            witness: Some(0),
        },
        Phase {
            name: "slow responses",
            faults: vec![fault(
                Surface::Arm,
                None,
                None,
                12,
                FaultAction::Delay(Duration::from_millis(700)),
            )],
            witness: None,
        },
        Phase {
            name: "long-running operations end Failed",
            faults: vec![],
            witness: None,
        },
        Phase {
            name: "token endpoint outage",
            faults: vec![
                fault(
                    Surface::Token,
                    None,
                    None,
                    25,
                    error(503, "temporarily_unavailable", Some(1)),
                ),
                fault(
                    Surface::ManagedIdentity,
                    None,
                    None,
                    25,
                    error(503, "temporarily_unavailable", Some(1)),
                ),
            ],
            witness: Some(503),
        },
    ];
    let mut next = 0usize;
    for phase in phases {
        let from = bed.azure.request_log().len();
        let t0 = Instant::now();
        for f in phase.faults {
            bed.azure.inject(f);
        }
        if phase.name.starts_with("long-running") {
            bed.azure.fail_next_operations(
                2,
                lro_failure,
                "injected: the deployment could not be provisioned",
            );
            exp.terminal_any.push(lro_failure.to_string());
        }
        if phase.name.starts_with("token") {
            // Make sure the outage is met: wait for the cached tokens to need a refresh.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        create_batch(&bed, next..next + 6).await;
        next += 6;
        assert_converged(&bed, &exp, CONVERGE, phase.name).await;
        if let Some(w) = phase.witness {
            assert!(
                responses_with(&bed, from, w) > 0,
                "[{}] the injected fault (status {w}) was never hit",
                phase.name
            );
        }
        if phase.name.starts_with("slow") {
            let slow = bed
                .azure
                .request_log()
                .iter()
                .skip(from)
                .filter(|r| r.finished - r.started >= Duration::from_millis(650))
                .count();
            assert!(slow > 0, "[slow responses] no slow response was served");
        }
        if phase.name.starts_with("long-running") {
            // The failed operations are terminal: Ready=False with Azure's code, and no retry loop.
            let failed: Vec<(String, String)> = bed
                .list_mds()
                .await
                .into_iter()
                .filter(|m| {
                    m.status
                        .as_ref()
                        .and_then(|s| s.last_error.as_ref())
                        .is_some_and(|e| e.code == lro_failure)
                })
                .map(|m| (m.namespace().unwrap(), m.name_any()))
                .collect();
            assert_eq!(
                failed.len(),
                2,
                "two operations were set to fail: {failed:?}"
            );
            let before = bed.azure.request_log().len();
            tokio::time::sleep(Duration::from_secs(3)).await;
            let log = bed.azure.request_log();
            for (ns, name) in &failed {
                let dn = format!("{ns}.{name}");
                let w = support_chaos::invariants::writes_on_deployment(&log, before, &dn);
                assert!(
                    w.is_empty(),
                    "terminal failure of {ns}/{name} was retried without a spec change: {w:?}"
                );
            }
            // A spec change releases the hold and the deployment recovers.
            for (ns, name) in &failed {
                let cur = bed.md_api(ns).get(name).await.unwrap();
                bed.patch_md_spec(
                    ns,
                    name,
                    json!({"sku": {"capacity": cur.spec.sku.as_ref().unwrap().capacity + 1}}),
                )
                .await;
            }
            exp.terminal_any.clear();
            assert_converged(&bed, &exp, CONVERGE, "recovery after LRO failures").await;
        }
        eprintln!(
            "[{}] phase took {:.1}s",
            phase.name,
            t0.elapsed().as_secs_f64()
        );
        bed.azure.clear_faults();
    }

    // All together, with watch drops, spec changes during operations and deletions.
    let from = bed.azure.request_log().len();
    bed.azure.set_provisioning_delay(Duration::from_millis(400));
    bed.azure.inject(fault(
        Surface::Arm,
        None,
        deployments,
        4,
        error(429, "TooManyRequests", Some(1)),
    ));
    bed.azure.inject(fault(
        Surface::Arm,
        Some(http::Method::PUT),
        deployments,
        3,
        error(409, "RequestConflict", None),
    ));
    bed.azure.inject(fault(
        Surface::Arm,
        None,
        deployments,
        3,
        error(503, "ServiceUnavailable", None),
    ));
    bed.azure
        .inject(fault(Surface::Arm, None, deployments, 3, FaultAction::Drop));
    bed.azure.inject(fault(
        Surface::Arm,
        None,
        None,
        6,
        FaultAction::Delay(Duration::from_millis(500)),
    ));
    bed.azure.inject(fault(
        Surface::Token,
        None,
        None,
        6,
        error(503, "temporarily_unavailable", None),
    ));
    bed.azure.fail_next_operations(
        1,
        lro_failure,
        "injected: the deployment could not be provisioned",
    );
    exp.terminal_any.push(lro_failure.to_string());
    let watch_chaos = watch_chaos(
        &bed,
        Duration::from_millis(500),
        2,
        tokio_util::sync::CancellationToken::new(),
        Some(20),
    );
    create_batch(&bed, next..50).await;
    // Spec changes while their create operations run (400 ms each).
    tokio::time::sleep(Duration::from_millis(150)).await;
    for i in next..next + 4 {
        let m = bed.population_md(i, ACCOUNTS);
        bed.patch_md_spec(
            &m.namespace().unwrap(),
            &m.name_any(),
            json!({"sku": {"capacity": m.spec.sku.as_ref().unwrap().capacity + 2}}),
        )
        .await;
    }
    // Capacity changes on converged deployments, and deletions.
    for i in 0..6 {
        let m = bed.population_md(i, ACCOUNTS);
        bed.patch_md_spec(
            &m.namespace().unwrap(),
            &m.name_any(),
            json!({"sku": {"capacity": 7}}),
        )
        .await;
    }
    for i in 6..14 {
        let m = bed.population_md(i, ACCOUNTS);
        bed.delete_md(&m.namespace().unwrap(), &m.name_any()).await;
    }
    watch_chaos.await.unwrap();
    assert_converged(&bed, &exp, CONVERGE, "all faults together").await;
    assert!(
        responses_with(&bed, from, 429) + responses_with(&bed, from, 503) > 0,
        "combined faults were not hit"
    );
    support_chaos::leaks::assert_no_leaks(&bed, vec![]).await;
    op.shutdown().await.unwrap();
}

/// Watches end with `410 Expired` (etcd compacted every third round) and are cut mid-stream
/// every 300 ms while 50 deployments are created, changed and deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_watch_expired_and_dropped() {
    let bed = Bed::new(chaos_defaults()).await;
    let op = bed.start_operator().await;
    bed.wait_accounts_ready(Duration::from_secs(30)).await;
    let lists_before = bed.operator_requests("list", "modeldeployments");
    let stop = tokio_util::sync::CancellationToken::new();
    let chaos = watch_chaos(&bed, Duration::from_millis(300), 3, stop.clone(), None);
    create_batch(&bed, 0..50).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..10 {
        let m = bed.population_md(i, ACCOUNTS);
        bed.patch_md_spec(
            &m.namespace().unwrap(),
            &m.name_any(),
            json!({"sku": {"capacity": 9}}),
        )
        .await;
    }
    for i in 40..46 {
        let m = bed.population_md(i, ACCOUNTS);
        bed.delete_md(&m.namespace().unwrap(), &m.name_any()).await;
    }
    // Converge while the watches keep failing.
    let exp = Expectations::default();
    let converged = tokio::time::timeout(CONVERGE, async {
        loop {
            if support_chaos::invariants::state_violations(&bed, &exp)
                .await
                .is_empty()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    stop.cancel();
    let drops = chaos.await.unwrap();
    assert!(drops >= 3, "watch chaos ran only {drops} times");
    // kube-runtime's watcher re-lists only after `410 Expired` (a cut connection resumes the
    // watch from its resourceVersion): re-lists prove the operator met expired watches.
    let relists = bed.operator_requests("list", "modeldeployments") - lists_before;
    assert!(
        relists >= 1,
        "the operator never re-listed ModelDeployments: no watch of it ended with 410 Expired"
    );
    if converged.is_err() {
        eprintln!("not converged while watches were failing; checking after they stop");
    }
    // A later spec change must still be seen (the watch recovered).
    let m = bed.population_md(20, ACCOUNTS);
    bed.patch_md_spec(
        &m.namespace().unwrap(),
        &m.name_any(),
        json!({"sku": {"capacity": 11}}),
    )
    .await;
    assert_converged(&bed, &exp, CONVERGE, "after watch chaos").await;
    assert!(
        converged.is_ok(),
        "the operator did not converge while watches were expiring/dropping ({drops} drops)"
    );
    support_chaos::leaks::assert_no_leaks(&bed, vec![]).await;
    op.shutdown().await.unwrap();
}

/// The operator is killed (task aborted, as a crash) three times while operations run; while it
/// is down specs change and resources are deleted. A restart resumes the pending operations
/// instead of writing again: no deployment is created twice, and a deployment whose spec never
/// changed gets exactly one accepted PUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_and_restarted_mid_operation() {
    let bed = Bed::new(BedOptions {
        provisioning_delay: Duration::from_millis(700),
        ..chaos_defaults()
    })
    .await;
    let mut op = bed.start_operator().await;
    bed.wait_accounts_ready(Duration::from_secs(30)).await;
    create_batch(&bed, 0..50).await;
    let mut changed = std::collections::HashSet::new();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let pending = bed
            .list_mds()
            .await
            .iter()
            .filter(|m| {
                m.status
                    .as_ref()
                    .is_some_and(|s| s.pending_operation.is_some())
            })
            .count();
        op.abort();
        eprintln!(
            "round {round}: killed the operator with {pending} operation(s) pending in status"
        );
        // While it is down: spec changes and a deletion.
        for k in 0..3 {
            let i = round * 10 + k;
            let m = bed.population_md(i, ACCOUNTS);
            bed.patch_md_spec(
                &m.namespace().unwrap(),
                &m.name_any(),
                json!({"sku": {"capacity": 6 + round as i32}}),
            )
            .await;
            changed.insert(m.azure_deployment_name().to_ascii_lowercase());
        }
        let m = bed.population_md(45 + round, ACCOUNTS);
        bed.delete_md(&m.namespace().unwrap(), &m.name_any()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        op = bed.start_operator().await;
    }
    assert_converged(&bed, &Expectations::default(), CONVERGE, "after restarts").await;
    // Unchanged deployments: exactly one accepted PUT (the create) across all restarts.
    let log = bed.azure.request_log();
    let mut puts: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &log {
        if r.method == "PUT" && r.status < 300 {
            if let Some((_, d)) = support_chaos::deployment_of(&r.path) {
                *puts.entry(d).or_default() += 1;
            }
        }
    }
    let twice: Vec<_> = puts
        .iter()
        .filter(|(d, n)| **n > 1 && !changed.contains(*d))
        .collect();
    assert!(
        twice.is_empty(),
        "a restart wrote again to deployments whose spec did not change: {twice:?}"
    );
    support_chaos::leaks::assert_no_leaks(&bed, vec![]).await;
    op.shutdown().await.unwrap();
}

/// The apiserver is killed (SIGKILL) while 30 deployments converge and started again two
/// seconds later on the same port with the same etcd data; then the operator's connections are
/// stalled for three seconds (nothing moves, nothing is closed) while 10 more are created. The
/// operator's clients reconnect by themselves and everything converges, with the invariants.
/// A control plane of this test's own, since the others of this binary share theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_killed_restarted_and_connections_stalled() {
    let bed = Bed::new(BedOptions {
        own_control_plane: true,
        provisioning_delay: Duration::from_millis(400),
        ..chaos_defaults()
    })
    .await;
    let op = bed.start_operator().await;
    bed.wait_accounts_ready(Duration::from_secs(30)).await;
    create_batch(&bed, 0..30).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let cp = bed.cluster.control_plane().expect("own control plane");
    cp.kill_apiserver();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cp.start_apiserver().await.expect("apiserver restarts");
    bed.proxy.stall();
    create_batch(&bed, 30..40).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    bed.proxy.resume();
    assert_converged(
        &bed,
        &Expectations::default(),
        CONVERGE,
        "after the apiserver restart and the stall",
    )
    .await;
    support_chaos::leaks::assert_no_leaks(&bed, vec![]).await;
    op.shutdown().await.unwrap();
}

/// Two replicas with leader election on a Lease, each with its own Azure principal (so the
/// request log tells them apart). The leader is killed mid-way; the other takes over. No write
/// ever comes from the replica that is not the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_leader_killed() {
    let bed = Bed::new(BedOptions {
        provisioning_delay: Duration::from_millis(300),
        ..chaos_defaults()
    })
    .await;
    let replica = |id: &str, vars: &std::collections::HashMap<String, String>| {
        let mut c = bed.config_with(vars);
        c.leader_election = Some(LeaderSettings {
            lease_name: "aoai-operator".into(),
            namespace: bed.operator_ns.clone(),
            identity: id.into(),
            lease_duration: Duration::from_secs(3),
            grace: Duration::from_secs(1),
        });
        c.instance = id.into();
        c
    };
    let vars_a = support_chaos::vars_for_principal(
        &bed,
        "a0a0a0a0-0000-4000-8000-00000000000a",
        "replica-a-secret-7f3c9d2e1b",
    );
    let vars_b = support_chaos::vars_for_principal(
        &bed,
        "b0b0b0b0-0000-4000-8000-00000000000b",
        "replica-b-secret-4e8a6c0f2d",
    );
    let leases: Api<Lease> = Api::namespaced(bed.client.clone(), &bed.operator_ns);
    let holder = || async {
        leases
            .get_opt("aoai-operator")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec.and_then(|s| s.holder_identity))
    };
    let a = bed.start_operator_with(replica("replica-a", &vars_a)).await;
    wait_for(Duration::from_secs(20), "replica-a leads", || async {
        holder().await.as_deref() == Some("replica-a")
    })
    .await
    .unwrap();
    let b = bed.start_operator_with(replica("replica-b", &vars_b)).await;
    bed.wait_accounts_ready(Duration::from_secs(30)).await;
    create_batch(&bed, 0..50).await;
    wait_for(
        Duration::from_secs(60),
        "some deployments ready",
        || async {
            bed.list_mds()
                .await
                .iter()
                .filter(|m| {
                    m.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
                .count()
                >= 12
        },
    )
    .await
    .unwrap();
    assert_eq!(
        holder().await.as_deref(),
        Some("replica-a"),
        "leadership moved without a failure"
    );
    let killed_at = Instant::now();
    a.abort();
    eprintln!("killed the leader (replica-a)");
    for i in 0..5 {
        let m = bed.population_md(i, ACCOUNTS);
        bed.patch_md_spec(
            &m.namespace().unwrap(),
            &m.name_any(),
            json!({"sku": {"capacity": 8}}),
        )
        .await;
    }
    wait_for(Duration::from_secs(30), "replica-b leads", || async {
        holder().await.as_deref() == Some("replica-b")
    })
    .await
    .unwrap();
    let took_over = Instant::now();
    assert_converged(
        &bed,
        &Expectations::default(),
        CONVERGE,
        "after leader kill",
    )
    .await;
    let by = writes_by_principal(&bed.azure.request_log());
    let a_writes = by
        .get("a0a0a0a0-0000-4000-8000-00000000000a")
        .cloned()
        .unwrap_or_default();
    let b_writes = by
        .get("b0b0b0b0-0000-4000-8000-00000000000b")
        .cloned()
        .unwrap_or_default();
    assert!(
        !a_writes.is_empty() && !b_writes.is_empty(),
        "both replicas should have led at some point"
    );
    let a_late: Vec<_> = a_writes
        .iter()
        .filter(|r| r.started > killed_at)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        a_late.is_empty(),
        "writes from replica-a after it was killed: {a_late:?}"
    );
    let b_early: Vec<_> = b_writes
        .iter()
        .filter(|r| r.started < killed_at)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        b_early.is_empty(),
        "writes from replica-b while it was not the leader: {b_early:?}"
    );
    let unknown: Vec<_> = by
        .keys()
        .filter(|p| !p.starts_with("a0a0") && !p.starts_with("b0b0"))
        .collect();
    assert!(
        unknown.is_empty(),
        "writes from unexpected principals: {unknown:?}"
    );
    eprintln!(
        "leader handover took {:.1}s; writes: replica-a {}, replica-b {}",
        (took_over - killed_at).as_secs_f64(),
        a_writes.len(),
        b_writes.len()
    );
    assert!(
        bed.azure
            .request_log()
            .iter()
            .filter(|r| is_write_request(r))
            .all(|r| r.principal.is_some()),
        "a write without a principal"
    );
    support_chaos::leaks::assert_no_leaks(&bed, vec![]).await;
    b.shutdown().await.unwrap();
}
