//! Table tests of `decide_ml`: every branch of the managed-compute, serverless and deletion
//! policies from hand-built snapshots, plus a sweep over many snapshots that checks the
//! invariants the policy promises (no deployment with traffic is deleted, traffic always goes
//! 100 % to a deployment that serves, nothing is written while an operation runs, every
//! refusal says why).
//!
//! Layout: blocked passes, the managed-compute create path, rejections, in-place updates and
//! drift, the instance type change, provisioning states, pending operations and refused
//! writes, ownership, serverless, deletion, the invariant sweep, small helpers; the fixtures
//! (Azure-shaped bodies built with `json!`) and assertion helpers are at the bottom.

use super::*;
use fixtures::*;

// ------------------------------------------------------------------ blocked before Azure

#[test]
fn a_new_managed_compute_deployment_reads_the_endpoint_first() {
    let s = fixtures::managed();
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Endpoint));
}

#[test]
fn a_blocked_workspace_or_credential_refuses_without_any_azure_call() {
    type Case = (&'static str, fn(&mut MlSnapshot), &'static str);
    let cases: Vec<Case> = vec![
        (
            "workspace missing",
            |s| s.workspace.exists = false,
            WORKSPACE_NOT_FOUND,
        ),
        (
            "namespace not allowed",
            |s| s.workspace.namespace_allowed = false,
            NAMESPACE_NOT_ALLOWED,
        ),
        (
            "workspace deleting",
            |s| s.workspace.deleting = true,
            WORKSPACE_DELETING,
        ),
        (
            "credential error",
            |s| s.credential_error = Some("the client secret expired".into()),
            CREDENTIAL_ERROR,
        ),
        (
            "workspace region not confirmed",
            |s| s.workspace.location = None,
            WORKSPACE_NOT_READY,
        ),
    ];
    for form in [managed(), serverless()] {
        for (name, edit, reason) in &cases {
            // Everything else is known and would lead to a write: the block must win.
            let mut s = all_known(form.clone());
            edit(&mut s);
            let f = finish(&decide_ml(&s), name);
            let c = ready_false(&f, reason, name);
            assert!(!c.message.is_empty(), "{name}");
            assert_eq!(f.requeue, Some(s.timing.resync), "{name}");
            assert!(!f.release, "{name}");
            assert_eq!(f.status.observed_generation, Some(1), "{name}");
            assert!(
                f.events.iter().any(|e| e.warning && e.reason == *reason),
                "{name}: a warning event with the reason: {:?}",
                f.events
            );
        }
    }
    let mut s = managed();
    s.credential_error = Some("the client secret expired".into());
    let f = finish(&decide_ml(&s), "credential");
    assert!(ready(&f).message.contains("the client secret expired"));
}

#[test]
fn a_failed_read_is_reported_and_retried_by_its_class() {
    type Case = (&'static str, AzureError, &'static str, Duration);
    let t = managed().timing;
    let cases: Vec<Case> = vec![
        (
            "5xx",
            azure_err(503, "ServiceUnavailable", None),
            AZURE_UNAVAILABLE,
            t.backoff,
        ),
        (
            "429 with Retry-After",
            azure_err(429, "TooManyRequests", Some(30)),
            AZURE_THROTTLED,
            Duration::from_secs(30),
        ),
        (
            "429 with a Retry-After below the backoff",
            azure_err(429, "TooManyRequests", Some(1)),
            AZURE_THROTTLED,
            t.backoff,
        ),
        (
            "409",
            azure_err(409, "Conflict", None),
            WAITING_FOR_AZURE,
            t.backoff,
        ),
        (
            "no response",
            AzureError::transport("ml.get", "ConnectionError", "connection refused".into()),
            AZURE_UNREACHABLE,
            t.backoff,
        ),
        (
            "403",
            azure_err(403, "AuthorizationFailed", None),
            AUTHORIZATION_FAILED,
            t.resync,
        ),
        (
            "401 with another code",
            azure_err(401, "InvalidAuthenticationToken", None),
            AUTHORIZATION_FAILED,
            t.resync,
        ),
    ];
    for (name, e, reason, requeue) in cases {
        let mut s = all_known(managed());
        s.endpoint = Known::Unknown;
        s.read_error = Some(e.clone());
        let step = decide_ml(&s);
        let f = finish(&step, name);
        let c = ready_false(&f, reason, name);
        assert!(c.message.contains(&e.message), "{name}: {}", c.message);
        assert_eq!(f.requeue, Some(requeue), "{name}");
        assert!(!f.release, "{name}");
    }
}

// ------------------------------------------------------------------ managed compute: create

#[test]
fn managed_compute_is_created_endpoint_then_deployment_then_traffic_then_key() {
    let mut s = managed();
    let want = desired(&s);
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Endpoint));
    s.endpoint = Known::Known(None);
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Model));
    s.model = Known::Known(Some(phi()));
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::VmSize));
    s.vm = Known::Known(Some(a100()));
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Quota));
    s.quota = Known::Known(Some(quota(0, 96)));

    // 1. the endpoint
    let w = write_step(&decide_ml(&s), "create endpoint");
    assert_eq!(w.kind, OperationKind::Create);
    assert_eq!(w.target, endpoint_id());
    assert!(w.target.ends_with("/onlineEndpoints/team-a-phi"));
    let body = w.body.expect("a PUT");
    assert_eq!(body["properties"]["authMode"], "Key");
    assert_eq!(body["tags"][OWNER_TAG], "team-a/phi");
    assert_eq!(body["location"], "eastus");
    assert_eq!(body["identity"]["type"], "SystemAssigned");
    assert!(
        body["properties"]["traffic"].is_null(),
        "no traffic before any deployment: {body}"
    );

    // 2. the endpoint exists: its deployments are read
    s.endpoint = Known::Known(Some(endpoint("Succeeded", json!({}))));
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Deployments));
    s.deployments = Known::Known(vec![]);

    // 3. the deployment
    let w = write_step(&decide_ml(&s), "create deployment");
    assert_eq!(w.kind, OperationKind::Create);
    assert_eq!(w.target, deployment_id(&want));
    assert_eq!(
        want,
        online_deployment_name(MODEL, A100),
        "the name derives from model and instance type"
    );
    let body = w.body.expect("a PUT");
    assert_eq!(body["sku"]["capacity"], 1);
    assert_eq!(body["sku"]["name"], "Default");
    assert_eq!(body["properties"]["model"], MODEL);
    assert_eq!(body["properties"]["instanceType"], A100);
    assert_eq!(body["properties"]["endpointComputeType"], "Managed");
    assert_eq!(body["tags"][OWNER_TAG], "team-a/phi");
    assert_eq!(body["location"], "eastus");

    // 4. the deployment is being created: wait
    s.deployments = Known::Known(vec![deployment(&want, A100, 1, "Creating")]);
    let f = finish(&decide_ml(&s), "deployment creating");
    ready_false(&f, PROVISIONING, "deployment creating");
    assert_eq!(f.requeue, Some(s.timing.poll_interval));

    // 5. it serves: all traffic to it
    s.deployments = Known::Known(vec![deployment(&want, A100, 1, "Succeeded")]);
    let w = write_step(&decide_ml(&s), "traffic");
    assert_eq!(w.kind, OperationKind::Update);
    assert_eq!(w.target, endpoint_id());
    let body = w.body.expect("a PUT");
    assert_eq!(body["properties"]["traffic"], json!({want.clone(): 100}));
    assert_eq!(body["properties"]["authMode"], "Key");
    assert_eq!(body["tags"][OWNER_TAG], "team-a/phi");
    for ro in ["provisioningState", "scoringUri"] {
        assert!(body["properties"][ro].is_null(), "{ro} dropped: {body}");
    }
    assert!(body["id"].is_null() && body["systemData"].is_null());

    // 6. the traffic is set: the key goes to Key Vault
    s.endpoint = Known::Known(Some(endpoint("Succeeded", json!({want.clone(): 100}))));
    assert_eq!(
        decide_ml(&s),
        MlStep::StoreKey {
            endpoint_id: endpoint_id(),
            vault_uri: "https://kv.vault.azure.net/".into(),
            secret_name: "shared-ws-team-a-phi".into(),
        }
    );

    // 7. Ready
    s.stored_key = Some(stored_key());
    let f = finish(&decide_ml(&s), "ready");
    let c = ready(&f).clone();
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", READY));
    assert_eq!(c.observed_generation, Some(1));
    let st = &f.status;
    assert_eq!(st.scoring_uri.as_deref(), Some(SCORING_URI));
    assert_eq!(st.traffic, BTreeMap::from([(want.clone(), 100)]));
    assert_eq!(st.instance_type.as_deref(), Some(A100));
    assert_eq!(st.instance_count, Some(1));
    assert_eq!(st.endpoint_name.as_deref(), Some("team-a-phi"));
    assert_eq!(st.deployment_name.as_deref(), Some(want.as_str()));
    assert_eq!(
        st.azure_resource_id.as_deref(),
        Some(endpoint_id().as_str())
    );
    assert_eq!(st.key_vault_secret, Some(stored_key()));
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(st.last_sync_time.as_deref(), Some(NOW));
    assert_eq!(st.last_error, None);
    assert_eq!(
        st.model.as_ref().and_then(|m| m.name.as_deref()),
        Some("Phi-4-mini-instruct")
    );
    assert_eq!(
        st.model.as_ref().and_then(|m| m.version.as_deref()),
        Some("1")
    );
    assert_eq!(f.requeue, Some(s.timing.resync));
    assert!(f.events.is_empty() && !f.release);
}

#[test]
fn the_deployment_body_carries_every_spec_setting_as_azure_spells_it() {
    let mut s = serving(managed());
    set_spec(
        &mut s,
        json!({
            "instanceCount": 3,
            "livenessProbe": {"initialDelaySeconds": 600, "periodSeconds": 10, "failureThreshold": 30},
            "readinessProbe": {"timeoutSeconds": 2},
            "requestSettings": {"maxConcurrentRequestsPerInstance": 4, "requestTimeoutMs": 1500, "maxQueueWaitMs": 500},
            "scaleSettings": {"scaleType": "TargetUtilization", "minInstances": 1, "maxInstances": 3, "targetUtilizationPercentage": 70, "pollingIntervalSeconds": 5},
            "environmentVariables": {"MAX_TOKENS": "512"},
        }),
    );
    s.quota = Known::Known(Some(quota(0, 200)));
    s.deployments = Known::Known(vec![]);
    let w = write_step(&decide_ml(&s), "create");
    let b = w.body.unwrap();
    assert_eq!(b["sku"], json!({"name": "Default", "capacity": 3}));
    let p = &b["properties"];
    assert_eq!(
        p["livenessProbe"],
        json!({"initialDelay": "PT600S", "period": "PT10S", "failureThreshold": 30})
    );
    assert_eq!(p["readinessProbe"], json!({"timeout": "PT2S"}));
    assert_eq!(
        p["requestSettings"],
        json!({"maxConcurrentRequestsPerInstance": 4, "requestTimeout": "PT1.5S", "maxQueueWait": "PT0.5S"})
    );
    assert_eq!(
        p["scaleSettings"],
        json!({"scaleType": "TargetUtilization", "minInstances": 1, "maxInstances": 3, "targetUtilizationPercentage": 70, "pollingInterval": "PT5S"})
    );
    assert_eq!(p["environmentVariables"], json!({"MAX_TOKENS": "512"}));
}

#[test]
fn a_key_already_in_key_vault_is_not_stored_again() {
    let mut s = serving(managed());
    s.md.status.key_vault_secret = Some(stored_key());
    let f = finish(&decide_ml(&s), "ready");
    assert_eq!(ready(&f).status, "True");
    assert_eq!(f.status.key_vault_secret, Some(stored_key()));
}

#[test]
fn a_second_ready_pass_changes_nothing_in_status() {
    let s = serving(managed());
    let first = finish(&decide_ml(&s), "first");
    let mut again = s.clone();
    again.md.status = first.status.clone();
    again.stored_key = None;
    again.now = "2026-12-04T01:00:00Z".into();
    let second = finish(&decide_ml(&again), "second");
    assert_eq!(
        second.status, first.status,
        "steady state makes no Kubernetes write"
    );
    assert!(second.events.is_empty());
}

// ------------------------------------------------------------------ rejections

#[test]
fn managed_compute_is_refused_before_any_write_when_model_type_or_quota_do_not_fit() {
    type Case = (
        &'static str,
        fn(&mut MlSnapshot),
        &'static str,
        &'static [&'static str],
    );
    let cases: Vec<Case> = vec![
        (
            "model not in the catalogue",
            |s| s.model = Known::Known(None),
            MODEL_NOT_FOUND,
            &[MODEL],
        ),
        (
            "serverless-only model",
            |s| {
                s.model = Known::Known(Some(RegistryModel {
                    version: "1".into(),
                    serverless: true,
                    ..Default::default()
                }))
            },
            MODEL_NOT_OFFERED,
            &["managed compute", "serverless"],
        ),
        (
            "model offered nowhere",
            |s| {
                s.model = Known::Known(Some(RegistryModel {
                    version: "1".into(),
                    ..Default::default()
                }))
            },
            MODEL_NOT_OFFERED,
            &["managed compute"],
        ),
        (
            "instance type outside the model's allow list",
            |s| {
                s.model = Known::Known(Some(RegistryModel {
                    version: "1".into(),
                    managed_compute_skus: vec![
                        "Standard_NC48ads_A100_v4".into(),
                        "Standard_ND96asr_v4".into(),
                    ],
                    ..Default::default()
                }))
            },
            INSTANCE_TYPE_NOT_SUPPORTED,
            &[A100, "Standard_NC48ads_A100_v4", "Standard_ND96asr_v4"],
        ),
        (
            "instance type not a VM size of the region",
            |s| s.vm = Known::Known(None),
            INSTANCE_TYPE_NOT_SUPPORTED,
            &[A100, "eastus"],
        ),
        (
            "24 vCPUs for 1 × 24-vCPU VM (Azure reserves 20 % more: 48)",
            |s| s.quota = Known::Known(Some(quota(0, 24))),
            INSUFFICIENT_QUOTA,
            &["48", "24", "standardNCADSA100v4Family"],
        ),
        (
            "47 of 48 vCPUs free",
            |s| s.quota = Known::Known(Some(quota(49, 96))),
            INSUFFICIENT_QUOTA,
            &["48", "47"],
        ),
        (
            "no quota of the family at all",
            |s| s.quota = Known::Known(None),
            INSUFFICIENT_QUOTA,
            &["48"],
        ),
    ];
    // Before the endpoint is created, and before the deployment on an existing endpoint.
    let contexts: Vec<(&str, MlSnapshot)> = vec![
        ("no endpoint", all_known(managed())),
        ("endpoint without deployment", {
            let mut s = all_known(managed());
            s.endpoint = Known::Known(Some(endpoint("Succeeded", json!({}))));
            s.deployments = Known::Known(vec![]);
            s
        }),
    ];
    for (ctx, base) in &contexts {
        assert!(
            matches!(decide_ml(base), MlStep::Write(_)),
            "{ctx}: the base passes"
        );
        for (name, edit, reason, words) in &cases {
            let mut s = base.clone();
            edit(&mut s);
            let label = format!("{ctx}: {name}");
            let f = finish(&decide_ml(&s), &label);
            let c = ready_false(&f, reason, &label);
            for w in *words {
                assert!(c.message.contains(w), "{label}: {w:?} in {:?}", c.message);
            }
            assert_eq!(f.requeue, Some(s.timing.resync), "{label}: re-checked");
            assert!(f.events.iter().any(|e| e.warning && e.reason == *reason));
        }
    }
    // A model offered nowhere gets no hint towards serverless.
    let mut s = all_known(managed());
    s.model = Known::Known(Some(RegistryModel::default()));
    let f = finish(&decide_ml(&s), "nowhere");
    assert!(!ready(&f).message.contains("serverless"));
}

#[test]
fn the_instance_type_allow_list_is_case_insensitive() {
    let mut s = all_known(managed());
    set_spec(&mut s, json!({"instanceType": "standard_nc24ads_a100_v4"}));
    assert!(matches!(decide_ml(&s), MlStep::Write(_)));
}

#[test]
fn quota_counts_the_20_percent_azure_reserves() {
    // (instances, limit, fits): ceil(n × 1.2) instances of 24 vCPUs.
    let cases = [
        (1, 24, false),
        (1, 47, false),
        (1, 48, true),
        (2, 71, false),
        (2, 72, true), // ceil(2.4) = 3
        (5, 143, false),
        (5, 144, true), // 6 × 24
        (6, 168, false),
        (6, 192, true), // ceil(7.2) = 8
    ];
    for (n, limit, fits) in cases {
        let mut s = all_known(managed());
        set_spec(&mut s, json!({"instanceCount": n}));
        s.quota = Known::Known(Some(quota(0, limit)));
        let step = decide_ml(&s);
        if fits {
            assert!(
                matches!(&step, MlStep::Write(w) if w.kind == OperationKind::Create),
                "{n} × 24 vCPUs fit in {limit}: {step:?}"
            );
        } else {
            let f = finish(&step, "quota");
            ready_false(&f, INSUFFICIENT_QUOTA, &format!("{n} in {limit}"));
        }
    }
}

#[test]
fn an_instance_count_increase_needs_quota_only_for_the_growth() {
    // The deployment holds ceil(1 × 1.2) × 24 = 48 vCPUs, all of the family's usage; 2
    // instances need ceil(2.4) × 24 = 72.
    let base = |limit: u64| {
        let mut s = serving(managed());
        set_spec(&mut s, json!({"instanceCount": 2}));
        s.quota = Known::Known(Some(quota(48, limit)));
        s
    };
    let w = write_step(&decide_ml(&base(72)), "72 fit");
    assert_eq!(w.kind, OperationKind::Update);
    assert_eq!(w.target, deployment_id(&desired(&base(72))));
    assert_eq!(w.body.unwrap()["sku"]["capacity"], 2);
    let f = finish(&decide_ml(&base(71)), "71 do not");
    ready_false(&f, INSUFFICIENT_QUOTA, "71");

    // Other usage of the family counts in full.
    let mut s = base(96);
    s.quota = Known::Known(Some(quota(48 + 30, 96)));
    let f = finish(&decide_ml(&s), "others use 30");
    ready_false(&f, INSUFFICIENT_QUOTA, "others use 30");

    // The quota is read before the growth is written.
    let mut s = base(96);
    s.quota = Known::Unknown;
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Quota));
}

#[test]
fn an_instance_count_decrease_is_written_without_any_check() {
    let mut s = serving(managed());
    set_spec(&mut s, json!({"instanceCount": 1}));
    let want = desired(&s);
    s.deployments = Known::Known(vec![deployment(&want, A100, 3, "Succeeded")]);
    s.model = Known::Unknown;
    s.vm = Known::Unknown;
    s.quota = Known::Known(Some(quota(96, 96)));
    let w = write_step(&decide_ml(&s), "shrink");
    assert_eq!(w.kind, OperationKind::Update);
    assert_eq!(w.body.unwrap()["sku"]["capacity"], 1);
}

// ------------------------------------------------------------------ in-place updates, drift

#[test]
fn an_instance_count_change_updates_the_same_deployment_in_place() {
    let mut s = serving(managed());
    set_spec(&mut s, json!({"instanceCount": 2}));
    let want = desired(&s);
    let w = write_step(&decide_ml(&s), "update");
    assert_eq!(w.kind, OperationKind::Update);
    assert_eq!(w.target, deployment_id(&want), "same name: in place");
    assert!(w.what.contains("instanceCount"), "{}", w.what);
    let b = w.body.unwrap();
    assert_eq!(b["sku"], json!({"name": "Default", "capacity": 2}));
    let p = &b["properties"];
    // What Azure holds and the spec does not set stays.
    assert_eq!(p["appInsightsEnabled"], true);
    assert_eq!(p["egressPublicNetworkAccess"], "Enabled");
    assert_eq!(p["livenessProbe"]["failureThreshold"], 30);
    assert_eq!(p["requestSettings"]["maxQueueWait"], "PT0.5S");
    assert_eq!(b["kind"], "Managed");
    // Read-only fields go.
    assert!(p.get("provisioningState").is_none(), "{b}");
    for ro in ["id", "name", "type", "systemData"] {
        assert!(b.get(ro).is_none(), "{ro}: {b}");
    }
    // The spec's fields are all there.
    assert_eq!(p["model"], MODEL);
    assert_eq!(p["instanceType"], A100);
    assert_eq!(p["endpointComputeType"], "Managed");
    assert_eq!(b["tags"][OWNER_TAG], "team-a/phi");
    assert_eq!(b["location"], "eastus");
}

#[test]
fn durations_azure_returns_in_iso_8601_are_no_drift() {
    let mut s = serving(managed());
    set_spec(
        &mut s,
        json!({
            "livenessProbe": {"periodSeconds": 10, "initialDelaySeconds": 600, "failureThreshold": 30},
            "readinessProbe": {"periodSeconds": 10},
            "requestSettings": {"requestTimeoutMs": 5000, "maxQueueWaitMs": 500, "maxConcurrentRequestsPerInstance": 1},
        }),
    );
    // The fixture's deployment holds Azure's spellings: "PT10S", "PT10M", "PT5S", "PT0.5S".
    let step = decide_ml(&s);
    let f = finish(&step, "no drift");
    assert_eq!(ready(&f).status, "True", "{step:?}");

    let mc = mc_of(&s);
    let dep = deps_of(&s)[0].clone();
    assert!(managed_drift(&mc, &dep).is_empty());
    // 1 minute as Azure may spell it.
    let mut dep2 = dep.clone();
    dep2["properties"]["requestSettings"]["requestTimeout"] = json!("PT1M");
    let mut mc2 = mc.clone();
    mc2.request_settings.as_mut().unwrap().request_timeout_ms = Some(60_000);
    assert!(managed_drift(&mc2, &dep2).is_empty());
    // Names compare case-insensitively.
    let mut dep3 = dep.clone();
    dep3["properties"]["instanceType"] = json!(A100.to_ascii_lowercase());
    assert!(managed_drift(&mc, &dep3).is_empty());
}

#[test]
fn real_drift_is_written_back_in_place() {
    type Case = (
        &'static str,
        serde_json::Value,
        fn(&mut Value),
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "probe period",
            json!({"livenessProbe": {"periodSeconds": 10}}),
            |d| d["properties"]["livenessProbe"]["period"] = json!("PT20S"),
            "livenessProbe",
        ),
        (
            "request timeout",
            json!({"requestSettings": {"requestTimeoutMs": 5000}}),
            |d| d["properties"]["requestSettings"]["requestTimeout"] = json!("PT50S"),
            "requestSettings",
        ),
        (
            "readiness probe absent in Azure",
            json!({"readinessProbe": {"periodSeconds": 10}}),
            |d| {
                d["properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("readinessProbe");
            },
            "readinessProbe",
        ),
        (
            "environment variable changed",
            json!({"environmentVariables": {"A": "1"}}),
            |d| d["properties"]["environmentVariables"] = json!({"A": "2", "SYSTEM": "x"}),
            "environmentVariables",
        ),
        (
            "capacity changed behind the operator's back",
            json!({}),
            |d| d["sku"]["capacity"] = json!(4),
            "instanceCount",
        ),
    ];
    for (name, spec, edit, field) in cases {
        let mut s = serving(managed());
        set_spec(&mut s, spec);
        let mut dep = deps_of(&s)[0].clone();
        edit(&mut dep);
        s.deployments = Known::Known(vec![dep.clone()]);
        let w = write_step(&decide_ml(&s), name);
        assert_eq!(w.kind, OperationKind::Update, "{name}");
        assert_eq!(w.target, deployment_id(&desired(&s)), "{name}");
        assert!(w.what.contains(field), "{name}: {}", w.what);
        let b = w.body.unwrap();
        assert!(
            managed_drift(&mc_of(&s), &b).is_empty(),
            "{name}: the body holds the spec: {b}"
        );
    }
}

// ------------------------------------------------------------------ instance type change

#[test]
fn an_instance_type_change_creates_the_new_deployment_beside_the_serving_one() {
    let mut s = serving(managed());
    let old = desired(&s);
    s.stored_key = None;
    s.md.status.key_vault_secret = Some(stored_key());
    set_spec(&mut s, json!({"instanceType": A100_48}));
    s.vm = Known::Known(Some(VmSize {
        name: A100_48.into(),
        family: A100_FAMILY.into(),
        vcpus: 48,
    }));
    s.model = Known::Known(Some(phi()));
    // The old one holds 48 of the family; the new one needs 2 × 48 = 96 beside it.
    s.quota = Known::Known(Some(quota(48, 144)));
    let new = desired(&s);
    assert_ne!(old, new);

    let mut history: Vec<MlStep> = vec![];
    // 1. create the new one; the old keeps all traffic
    let step = decide_ml(&s);
    history.push(step.clone());
    let w = write_step(&step, "create new");
    assert_eq!(
        (w.kind, w.target.as_str()),
        (OperationKind::Create, deployment_id(&new).as_str())
    );
    assert_eq!(
        w.body.as_ref().unwrap()["properties"]["instanceType"],
        A100_48
    );

    // Not enough quota beside the old one: refused, the old one keeps serving untouched.
    let mut short = s.clone();
    short.quota = Known::Known(Some(quota(48, 143)));
    let f = finish(&decide_ml(&short), "short");
    ready_false(&f, INSUFFICIENT_QUOTA, "short");

    // 2. the new one provisions: wait, no traffic change
    s.deployments = Known::Known(vec![
        deployment(&old, A100, 1, "Succeeded"),
        deployment(&new, A100_48, 1, "Creating"),
    ]);
    let step = decide_ml(&s);
    history.push(step.clone());
    let f = finish(&step, "new creating");
    ready_false(&f, PROVISIONING, "new creating");

    // 3. the new one serves: the traffic moves to it in one write
    s.deployments = Known::Known(vec![
        deployment(&old, A100, 1, "Succeeded"),
        deployment(&new, A100_48, 1, "Succeeded"),
    ]);
    let step = decide_ml(&s);
    history.push(step.clone());
    let w = write_step(&step, "move traffic");
    assert_eq!(
        (w.kind, w.target.as_str()),
        (OperationKind::Update, endpoint_id().as_str())
    );
    assert_eq!(
        w.body.as_ref().unwrap()["properties"]["traffic"],
        json!({new.clone(): 100})
    );

    // 4. only then the old one goes
    s.endpoint = Known::Known(Some(endpoint("Succeeded", json!({new.clone(): 100}))));
    let step = decide_ml(&s);
    history.push(step.clone());
    let w = write_step(&step, "delete old");
    assert_eq!(
        (w.kind, w.target.as_str(), w.body.as_ref()),
        (OperationKind::Delete, deployment_id(&old).as_str(), None)
    );

    // 5. Ready on the new one
    s.deployments = Known::Known(vec![deployment(&new, A100_48, 1, "Succeeded")]);
    let f = finish(&decide_ml(&s), "ready");
    assert_eq!(ready(&f).status, "True");
    assert_eq!(f.status.instance_type.as_deref(), Some(A100_48));
    assert_eq!(f.status.deployment_name.as_deref(), Some(new.as_str()));

    // Never a traffic write that names no serving deployment, never a delete of the old one
    // while it has traffic (it had all of it until step 3).
    for step in &history[..2] {
        assert!(
            !matches!(step, MlStep::Write(w) if w.target == endpoint_id() || w.body.is_none()),
            "{step:?}"
        );
    }
}

#[test]
fn a_model_version_change_is_also_a_new_deployment() {
    let mut s = serving(managed());
    let old = desired(&s);
    let v2 = MODEL.replace("versions/1", "versions/2");
    set_spec(&mut s, json!({"model": v2.clone()}));
    let new = desired(&s);
    assert_ne!(old, new);
    let w = write_step(&decide_ml(&s), "create v2");
    assert_eq!(
        (w.kind, w.target.as_str()),
        (OperationKind::Create, deployment_id(&new).as_str())
    );
    assert_eq!(w.body.unwrap()["properties"]["model"], v2.as_str());
}

#[test]
fn a_leftover_deployment_without_traffic_is_deleted_before_ready() {
    let mut s = serving(managed());
    let want = desired(&s);
    let mut deps = deps_of(&s);
    deps.insert(0, deployment("old-blue", A100, 1, "Succeeded"));
    s.deployments = Known::Known(deps);
    let w = write_step(&decide_ml(&s), "leftover");
    assert_eq!(
        (w.kind, w.target.as_str(), w.body.as_ref()),
        (
            OperationKind::Delete,
            deployment_id("old-blue").as_str(),
            None
        )
    );
    // A traffic map with a 0 % entry is normalised first, then the leftover goes.
    s.endpoint = Known::Known(Some(endpoint(
        "Succeeded",
        json!({want.clone(): 100, "old-blue": 0}),
    )));
    let w = write_step(&decide_ml(&s), "normalise");
    assert_eq!(w.target, endpoint_id());
    assert_eq!(
        w.body.unwrap()["properties"]["traffic"],
        json!({want.clone(): 100})
    );
}

// ------------------------------------------------------------------ provisioning states

#[test]
fn azure_provisioning_states_are_waited_for_or_repaired() {
    enum Want {
        Wait,
        Repair(fn() -> String),
    }
    type Case = (&'static str, fn(&mut MlSnapshot), Want);
    fn dep_state(s: &mut MlSnapshot, st: &str) {
        let want = desired(s);
        s.deployments = Known::Known(vec![deployment(&want, A100, 1, st)]);
    }
    let cases: Vec<Case> = vec![
        (
            "endpoint Creating",
            |s| s.endpoint = Known::Known(Some(endpoint("Creating", json!({})))),
            Want::Wait,
        ),
        (
            "endpoint Updating",
            |s| s.endpoint = Known::Known(Some(endpoint("Updating", json!({})))),
            Want::Wait,
        ),
        (
            "endpoint Deleting (someone else's delete)",
            |s| s.endpoint = Known::Known(Some(endpoint("Deleting", json!({})))),
            Want::Wait,
        ),
        (
            "endpoint Failed",
            |s| s.endpoint = Known::Known(Some(endpoint("Failed", json!({})))),
            Want::Repair(endpoint_id),
        ),
        (
            "endpoint Canceled",
            |s| s.endpoint = Known::Known(Some(endpoint("Canceled", json!({})))),
            Want::Repair(endpoint_id),
        ),
        (
            "deployment Creating",
            |s| dep_state(s, "Creating"),
            Want::Wait,
        ),
        (
            "deployment Updating",
            |s| dep_state(s, "Updating"),
            Want::Wait,
        ),
        (
            "deployment Failed",
            |s| dep_state(s, "Failed"),
            Want::Repair(|| deployment_id(&desired(&managed()))),
        ),
        (
            "deployment Canceled",
            |s| dep_state(s, "Canceled"),
            Want::Repair(|| deployment_id(&desired(&managed()))),
        ),
    ];
    for (name, edit, want) in cases {
        let mut s = serving(managed());
        s.md.status.key_vault_secret = Some(stored_key());
        edit(&mut s);
        let step = decide_ml(&s);
        match want {
            Want::Wait => {
                let f = finish(&step, name);
                let c = ready_false(&f, PROVISIONING, name);
                let state = name.split(' ').nth(1).unwrap();
                assert!(c.message.contains(state), "{name}: {}", c.message);
                assert_eq!(f.requeue, Some(s.timing.poll_interval), "{name}");
                assert!(f.events.is_empty(), "{name}: progress is no warning");
            }
            Want::Repair(target) => {
                let w = write_step(&step, name);
                assert_eq!(w.kind, OperationKind::Repair, "{name}");
                assert_eq!(w.target, target(), "{name}");
                let b = w.body.expect("a PUT");
                assert!(
                    b["properties"]["provisioningState"].is_null(),
                    "{name}: {b}"
                );
                assert_eq!(b["tags"][OWNER_TAG], "team-a/phi", "{name}");
            }
        }
    }
}

// ------------------------------------------------------------------ pending operations

#[test]
fn a_pending_operation_is_polled_before_anything_else_is_read_or_written() {
    let mut s = serving(managed());
    set_spec(&mut s, json!({"instanceCount": 2})); // a write would be due
    s.md.status.pending_operation = Some(pending(OperationKind::Create, endpoint_id()));
    s.write_error = Some(azure_err(400, "BadArgument", None));
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Poll));
    s.deleting = true;
    assert_eq!(
        decide_ml(&s),
        MlStep::Observe(MlNeed::Poll),
        "in deletion too"
    );
}

#[test]
fn an_operation_in_progress_holds_every_write() {
    let t = managed().timing;
    let cases = [
        (OperationKind::Create, None, CREATING, t.poll_interval),
        (
            OperationKind::Update,
            Some(Duration::from_secs(20)),
            UPDATING,
            Duration::from_secs(20),
        ),
        (
            OperationKind::Repair,
            Some(Duration::from_secs(3600)),
            UPDATING,
            t.resync,
        ),
        (OperationKind::Delete, None, DELETING, t.poll_interval),
    ];
    for (kind, retry_after, reason, requeue) in cases {
        let mut s = serving(managed());
        set_spec(&mut s, json!({"instanceCount": 2}));
        s.md.status.pending_operation = Some(pending(kind, deployment_id(&desired(&s))));
        s.poll = Known::Known(Ok(Poll::InProgress { retry_after }));
        let f = finish(&decide_ml(&s), kind.as_str());
        let c = ready_false(&f, reason, kind.as_str());
        assert!(
            c.message.contains(&deployment_id(&desired(&s))),
            "{}",
            c.message
        );
        assert_eq!(f.requeue, Some(requeue), "{kind:?}");
        assert!(f.status.pending_operation.is_some(), "still pending");
        assert!(f.events.is_empty(), "progress is no warning");
    }
}

#[test]
fn a_succeeded_operation_ends_and_the_pass_decides_again() {
    let mut s = managed();
    s.md.status.pending_operation = Some(pending(OperationKind::Create, endpoint_id()));
    s.poll = Known::Known(Ok(Poll::Succeeded));
    assert_eq!(decide_ml(&s), MlStep::EndOperation);
}

#[test]
fn a_terminally_failed_operation_is_recorded_for_the_generation() {
    let mut s = managed();
    s.md.generation = 4;
    s.md.status.pending_operation = Some(pending(OperationKind::Create, endpoint_id()));
    s.poll = Known::Known(Ok(Poll::Failed {
        code: "BadArgument".into(),
        message: "the model cannot be deployed".into(),
    }));
    let f = finish(&decide_ml(&s), "failed");
    assert_eq!(f.status.pending_operation, None);
    let le = f.status.last_error.clone().expect("last_error");
    assert_eq!(le.code, "BadArgument");
    assert_eq!(le.message, "the model cannot be deployed");
    assert_eq!(le.generation, Some(4));
    assert_eq!(le.at, NOW);
    let c = ready_false(&f, "BadArgument", "failed");
    assert!(c.message.contains("the model cannot be deployed"));
    assert!(
        f.events
            .iter()
            .any(|e| e.warning && e.reason == "BadArgument")
    );

    // The next pass holds: no read, no write.
    let mut next = s.clone();
    next.md.status = f.status.clone();
    next.poll = Known::Unknown;
    let f2 = finish(&decide_ml(&next), "held");
    ready_false(&f2, "BadArgument", "held");
    assert_eq!(f2.requeue, None);
}

#[test]
fn a_transiently_failed_operation_is_retried_without_recording_an_error() {
    for code in ["Conflict", "InternalServerError", "Canceled"] {
        let mut s = managed();
        s.md.status.pending_operation = Some(pending(OperationKind::Update, endpoint_id()));
        s.poll = Known::Known(Ok(Poll::Failed {
            code: code.into(),
            message: "try again".into(),
        }));
        let f = finish(&decide_ml(&s), code);
        assert_eq!(f.status.pending_operation, None, "{code}");
        assert_eq!(f.status.last_error, None, "{code}");
        assert_eq!(f.requeue, Some(s.timing.backoff), "{code}");
        assert_eq!(ready(&f).status, "False");
    }
    let mut s = managed();
    s.md.status.pending_operation = Some(pending(OperationKind::Update, endpoint_id()));
    s.poll = Known::Known(Ok(Poll::Failed {
        code: "Conflict".into(),
        message: "another operation".into(),
    }));
    let f = finish(&decide_ml(&s), "conflict");
    ready_false(&f, WAITING_FOR_AZURE, "conflict");
}

#[test]
fn a_failed_poll_keeps_the_operation_pending() {
    let mut s = managed();
    s.md.status.pending_operation = Some(pending(OperationKind::Create, endpoint_id()));
    s.poll = Known::Known(Err(azure_err(429, "TooManyRequests", Some(12))));
    let f = finish(&decide_ml(&s), "poll 429");
    ready_false(&f, AZURE_THROTTLED, "poll 429");
    assert_eq!(f.requeue, Some(Duration::from_secs(12)));
    assert!(f.status.pending_operation.is_some());
    assert_eq!(f.status.last_error, None);
}

#[test]
fn a_terminal_error_of_this_generation_holds_and_of_an_older_one_does_not() {
    let mut s = all_known(managed());
    s.md.generation = 3;
    s.md.status.last_error = Some(LastError {
        code: "InvalidResourceProperties".into(),
        message: "instanceType is invalid".into(),
        generation: Some(3),
        account_generation: None,
        at: NOW.into(),
    });
    s.endpoint = Known::Unknown;
    let f = finish(&decide_ml(&s), "held");
    let c = ready_false(&f, "InvalidResourceProperties", "held");
    assert!(c.message.contains("instanceType is invalid"));
    assert_eq!(f.requeue, None, "nothing is retried for this generation");

    s.md.status.last_error.as_mut().unwrap().generation = Some(2);
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Endpoint));
    s.endpoint = Known::Known(None);
    assert!(
        matches!(decide_ml(&s), MlStep::Write(_)),
        "the new spec is tried"
    );
}

// ------------------------------------------------------------------ refused writes

#[test]
fn a_terminally_refused_write_is_recorded_with_azures_code() {
    let mut s = all_known(managed());
    s.md.generation = 2;
    s.write_error = Some(azure_err(400, "InvalidResourceProperties", None));
    let f = finish(&decide_ml(&s), "refused");
    let c = ready_false(&f, "InvalidResourceProperties", "refused");
    assert!(
        c.message.contains("the request is invalid"),
        "{}",
        c.message
    );
    let le = f.status.last_error.clone().expect("last_error");
    assert_eq!(le.code, "InvalidResourceProperties");
    assert_eq!(le.generation, Some(2));
    assert!(f.events.iter().any(|e| e.warning));
}

#[test]
fn a_transiently_refused_write_waits_at_least_as_long_as_azure_asks() {
    for (status, code, retry, reason) in [
        (409, "Conflict", Some(40), WAITING_FOR_AZURE),
        (409, "AnotherOperationInProgress", None, WAITING_FOR_AZURE),
        (429, "TooManyRequests", Some(25), AZURE_THROTTLED),
        (503, "ServiceUnavailable", None, AZURE_UNAVAILABLE),
    ] {
        let mut s = all_known(managed());
        s.write_error = Some(azure_err(status, code, retry));
        let f = finish(&decide_ml(&s), code);
        ready_false(&f, reason, code);
        assert_eq!(f.status.last_error, None, "{code}");
        let requeue = f.requeue.expect("requeued");
        assert!(requeue >= s.timing.backoff, "{code}");
        if let Some(r) = retry {
            assert!(requeue >= Duration::from_secs(r), "{code}: {requeue:?}");
        }
    }
}

#[test]
fn an_unauthorized_write_is_retried_at_resync_not_held_for_the_generation() {
    let mut s = all_known(managed());
    s.write_error = Some(azure_err(403, "AuthorizationFailed", None));
    let f = finish(&decide_ml(&s), "403");
    ready_false(&f, AUTHORIZATION_FAILED, "403");
    assert_eq!(f.requeue, Some(s.timing.resync));
    // The role is granted; the next pass (same generation) must try again.
    let mut next = s.clone();
    next.md.status = f.status.clone();
    next.write_error = None;
    next.endpoint = Known::Unknown;
    assert_eq!(
        decide_ml(&next),
        MlStep::Observe(MlNeed::Endpoint),
        "an auth failure is not a terminal error of the spec (last_error: {:?})",
        f.status.last_error
    );
}

// ------------------------------------------------------------------ ownership

#[test]
fn an_endpoint_this_resource_does_not_own_is_never_written() {
    type Case = (
        &'static str,
        Option<&'static str>,
        bool,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "another owner",
            Some("team-b/llama"),
            false,
            Some(OWNED_BY_ANOTHER_RESOURCE),
        ),
        (
            "another owner, adoptExisting",
            Some("team-b/llama"),
            true,
            Some(OWNED_BY_ANOTHER_RESOURCE),
        ),
        ("untagged", None, false, Some(ADOPTION_REFUSED)),
        ("untagged, adoptExisting", None, true, None),
        ("ours", Some("team-a/phi"), false, None),
    ];
    for form in [serving(managed()), serving(serverless())] {
        for (name, owner, adopt, refusal) in &cases {
            let mut s = form.clone();
            s.md.status.key_vault_secret = Some(stored_key());
            s.md.adopt_existing = *adopt;
            let mut ep = s.endpoint.get().unwrap().clone().unwrap();
            // Something to write, so a pass through would show.
            ep["properties"]["provisioningState"] = json!("Failed");
            match owner {
                Some(o) => ep["tags"][OWNER_TAG] = json!(o),
                None => {
                    ep["tags"].as_object_mut().unwrap().remove(OWNER_TAG);
                }
            }
            s.endpoint = Known::Known(Some(ep));
            let step = decide_ml(&s);
            match refusal {
                Some(reason) => {
                    let f = finish(&step, name);
                    let c = ready_false(&f, reason, name);
                    assert!(c.message.contains("team-a-phi"), "{name}");
                    if let Some(o) = owner {
                        assert!(c.message.contains(o), "{name}: names the owner");
                    }
                }
                None => {
                    let w = write_step(&step, name);
                    let kind = if owner.is_none() {
                        OperationKind::Adopt
                    } else {
                        OperationKind::Repair
                    };
                    assert_eq!(w.kind, kind, "{name}");
                    assert_eq!(
                        w.body.unwrap()["tags"][OWNER_TAG],
                        "team-a/phi",
                        "{name}: the write tags it ours"
                    );
                }
            }
        }
    }
    // Adopted and healthy: tagged ours by a write that keeps what Azure holds; once tagged,
    // the pass goes on to the deployments.
    let mut s = managed();
    s.md.adopt_existing = true;
    let mut ep = endpoint("Succeeded", json!({}));
    ep["tags"] = json!({"cost-center": "42"});
    ep["properties"]["description"] = json!("made in the portal");
    s.endpoint = Known::Known(Some(ep.clone()));
    let w = write_step(&decide_ml(&s), "adopt");
    assert_eq!(w.kind, OperationKind::Adopt);
    let body = w.body.unwrap();
    assert_eq!(body["tags"][OWNER_TAG], "team-a/phi");
    assert_eq!(body["tags"]["cost-center"], "42");
    assert_eq!(body["properties"]["description"], "made in the portal");
    ep["tags"][OWNER_TAG] = json!("team-a/phi");
    s.endpoint = Known::Known(Some(ep));
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Deployments));
}

// ------------------------------------------------------------------ serverless

#[test]
fn a_serverless_model_without_a_marketplace_offer_gets_its_endpoint() {
    let mut s = serverless();
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Endpoint));
    s.endpoint = Known::Known(None);
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Model));
    s.model = Known::Known(Some(RegistryModel {
        version: "2".into(),
        serverless: true,
        ..Default::default()
    }));
    let w = write_step(&decide_ml(&s), "create");
    assert_eq!(w.kind, OperationKind::Create);
    assert_eq!(w.target, format!("{WS}/serverlessEndpoints/team-a-phi"));
    let b = w.body.unwrap();
    assert_eq!(b["sku"]["name"], "Consumption");
    assert_eq!(
        b["properties"]["modelSettings"]["modelId"],
        SERVERLESS_MODEL
    );
    assert_eq!(b["properties"]["authMode"], "Key");
    assert_eq!(b["tags"][OWNER_TAG], "team-a/phi");
    assert_eq!(b["location"], "eastus");
}

#[test]
fn a_marketplace_model_is_refused_unless_the_workspace_allows_its_offer() {
    let policies: Vec<(&str, MarketplacePolicy, bool)> = vec![
        ("no policy", MarketplacePolicy::default(), false),
        (
            "another publisher",
            MarketplacePolicy {
                allowed_publishers: vec!["cohere".into()],
                allowed_models: vec![],
            },
            false,
        ),
        (
            "another model",
            MarketplacePolicy {
                allowed_publishers: vec![],
                allowed_models: vec!["azureml://registries/azureml-meta/models/Other".into()],
            },
            false,
        ),
        (
            "the publisher",
            MarketplacePolicy {
                allowed_publishers: vec!["MetaGenAI".into()],
                allowed_models: vec![],
            },
            true,
        ),
        (
            "the model",
            MarketplacePolicy {
                allowed_publishers: vec![],
                allowed_models: vec![format!("{SERVERLESS_MODEL}/")],
            },
            true,
        ),
    ];
    for (name, policy, allowed) in policies {
        let mut s = serverless();
        s.endpoint = Known::Known(None);
        s.model = Known::Known(Some(marketplace_model()));
        s.workspace.marketplace = policy;
        let step = decide_ml(&s);
        if allowed {
            assert_eq!(step, MlStep::Observe(MlNeed::Marketplace), "{name}");
        } else {
            let f = finish(&step, name);
            let c = ready_false(&f, MARKETPLACE_NOT_ALLOWED, name);
            assert!(c.message.contains("metagenai"), "{name}: {}", c.message);
            assert_eq!(f.requeue, Some(s.timing.resync));
        }
    }
}

#[test]
fn an_allowed_marketplace_model_is_subscribed_to_before_its_endpoint() {
    let mut s = serverless();
    s.endpoint = Known::Known(None);
    s.model = Known::Known(Some(marketplace_model()));
    s.workspace.marketplace.allowed_publishers = vec!["metagenai".into()];
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Marketplace));

    s.marketplace = Known::Known(None);
    let w = write_step(&decide_ml(&s), "subscribe");
    assert_eq!(w.kind, OperationKind::Create);
    assert_eq!(
        w.target,
        format!("{WS}/marketplaceSubscriptions/Meta-Llama-3-1-8B-Instruct")
    );
    assert_eq!(
        w.body.unwrap(),
        json!({"properties": {"modelId": SERVERLESS_MODEL}})
    );

    s.marketplace = Known::Known(Some(subscription("Creating")));
    let f = finish(&decide_ml(&s), "subscribing");
    ready_false(&f, PROVISIONING, "subscribing");
    assert_eq!(f.requeue, Some(s.timing.poll_interval));

    s.marketplace = Known::Known(Some(subscription("Failed")));
    let f = finish(&decide_ml(&s), "subscription failed");
    ready_false(&f, MARKETPLACE_SUBSCRIPTION_FAILED, "subscription failed");

    s.marketplace = Known::Known(Some(subscription("Succeeded")));
    let w = write_step(&decide_ml(&s), "endpoint");
    assert_eq!(w.kind, OperationKind::Create);
    assert_eq!(w.target, format!("{WS}/serverlessEndpoints/team-a-phi"));
    assert_eq!(
        w.body.unwrap()["properties"]["modelSettings"]["modelId"],
        SERVERLESS_MODEL
    );
}

#[test]
fn a_serverless_model_that_is_not_offered_is_refused() {
    let cases: Vec<(&str, Option<RegistryModel>, &str, Option<&str>)> = vec![
        ("not in the catalogue", None, MODEL_NOT_FOUND, None),
        (
            "managed compute only",
            Some(phi()),
            MODEL_NOT_OFFERED,
            Some("managed compute"),
        ),
        (
            "offered nowhere",
            Some(RegistryModel::default()),
            MODEL_NOT_OFFERED,
            None,
        ),
    ];
    for (name, model, reason, hint) in cases {
        let mut s = serverless();
        s.endpoint = Known::Known(None);
        s.model = Known::Known(model);
        let f = finish(&decide_ml(&s), name);
        let c = ready_false(&f, reason, name);
        assert!(c.message.contains(SERVERLESS_MODEL), "{name}");
        match hint {
            Some(h) => assert!(c.message.contains(h), "{name}: {}", c.message),
            None => assert!(!c.message.contains("managed compute"), "{name}"),
        }
    }
}

#[test]
fn a_serverless_endpoint_is_waited_for_repaired_keyed_and_ready() {
    let mut s = serverless();
    s.endpoint = Known::Known(Some(serverless_endpoint("Creating")));
    let f = finish(&decide_ml(&s), "creating");
    ready_false(&f, PROVISIONING, "creating");
    assert_eq!(f.requeue, Some(s.timing.poll_interval));

    s.endpoint = Known::Known(Some(serverless_endpoint("Failed")));
    let w = write_step(&decide_ml(&s), "repair");
    assert_eq!(w.kind, OperationKind::Repair);
    assert_eq!(w.target, format!("{WS}/serverlessEndpoints/team-a-phi"));
    let b = w.body.unwrap();
    assert_eq!(
        b["properties"]["modelSettings"]["modelId"],
        SERVERLESS_MODEL
    );
    for ro in ["provisioningState", "inferenceEndpoint"] {
        assert!(b["properties"][ro].is_null(), "{ro}: {b}");
    }
    assert!(b.get("id").is_none() && b.get("systemData").is_none());

    s.endpoint = Known::Known(Some(serverless_endpoint("Succeeded")));
    assert_eq!(
        decide_ml(&s),
        MlStep::StoreKey {
            endpoint_id: format!("{WS}/serverlessEndpoints/team-a-phi"),
            vault_uri: "https://kv.vault.azure.net/".into(),
            secret_name: "shared-ws-team-a-phi".into(),
        }
    );
    s.stored_key = Some(stored_key());
    let f = finish(&decide_ml(&s), "ready");
    assert_eq!(ready(&f).status, "True");
    assert_eq!(ready(&f).reason, READY);
    assert_eq!(f.status.scoring_uri.as_deref(), Some(SERVERLESS_URI));
    assert_eq!(f.status.sku_name.as_deref(), Some("Serverless"));
    assert_eq!(f.status.endpoint_name.as_deref(), Some("team-a-phi"));
    assert_eq!(f.status.key_vault_secret, Some(stored_key()));
    assert!(f.status.traffic.is_empty());
    assert_eq!(f.requeue, Some(s.timing.resync));
}

// ------------------------------------------------------------------ deletion

#[test]
fn deletion_with_retain_lets_go_without_touching_azure() {
    for form in [serving(managed()), serving(serverless())] {
        let mut s = deleting(form);
        s.md.deletion_policy = DeletionPolicy::Retain;
        s.endpoint = Known::Unknown;
        let f = finish(&decide_ml(&s), "retain");
        assert!(f.release);
        assert!(
            f.events.iter().any(|e| e.reason == RETAINED && !e.warning),
            "{:?}",
            f.events
        );
    }
}

#[test]
fn deletion_of_an_absent_or_foreign_endpoint_lets_go() {
    let mut s = deleting(managed());
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Endpoint));
    s.endpoint = Known::Known(None);
    let f = finish(&decide_ml(&s), "absent");
    assert!(f.release);
    assert!(f.events.iter().any(|e| e.reason == DELETED));

    for owner in [Some("team-b/llama"), None] {
        let mut s = deleting(serving(managed()));
        let mut ep = endpoint("Succeeded", json!({"x": 100}));
        match owner {
            Some(o) => ep["tags"][OWNER_TAG] = json!(o),
            None => ep["tags"] = json!({}),
        }
        s.endpoint = Known::Known(Some(ep));
        let f = finish(&decide_ml(&s), "foreign");
        assert!(f.release, "{owner:?}");
        assert!(
            f.events.iter().any(|e| e.reason == LEFT_IN_PLACE),
            "{owner:?}: {:?}",
            f.events
        );
    }

    // Untagged but adopted: deleted like its own.
    let mut s = deleting(serving(managed()));
    s.md.adopt_existing = true;
    let mut ep = s.endpoint.get().unwrap().clone().unwrap();
    ep["tags"] = json!({});
    s.endpoint = Known::Known(Some(ep));
    assert!(matches!(decide_ml(&s), MlStep::Write(w) if w.target == endpoint_id()));
}

#[test]
fn managed_compute_is_deleted_traffic_first_then_deployments_then_endpoint() {
    let mut s = deleting(serving(managed()));
    let a = desired(&s);
    let b = "phi-old-0a1b2c3d".to_string();
    s.endpoint = Known::Known(Some(endpoint(
        "Succeeded",
        json!({a.clone(): 90, b.clone(): 10}),
    )));
    s.deployments = Known::Known(vec![
        deployment(&a, A100, 1, "Succeeded"),
        deployment(&b, A100, 1, "Succeeded"),
    ]);

    // 1. no traffic
    let w = write_step(&decide_ml(&s), "traffic off");
    assert_eq!(
        (w.kind, w.target.as_str()),
        (OperationKind::Update, endpoint_id().as_str())
    );
    let body = w.body.unwrap();
    assert_eq!(body["properties"]["traffic"], json!({}));
    assert_eq!(body["tags"][OWNER_TAG], "team-a/phi");

    // 2. the deployments, one at a time
    s.endpoint = Known::Known(Some(endpoint("Succeeded", json!({}))));
    let w = write_step(&decide_ml(&s), "delete a");
    assert_eq!(
        (w.kind, w.target.as_str(), w.body.as_ref()),
        (OperationKind::Delete, deployment_id(&a).as_str(), None)
    );
    s.deployments = Known::Known(vec![
        deployment(&a, A100, 1, "Deleting"),
        deployment(&b, A100, 1, "Succeeded"),
    ]);
    let f = finish(&decide_ml(&s), "a deleting");
    ready_false(&f, DELETING, "a deleting");
    assert!(!f.release);
    assert_eq!(f.requeue, Some(s.timing.poll_interval));
    s.deployments = Known::Known(vec![deployment(&b, A100, 1, "Succeeded")]);
    let w = write_step(&decide_ml(&s), "delete b");
    assert_eq!(
        (w.kind, w.target.as_str(), w.body.as_ref()),
        (OperationKind::Delete, deployment_id(&b).as_str(), None)
    );

    // 3. the endpoint
    s.deployments = Known::Known(vec![]);
    let w = write_step(&decide_ml(&s), "delete endpoint");
    assert_eq!(
        (w.kind, w.target.as_str(), w.body.as_ref()),
        (OperationKind::Delete, endpoint_id().as_str(), None)
    );
    s.endpoint = Known::Known(Some(endpoint("Deleting", json!({}))));
    let f = finish(&decide_ml(&s), "endpoint deleting");
    ready_false(&f, DELETING, "endpoint deleting");
    assert!(!f.release);

    // 4. gone
    s.endpoint = Known::Known(None);
    assert!(finish(&decide_ml(&s), "gone").release);
}

#[test]
fn deletion_reads_the_deployments_before_touching_the_traffic() {
    let mut s = deleting(serving(managed()));
    s.deployments = Known::Unknown;
    assert_eq!(decide_ml(&s), MlStep::Observe(MlNeed::Deployments));
}

#[test]
fn a_serverless_endpoint_is_deleted_directly() {
    let mut s = deleting(serving(serverless()));
    let w = write_step(&decide_ml(&s), "delete");
    assert_eq!(
        (w.kind, w.target.as_str(), w.body.as_ref()),
        (
            OperationKind::Delete,
            format!("{WS}/serverlessEndpoints/team-a-phi").as_str(),
            None
        )
    );
    s.endpoint = Known::Known(None);
    assert!(finish(&decide_ml(&s), "gone").release);
}

#[test]
fn deletion_that_cannot_reach_azure_lets_go_with_a_warning() {
    type Case = (&'static str, fn(&mut MlSnapshot));
    let cases: Vec<Case> = vec![
        ("workspace missing", |s| s.workspace.exists = false),
        ("namespace not allowed", |s| {
            s.workspace.namespace_allowed = false
        }),
        ("credential error", |s| {
            s.credential_error = Some("no identity".into())
        }),
    ];
    for (name, edit) in cases {
        let mut s = deleting(serving(managed()));
        edit(&mut s);
        let f = finish(&decide_ml(&s), name);
        assert!(f.release, "{name}");
        assert!(
            f.events.iter().any(|e| e.warning
                && e.reason == NOT_DELETED_IN_AZURE
                && e.note.contains("team-a-phi")),
            "{name}: {:?}",
            f.events
        );
    }
}

#[test]
fn deletion_goes_on_when_the_workspace_is_deleting_or_a_terminal_error_was_recorded() {
    let mut s = deleting(serving(managed()));
    s.workspace.deleting = true;
    s.workspace.location = None;
    s.md.status.last_error = Some(LastError {
        code: "BadArgument".into(),
        message: "x".into(),
        generation: Some(1),
        account_generation: None,
        at: NOW.into(),
    });
    let w = write_step(&decide_ml(&s), "delete");
    assert_eq!(w.target, endpoint_id(), "traffic off first");
}

#[test]
fn a_refused_delete_is_retried_and_never_recorded_as_last_error() {
    let mut s = deleting(serving(managed()));
    s.write_error = Some(azure_err(400, "BadArgument", None));
    let f = finish(&decide_ml(&s), "refused");
    assert!(!f.release);
    assert_eq!(f.status.last_error, None);
    assert_eq!(f.requeue, Some(s.timing.resync));
    let mut s = deleting(serving(managed()));
    s.md.status.pending_operation = Some(pending(OperationKind::Delete, endpoint_id()));
    s.poll = Known::Known(Ok(Poll::Failed {
        code: "BadArgument".into(),
        message: "x".into(),
    }));
    let f = finish(&decide_ml(&s), "op failed");
    assert_eq!(f.status.last_error, None);
    assert_eq!(f.status.pending_operation, None);
    assert!(!f.release);
}

// ------------------------------------------------------------------ invariants

/// Many combinations of what Azure holds; whatever the policy decides must keep traffic on a
/// serving deployment, never delete one with traffic, never write while an operation runs or
/// before the checks, and say why whenever it is not Ready.
#[test]
fn invariants_hold_over_many_snapshots() {
    let spec_new = managed();
    let new = desired(&spec_new);
    let old = "phi-4-mini-instruct-0ld0ld00".to_string();
    let traffics = [
        json!({}),
        json!({old.clone(): 100}),
        json!({new.clone(): 100}),
        json!({old.clone(): 0, new.clone(): 100}),
        json!({old.clone(): 100, new.clone(): 0}),
        json!({old.clone(): 50, new.clone(): 50}),
    ];
    let endpoints: Vec<Known<Option<Value>>> = {
        let mut v = vec![Known::Unknown, Known::Known(None)];
        for st in ["Succeeded", "Creating", "Failed", "Deleting"] {
            for t in &traffics {
                v.push(Known::Known(Some(endpoint(st, t.clone()))));
            }
        }
        let mut foreign = endpoint("Succeeded", json!({old.clone(): 100}));
        foreign["tags"][OWNER_TAG] = json!("team-b/x");
        v.push(Known::Known(Some(foreign)));
        let mut untagged = endpoint("Succeeded", json!({old.clone(): 100}));
        untagged["tags"] = json!({});
        v.push(Known::Known(Some(untagged)));
        v
    };
    let dep_lists: Vec<Known<Vec<Value>>> = {
        let o = |st| deployment(&old, A100, 1, st);
        let n = |st, c| deployment(&new, A100, c, st);
        vec![
            Known::Unknown,
            Known::Known(vec![]),
            Known::Known(vec![o("Succeeded")]),
            Known::Known(vec![n("Succeeded", 1)]),
            Known::Known(vec![n("Succeeded", 3)]),
            Known::Known(vec![n("Creating", 1)]),
            Known::Known(vec![n("Failed", 1)]),
            Known::Known(vec![o("Succeeded"), n("Succeeded", 1)]),
            Known::Known(vec![n("Succeeded", 1), o("Succeeded")]),
            Known::Known(vec![o("Succeeded"), n("Creating", 1)]),
            Known::Known(vec![o("Deleting"), n("Succeeded", 1)]),
            Known::Known(vec![o("Failed"), n("Succeeded", 2)]),
        ]
    };
    let checks: Vec<fn(&mut MlSnapshot)> = vec![
        |_| {},
        |s| {
            s.model = Known::Known(Some(phi()));
            s.vm = Known::Known(Some(a100()));
            s.quota = Known::Known(Some(quota(0, 96)));
        },
        |s| {
            s.model = Known::Known(Some(phi()));
            s.vm = Known::Known(Some(a100()));
            s.quota = Known::Known(Some(quota(0, 24)));
        },
        |s| s.model = Known::Known(None),
    ];
    let extras: Vec<fn(&mut MlSnapshot)> = vec![
        |_| {},
        |s| s.md.status.key_vault_secret = Some(stored_key()),
        |s| {
            s.md.status.pending_operation = Some(pending(OperationKind::Update, endpoint_id()));
            s.poll = Known::Known(Ok(Poll::InProgress { retry_after: None }));
        },
        |s| s.md.deletion_policy = DeletionPolicy::Retain,
        |s| s.md.adopt_existing = true,
    ];
    let mut n = 0;
    let mut writes = 0;
    for deleting_now in [false, true] {
        for ep in &endpoints {
            for deps in &dep_lists {
                for check in &checks {
                    for extra in &extras {
                        let mut s = managed();
                        s.deleting = deleting_now;
                        s.endpoint = ep.clone();
                        s.deployments = deps.clone();
                        check(&mut s);
                        extra(&mut s);
                        let step = decide_ml(&s);
                        n += 1;
                        writes += usize::from(matches!(step, MlStep::Write(_)));
                        check_invariants(&s, &step);
                    }
                }
            }
        }
    }
    assert!(n > 5000 && writes > 500, "{n} snapshots, {writes} writes");

    // Serverless: no traffic, but the same rules for holds, rejections and deletion.
    for deleting_now in [false, true] {
        for ep in [
            Known::Unknown,
            Known::Known(None),
            Known::Known(Some(serverless_endpoint("Succeeded"))),
            Known::Known(Some(serverless_endpoint("Creating"))),
            Known::Known(Some(serverless_endpoint("Failed"))),
        ] {
            for model in [
                Known::Unknown,
                Known::Known(None),
                Known::Known(Some(phi())),
                Known::Known(Some(marketplace_model())),
            ] {
                for extra in &extras {
                    let mut s = serverless();
                    s.deleting = deleting_now;
                    s.endpoint = ep.clone();
                    s.model = model.clone();
                    extra(&mut s);
                    check_invariants(&s, &decide_ml(&s));
                }
            }
        }
    }
}

fn check_invariants(s: &MlSnapshot, step: &MlStep) {
    let ctx = || {
        format!(
            "deleting={} endpoint={:?} deployments={:?} model={:?} pending={:?}\n→ {step:?}",
            s.deleting,
            s.endpoint.get().map(|e| e.as_ref().map(|e| (
                state_of(e).to_string(),
                e["properties"]["traffic"].clone(),
                e["tags"].clone()
            ))),
            s.deployments.get().map(|d| d
                .iter()
                .map(|d| (
                    d["name"].as_str().unwrap_or_default().to_string(),
                    state_of(d).to_string(),
                    d["sku"]["capacity"].clone()
                ))
                .collect::<Vec<_>>()),
            s.model,
            s.md.status.pending_operation.is_some(),
        )
    };
    let observed_ep = s.endpoint.get().and_then(|e| e.as_ref());
    let observed_traffic = observed_ep.map(traffic_of).unwrap_or_default();
    let deps: Vec<Value> = s.deployments.get().cloned().unwrap_or_default();
    match step {
        MlStep::Write(w) => {
            assert!(
                s.md.status.pending_operation.is_none(),
                "no write while an operation runs: {}",
                ctx()
            );
            assert!(!w.target.is_empty() && !w.what.is_empty(), "{}", ctx());
            assert!(w.target.starts_with(WS), "{}", ctx());
            if s.md.deletion_policy == DeletionPolicy::Retain && s.deleting {
                panic!("Retain writes nothing: {}", ctx());
            }
            if let Some(ep) = observed_ep {
                assert!(
                    owner_of(ep) == Some("team-a/phi")
                        || (owner_of(ep).is_none() && s.md.adopt_existing),
                    "only our own endpoint is written: {}",
                    ctx()
                );
            }
            // A deployment is deleted only when it has no traffic.
            if w.body.is_none()
                && let Some((_, name)) = w.target.rsplit_once("/deployments/")
            {
                assert_eq!(
                    observed_traffic.get(name).copied().unwrap_or(0),
                    0,
                    "a deployment with traffic is never deleted: {}",
                    ctx()
                );
                if !s.deleting {
                    let want = desired(s);
                    assert_eq!(
                        observed_traffic,
                        BTreeMap::from([(want.clone(), 100)]),
                        "an old deployment goes only once the new one has all traffic: {}",
                        ctx()
                    );
                    assert!(!name.eq_ignore_ascii_case(&want), "{}", ctx());
                }
            }
            // A traffic change sums to 100 on serving deployments (empty only in deletion).
            if let Some(b) = &w.body
                && w.target == endpoint_id()
                && b["properties"]["traffic"].is_object()
                && traffic_of(b) != observed_traffic
            {
                let t = traffic_of(b);
                if s.deleting {
                    assert!(t.is_empty(), "deletion routes no traffic: {}", ctx());
                } else {
                    assert_eq!(t.values().sum::<i32>(), 100, "{}", ctx());
                    for (name, pct) in &t {
                        let d = deps
                            .iter()
                            .find(|d| d["name"].as_str() == Some(name.as_str()))
                            .unwrap_or_else(|| {
                                panic!("traffic to a deployment that exists: {}", ctx())
                            });
                        assert!(
                            *pct == 0 || state_of(d) == "Succeeded",
                            "traffic only to a serving deployment: {}",
                            ctx()
                        );
                    }
                }
            }
            if s.deleting {
                let traffic_off = w.kind == OperationKind::Update
                    && w.body.as_ref().map(|b| b["properties"]["traffic"].clone())
                        == Some(json!({}));
                assert!(
                    w.body.is_none() || traffic_off,
                    "deletion only deletes or routes traffic off: {}",
                    ctx()
                );
            }
            // Managed compute: nothing is created before the model, VM size and quota passed.
            if !s.deleting
                && matches!(s.md.form, Form::ManagedCompute(_))
                && w.kind == OperationKind::Create
            {
                assert!(
                    matches!(&s.model, Known::Known(Some(_)))
                        && matches!(&s.vm, Known::Known(Some(_)))
                        && matches!(&s.quota, Known::Known(Some(_))),
                    "created only after the checks: {}",
                    ctx()
                );
            }
        }
        MlStep::Finish(f) if f.release => {
            assert!(s.deleting, "only deletion lets go: {}", ctx());
            assert!(!f.events.is_empty(), "letting go is told: {}", ctx());
            if s.md.deletion_policy == DeletionPolicy::Delete {
                assert!(
                    observed_ep.is_none_or(|ep| owner_of(ep) != Some("team-a/phi")),
                    "our own endpoint goes before the finalizer: {}",
                    ctx()
                );
            }
        }
        MlStep::Finish(f) => {
            let c = ready(f);
            assert_eq!(c.observed_generation, Some(s.md.generation), "{}", ctx());
            assert_eq!(f.status.observed_generation, Some(s.md.generation));
            if c.status == "False" {
                assert!(!c.reason.is_empty(), "a reason: {}", ctx());
                assert!(!c.message.is_empty(), "a message: {}", ctx());
            }
            if c.status == "True" {
                assert!(!s.deleting, "{}", ctx());
                if let Form::ManagedCompute(_) = s.md.form {
                    assert_eq!(f.status.traffic.values().sum::<i32>(), 100, "{}", ctx());
                    assert_eq!(deps.len(), 1, "Ready with one deployment: {}", ctx());
                }
            }
        }
        MlStep::StoreKey { secret_name, .. } => {
            assert!(!s.deleting, "{}", ctx());
            assert_eq!(secret_name, "shared-ws-team-a-phi");
        }
        MlStep::Observe(_) | MlStep::EndOperation => {}
    }
}

// ------------------------------------------------------------------ small helpers

#[test]
fn a_pending_operation_keeps_what_azure_said_to_poll() {
    let s = managed();
    let w = MlWriteStep {
        kind: OperationKind::Create,
        target: endpoint_id(),
        body: Some(json!({})),
        what: "create".into(),
    };
    let both = crate::azure::ml::MlWrite {
        status: 201,
        async_operation_url: Some("https://management.azure.com/op/1".into()),
        location_url: Some("https://management.azure.com/loc/1".into()),
        ..Default::default()
    };
    let p = pending_of(&s, &w, &both).unwrap();
    assert_eq!(p.kind, OperationKind::Create);
    assert_eq!(
        p.async_operation_url.as_deref(),
        Some("https://management.azure.com/op/1")
    );
    assert_eq!(p.location_url, None, "Azure-AsyncOperation is preferred");
    assert_eq!(p.target.as_deref(), Some(endpoint_id().as_str()));
    assert_eq!(p.generation, Some(1));
    assert_eq!(p.started_at, NOW);
    let loc = crate::azure::ml::MlWrite {
        status: 202,
        location_url: Some("https://management.azure.com/loc/1".into()),
        ..Default::default()
    };
    assert_eq!(
        pending_of(&s, &w, &loc).unwrap().location_url.as_deref(),
        Some("https://management.azure.com/loc/1")
    );
    let done = crate::azure::ml::MlWrite {
        status: 200,
        ..Default::default()
    };
    assert_eq!(pending_of(&s, &w, &done), None);
}

#[test]
fn names_of_secrets_and_marketplace_subscriptions() {
    assert_eq!(
        secret_name("shared-ws", "team-a-phi"),
        "shared-ws-team-a-phi"
    );
    assert_eq!(secret_name("-odd_prefix.", "ep"), "odd-prefix-ep");
    let m = ModelRef::parse(SERVERLESS_MODEL).unwrap();
    assert_eq!(
        marketplace_subscription_name(&m),
        "Meta-Llama-3-1-8B-Instruct"
    );
    let long =
        ModelRef::parse(&format!("azureml://registries/r/models/{}", "x".repeat(80))).unwrap();
    assert_eq!(marketplace_subscription_name(&long).len(), 50);
}

#[test]
fn a_repeated_refusal_warns_once() {
    let mut s = all_known(managed());
    s.quota = Known::Known(Some(quota(0, 24)));
    let f = finish(&decide_ml(&s), "first");
    assert_eq!(f.events.len(), 1);
    s.md.status = f.status.clone();
    s.now = "2026-12-04T00:05:00Z".into();
    let f2 = finish(&decide_ml(&s), "second");
    assert!(f2.events.is_empty(), "{:?}", f2.events);
    assert_eq!(
        ready(&f2).last_transition_time,
        ready(&f).last_transition_time
    );
}

// ------------------------------------------------------------------ fixtures

pub(super) mod fixtures {
    use super::*;
    use crate::crd::{Condition, ManagedComputeSpec};

    pub const MODEL: &str = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1";
    pub const SERVERLESS_MODEL: &str =
        "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct";
    pub const A100: &str = "Standard_NC24ads_A100_v4";
    pub const A100_48: &str = "Standard_NC48ads_A100_v4";
    pub const A100_FAMILY: &str = "standardNCADSA100v4Family";
    pub const WS: &str = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/proj";
    pub const SCORING_URI: &str = "https://team-a-phi.eastus.inference.ml.azure.com/score";
    pub const SERVERLESS_URI: &str = "https://team-a-phi.eastus.models.ai.azure.com";
    pub const NOW: &str = "2026-12-04T00:00:00Z";

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
            now: NOW.into(),
            timing: MlTiming {
                poll_interval: Duration::from_secs(5),
                resync: Duration::from_secs(300),
                backoff: Duration::from_secs(2),
            },
            deleting: false,
        }
    }

    pub fn serverless() -> MlSnapshot {
        let mut s = managed();
        s.md.form =
            Form::Serverless(serde_json::from_value(json!({"modelId": SERVERLESS_MODEL})).unwrap());
        s
    }

    /// Everything read that a create needs, the endpoint absent: the next step is a write.
    pub fn all_known(mut s: MlSnapshot) -> MlSnapshot {
        s.endpoint = Known::Known(None);
        s.deployments = Known::Known(vec![]);
        s.model = Known::Known(Some(match s.md.form {
            Form::ManagedCompute(_) => phi(),
            Form::Serverless(_) => RegistryModel {
                version: "1".into(),
                serverless: true,
                ..Default::default()
            },
        }));
        s.vm = Known::Known(Some(a100()));
        s.quota = Known::Known(Some(quota(0, 96)));
        s.marketplace = Known::Known(None);
        s
    }

    /// The endpoint serving the spec's deployment with all traffic, the key stored in this
    /// pass: the next step is Ready (until the test changes something).
    pub fn serving(s: MlSnapshot) -> MlSnapshot {
        let mut s = all_known(s);
        s.stored_key = Some(stored_key());
        match s.md.form.clone() {
            Form::ManagedCompute(mc) => {
                let want = desired(&s);
                s.endpoint = Known::Known(Some(endpoint("Succeeded", json!({want.clone(): 100}))));
                s.deployments = Known::Known(vec![deployment(
                    &want,
                    &mc.instance_type,
                    i64::from(mc.instance_count),
                    "Succeeded",
                )]);
            }
            Form::Serverless(_) => {
                s.endpoint = Known::Known(Some(serverless_endpoint("Succeeded")));
            }
        }
        s
    }

    pub fn deleting(mut s: MlSnapshot) -> MlSnapshot {
        s.deleting = true;
        s
    }

    /// Merge `patch` into the managed-compute spec.
    pub fn set_spec(s: &mut MlSnapshot, patch: Value) {
        let Form::ManagedCompute(mc) = &s.md.form else {
            panic!("managed compute only")
        };
        let mut v = serde_json::to_value(mc).unwrap();
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        s.md.form = Form::ManagedCompute(serde_json::from_value(v).unwrap());
    }

    pub fn mc_of(s: &MlSnapshot) -> ManagedComputeSpec {
        match &s.md.form {
            Form::ManagedCompute(mc) => mc.clone(),
            Form::Serverless(_) => panic!("managed compute only"),
        }
    }

    pub fn deps_of(s: &MlSnapshot) -> Vec<Value> {
        s.deployments.get().cloned().unwrap_or_default()
    }

    /// The deployment name the spec asks for.
    pub fn desired(s: &MlSnapshot) -> String {
        let mc = mc_of(s);
        online_deployment_name(&mc.model, &mc.instance_type)
    }

    pub fn endpoint_id() -> String {
        format!("{WS}/onlineEndpoints/team-a-phi")
    }

    pub fn deployment_id(name: &str) -> String {
        format!("{WS}/onlineEndpoints/team-a-phi/deployments/{name}")
    }

    pub fn phi() -> RegistryModel {
        RegistryModel {
            version: "1".into(),
            managed_compute_skus: vec![A100.into(), A100_48.into()],
            serverless: false,
            marketplace_offer: None,
        }
    }

    pub fn marketplace_model() -> RegistryModel {
        RegistryModel {
            version: "4".into(),
            managed_compute_skus: vec![],
            serverless: true,
            marketplace_offer: Some("metagenai/meta-llama-3-1-8b-instruct-offer/plan".into()),
        }
    }

    pub fn a100() -> VmSize {
        VmSize {
            name: A100.into(),
            family: A100_FAMILY.into(),
            vcpus: 24,
        }
    }

    pub fn quota(current: u64, limit: u64) -> FamilyUsage {
        FamilyUsage {
            family: A100_FAMILY.into(),
            current,
            limit,
        }
    }

    pub fn stored_key() -> KeyVaultSecretRef {
        KeyVaultSecretRef {
            vault_uri: "https://kv.vault.azure.net/".into(),
            name: "shared-ws-team-a-phi".into(),
            version: Some("v1".into()),
        }
    }

    pub fn pending(kind: OperationKind, target: String) -> PendingOperation {
        PendingOperation {
            kind,
            async_operation_url: Some("https://management.azure.com/operations/1".into()),
            location_url: None,
            started_at: NOW.into(),
            generation: Some(1),
            target: Some(target),
        }
    }

    pub fn azure_err(status: u16, code: &str, retry_after_s: Option<u64>) -> AzureError {
        AzureError::response(
            "ml.put",
            status,
            code.into(),
            format!("{code}: the request is invalid or cannot be served now"),
            retry_after_s.map(Duration::from_secs),
        )
    }

    /// An online endpoint as Azure ML returns it, tagged ours.
    pub fn endpoint(state: &str, traffic: Value) -> Value {
        json!({
            "id": endpoint_id(),
            "name": "team-a-phi",
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            "location": "eastus",
            "kind": "Managed",
            "tags": {OWNER_TAG: "team-a/phi", "costCenter": "42"},
            "identity": {"type": "SystemAssigned", "principalId": "p", "tenantId": "t"},
            "properties": {
                "authMode": "Key",
                "provisioningState": state,
                "scoringUri": SCORING_URI,
                "swaggerUri": "https://team-a-phi.eastus.inference.ml.azure.com/swagger.json",
                "publicNetworkAccess": "Enabled",
                "traffic": traffic,
            },
            "systemData": {"createdAt": "2026-12-01T00:00:00Z", "createdBy": "operator"},
        })
    }

    /// A managed online deployment as Azure ML returns it, with Azure's defaults filled in.
    pub fn deployment(name: &str, instance_type: &str, capacity: i64, state: &str) -> Value {
        json!({
            "id": deployment_id(name),
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
            "location": "eastus",
            "kind": "Managed",
            "tags": {OWNER_TAG: "team-a/phi"},
            "sku": {"name": "Default", "tier": "Standard", "capacity": capacity},
            "properties": {
                "model": MODEL,
                "instanceType": instance_type,
                "endpointComputeType": "Managed",
                "provisioningState": state,
                "appInsightsEnabled": true,
                "egressPublicNetworkAccess": "Enabled",
                "scaleSettings": {"scaleType": "Default"},
                "livenessProbe": {"initialDelay": "PT10M", "period": "PT10S", "timeout": "PT2S", "successThreshold": 1, "failureThreshold": 30},
                "readinessProbe": {"initialDelay": "PT10S", "period": "PT10S", "timeout": "PT2S", "successThreshold": 1, "failureThreshold": 30},
                "requestSettings": {"maxConcurrentRequestsPerInstance": 1, "requestTimeout": "PT5S", "maxQueueWait": "PT0.5S"},
                "environmentVariables": {},
            },
            "systemData": {"createdAt": "2026-12-01T00:00:00Z", "createdBy": "operator"},
        })
    }

    pub fn serverless_endpoint(state: &str) -> Value {
        json!({
            "id": format!("{WS}/serverlessEndpoints/team-a-phi"),
            "name": "team-a-phi",
            "type": "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints",
            "location": "eastus",
            "tags": {OWNER_TAG: "team-a/phi"},
            "sku": {"name": "Consumption"},
            "properties": {
                "authMode": "Key",
                "modelSettings": {"modelId": SERVERLESS_MODEL},
                "provisioningState": state,
                "inferenceEndpoint": {"uri": SERVERLESS_URI, "headers": {}},
                "marketplaceSubscriptionId": format!("{WS}/marketplaceSubscriptions/Meta-Llama-3-1-8B-Instruct"),
                "endpointState": "Online",
            },
            "systemData": {"createdAt": "2026-12-01T00:00:00Z"},
        })
    }

    pub fn subscription(state: &str) -> Value {
        json!({
            "id": format!("{WS}/marketplaceSubscriptions/Meta-Llama-3-1-8B-Instruct"),
            "name": "Meta-Llama-3-1-8B-Instruct",
            "properties": {"modelId": SERVERLESS_MODEL, "provisioningState": state, "marketplaceSubscriptionStatus": "Subscribed"},
        })
    }

    // ---- assertions

    pub fn finish(step: &MlStep, ctx: &str) -> MlFinish {
        match step {
            MlStep::Finish(f) => f.clone(),
            other => panic!("{ctx}: expected Finish, got {other:?}"),
        }
    }

    pub fn write_step(step: &MlStep, ctx: &str) -> MlWriteStep {
        match step {
            MlStep::Write(w) => w.clone(),
            other => panic!("{ctx}: expected Write, got {other:?}"),
        }
    }

    pub fn ready(f: &MlFinish) -> &Condition {
        crate::plan::status::ready_condition(&f.status.conditions).expect("a Ready condition")
    }

    /// Ready False with `reason`; the condition.
    pub fn ready_false<'a>(f: &'a MlFinish, reason: &str, ctx: &str) -> &'a Condition {
        let c = ready(f);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason),
            "{ctx}: {}",
            c.message
        );
        assert!(!c.message.is_empty(), "{ctx}");
        c
    }
}
