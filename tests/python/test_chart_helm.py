"""The Helm chart, judged by Helm's own Go SDK (PyPI helm-python-sdk): lint, render with several value
sets, values.schema.json, and a real install/uninstall into the Kubernetes emulator."""
import json
import pathlib
import subprocess
import uuid

import helm_python as helm
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "aoai-operator"
NAMESPACE = "aoai-system"
RELEASE = "aoai-operator"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
TENANT_ID = "66666666-7777-8888-9999-000000000000"


def render(values=None, name=RELEASE, namespace=NAMESPACE):
    """Render the chart; return the list of objects (templates only, CRDs excluded)."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=name, namespace=namespace)
    objects = []
    for path, text in sorted(manifests.items()):
        if not path.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return objects


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind):
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(objects):
    deployment = one(objects, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


# --- lint --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        None,
        {"metrics": {"serviceMonitor": {"enabled": True}}, "networkPolicy": {"enabled": True}, "podDisruptionBudget": {"enabled": True}},
        {"workloadIdentity": {"enabled": False}},
    ],
    ids=["defaults", "everything-on", "no-workload-identity"],
)
def test_lint_has_no_findings(values):
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["messages"] == [], report["messages"]
    assert report["errors"] == [], report["errors"]


# --- render: defaults ---------------------------------------------------------------------------


def test_render_defaults_produces_the_expected_objects():
    objects = render()
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service", "NetworkPolicy"]
    )
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_deployment_is_hardened_and_highly_available():
    objects = render()
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(objects)
    assert deployment["spec"]["replicas"] == 2
    # Leader election so only one replica writes.
    assert "--leader-election=true" in c["args"]
    assert "--cluster-name=default" in c["args"]
    assert "--log-format=json" in c["args"]
    assert any(a.startswith("--lease-name=") for a in c["args"])
    assert c["args"][0] == "run"
    # Probes on /healthz and /readyz on the metrics port.
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["port"] == "metrics"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 8080}
    # Requests and limits.
    for section in ("requests", "limits"):
        assert set(c["resources"][section]) == {"cpu", "memory"}
    # Security context.
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and pod["securityContext"]["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    # No automatic token; the operator's API token is projected explicitly and short-lived.
    assert pod["automountServiceAccountToken"] is False
    sa = one(objects, "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    projected = [v for v in pod["volumes"] if v["name"] == "kube-api-access"][0]["projected"]["sources"]
    assert projected[0]["serviceAccountToken"]["expirationSeconds"] <= 3607
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/var/run/secrets/kubernetes.io/serviceaccount"]["readOnly"] is True
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    # The pod's namespace reaches the operator (leader election, Secrets namespace).
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_image_defaults_to_app_version_and_digest_pins_it():
    with helm.Chart.load(CHART) as chart:
        app_version = chart.metadata["appVersion"]
    assert container(render())["image"].endswith(f":{app_version}")
    digest = "sha256:" + "a" * 64
    c = container(render({"image": {"digest": digest, "pullPolicy": "IfNotPresent"}}))
    assert c["image"].endswith("@" + digest)
    assert c["imagePullPolicy"] == "IfNotPresent"
    deployment = one(render({"image": {"digest": digest}}), "Deployment")
    assert "checkov.io/skip1" not in deployment["metadata"].get("annotations", {})


def test_metrics_service_selects_the_operator_pods():
    objects = render()
    service = one(objects, "Service")
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


# --- render: value sets -------------------------------------------------------------------------


def test_workload_identity_on():
    objects = render({"workloadIdentity": {"enabled": True, "clientId": CLIENT_ID, "tenantId": TENANT_ID}})
    sa = one(objects, "ServiceAccount")
    assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"] == CLIENT_ID
    assert sa["metadata"]["annotations"]["azure.workload.identity/tenant-id"] == TENANT_ID
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["azure.workload.identity/use"] == "true"


def test_workload_identity_off():
    objects = render({"workloadIdentity": {"enabled": False, "clientId": CLIENT_ID}})
    sa = one(objects, "ServiceAccount")
    assert "azure.workload.identity/client-id" not in (sa["metadata"].get("annotations") or {})
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert "azure.workload.identity/use" not in pod_labels


def test_service_monitor_on():
    objects = render({"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}}}})
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    service = one(objects, "Service")
    assert all(service["metadata"]["labels"][k] == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert not by_kind(render(), "ServiceMonitor")


def test_network_policy_on():
    objects = render({"networkPolicy": {"enabled": True}})
    assert by_kind(render(), "NetworkPolicy"), "on by default"
    policy = one(objects, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"] == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert spec["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    egress_ports = sorted(p["port"] for rule in spec["egress"] for p in rule["ports"] if p["protocol"] == "TCP")
    assert egress_ports == [53, 443, 6443]
    assert not by_kind(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")


def test_pod_disruption_budget_on():
    objects = render({"podDisruptionBudget": {"enabled": True}})
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    pdb = one(render({"podDisruptionBudget": {"enabled": True, "maxUnavailable": 1}}), "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": pdb["spec"]["selector"]}
    assert not by_kind(render(), "PodDisruptionBudget")


def test_leader_election_off_and_extra_args():
    c = container(render({"leaderElection": {"enabled": False}, "operator": {"extraArgs": ["--resync=10m"], "logFormat": "text"}}))
    assert "--leader-election=false" in c["args"]
    assert not any(a.startswith("--lease-name") for a in c["args"])
    assert "--log-format=text" in c["args"]
    assert "--resync=10m" in c["args"]


def test_existing_service_account():
    objects = render({"serviceAccount": {"create": False, "name": "platform-sa"}})
    assert not by_kind(objects, "ServiceAccount")
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "platform-sa"
    for binding in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "platform-sa", "namespace": NAMESPACE}]


# --- RBAC shape ---------------------------------------------------------------------------------


def rules(objects, kind):
    out = set()
    for rule in one(objects, kind)["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


def test_rbac_is_least_privilege():
    objects = render()
    cluster = rules(objects, "ClusterRole")
    role = rules(objects, "Role")
    # Secrets: only through the namespaced Role, only get.
    assert not any(resource == "secrets" for _, resource, _ in cluster)
    assert {(g, r, v) for g, r, v in role if r == "secrets"} == {("", "secrets", "get")}
    # Leases for leader election only in the release namespace.
    assert not any(resource == "leases" for _, resource, _ in cluster)
    assert ("coordination.k8s.io", "leases", "get") in role
    # Never delete anything, never escalate.
    for _, resource, verb in cluster | role:
        assert verb not in ("delete", "deletecollection", "escalate", "bind", "impersonate"), (resource, verb)
    for kind in ("aiaccounts", "aiworkspaces", "modeldeployments"):
        for verb in ("get", "list", "watch", "patch"):
            assert ("aoai.dev", kind, verb) in cluster
        assert ("aoai.dev", f"{kind}/status", "patch") in cluster
    assert ("events.k8s.io", "events", "create") in cluster
    role_binding = one(objects, "RoleBinding")
    assert role_binding["metadata"]["namespace"] == NAMESPACE
    assert role_binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": one(objects, "Role")["metadata"]["name"]}


# --- values.schema.json -------------------------------------------------------------------------


def test_schema_accepts_defaults_and_documented_values():
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values({}))
        chart.validate_schema(
            chart.merge_values(
                {
                    "replicaCount": 3,
                    "image": {"digest": "sha256:" + "0" * 64},
                    "workloadIdentity": {"enabled": True, "clientId": CLIENT_ID, "tenantId": TENANT_ID},
                    "metrics": {"serviceMonitor": {"enabled": True, "interval": "1m"}},
                    "podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"},
                    "networkPolicy": {"enabled": True, "egressPorts": [443]},
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
                }
            )
        )


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"replicaCount": "two"}, "replicaCount"),
        ({"replicaCount": 0}, "replicaCount"),
        ({"unknownKey": True}, "unknownKey"),
        ({"image": {"tag": 1}}, "tag"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"image": {"digest": "latest"}}, "digest"),
        ({"image": {"registry": "docker.io"}}, "registry"),
        ({"workloadIdentity": {"enabled": "yes"}}, "enabled"),
        ({"workloadIdentity": {"clientId": "not-a-guid"}}, "clientId"),
        ({"workloadIdentity": {"clientID": CLIENT_ID}}, "clientID"),
        ({"serviceAccount": {"annotations": {"a": 1}}}, "annotations"),
        ({"metrics": {"port": 70000}}, "port"),
        ({"metrics": {"serviceMonitor": {"enabled": True, "interval": "soon"}}}, "interval"),
        ({"metrics": {"serviceMonitor": {"enable": True}}}, "enable"),
        ({"resources": {"limits": {"cpu": "lots"}}}, "cpu"),
        ({"resources": {"limits": {"gpu": 1}}}, "gpu"),
        ({"operator": {"logFormat": "xml"}}, "logFormat"),
        ({"operator": {"azureCloud": "Mars"}}, "azureCloud"),
        ({"networkPolicy": {"egressPorts": ["https"]}}, "egressPorts"),
        ({"podDisruptionBudget": {"minAvailable": "half"}}, "minAvailable"),
        ({"leaderElection": {"enabled": 1}}, "enabled"),
        ({"operator": {"clusterName": "has space"}}, "clusterName"),
    ],
)
def test_schema_rejects_bad_values(values, needle):
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError) as err:
            chart.validate_schema(chart.merge_values(values))
    assert needle in str(err.value)


def test_render_refuses_bad_values():
    # Rendering (what `helm install` does) applies the schema too.
    with pytest.raises(helm.HelmError):
        render({"replicaCount": "two"})


# --- chart CRDs ---------------------------------------------------------------------------------


def test_chart_crds_match_generated_crds():
    generated = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert generated, "crds/ is empty: run `cargo xtask crds`"
    with helm.Chart.load(CHART) as chart:
        crds = {c["filename"].split("/")[-1]: c["data"] for c in chart.crds}
    assert sorted(crds) == generated, "chart CRDs differ from crds/: run `cargo xtask crds`"
    for name in generated:
        assert crds[name] == (ROOT / "crds" / name).read_text(), f"{name} is stale: run `cargo xtask crds`"
    kinds = sorted(yaml.safe_load(text)["spec"]["names"]["kind"] for text in crds.values())
    assert kinds == ["AIAccount", "AIWorkspace", "ModelDeployment"]


# --- install into the Kubernetes emulator ------------------------------------------------------


def kubectl(testbed, *args, check=True):
    cache = testbed.dir / f"kubectl-cache-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", str(testbed.kubeconfig), "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc


def test_install_and_uninstall_into_the_emulator(testbed):
    namespace = "aoai-helm-install"
    release = "aoai-operator-it"  # contains the chart name, so objects are named after the release
    values = {
        "workloadIdentity": {"enabled": True, "clientId": CLIENT_ID},
        "podDisruptionBudget": {"enabled": True},
        "networkPolicy": {"enabled": True},
    }
    with helm.Config(kubeconfig_path=str(testbed.kubeconfig), namespace=namespace) as cfg:
        result = cfg.install(str(CHART), release, values, namespace=namespace, create_namespace=True, timeout=120)
        assert result["status"] == "deployed", result
        assert [r["name"] for r in cfg.list()] == [release]

        # The objects exist in the API server, as Helm created them.
        crds = json.loads(kubectl(testbed, "get", "crd", "-o", "json").stdout)
        names = {c["metadata"]["name"] for c in crds["items"]}
        assert {"aiaccounts.aoai.dev", "aiworkspaces.aoai.dev", "modeldeployments.aoai.dev"} <= names
        deployment = json.loads(kubectl(testbed, "-n", namespace, "get", "deployment", release, "-o", "json").stdout)
        assert deployment["metadata"]["annotations"]["meta.helm.sh/release-name"] == release
        assert deployment["spec"]["replicas"] == 2
        sa = json.loads(kubectl(testbed, "-n", namespace, "get", "serviceaccount", release, "-o", "json").stdout)
        assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"] == CLIENT_ID
        for kind in ("role", "rolebinding", "service", "poddisruptionbudget", "networkpolicy"):
            kubectl(testbed, "-n", namespace, "get", kind, "-l", f"app.kubernetes.io/instance={release}", "-o", "name")
        kubectl(testbed, "get", "clusterrole", release)
        kubectl(testbed, "get", "clusterrolebinding", release)

        # A Helm upgrade (a value change) goes through too.
        upgraded = cfg.upgrade(str(CHART), release, {**values, "replicaCount": 3}, namespace=namespace, timeout=120)
        assert upgraded["revision"] == 2 and upgraded["status"] == "deployed"
        deployment = json.loads(kubectl(testbed, "-n", namespace, "get", "deployment", release, "-o", "json").stdout)
        assert deployment["spec"]["replicas"] == 3

        cfg.uninstall(release, timeout=120)
        assert cfg.list(all_states=True) == []

    # Everything the release created is gone (CRDs stay, as Helm never deletes crds/).
    assert kubectl(testbed, "-n", namespace, "get", "deployment", release, check=False).returncode != 0
    assert kubectl(testbed, "get", "clusterrole", release, check=False).returncode != 0
    assert kubectl(testbed, "get", "clusterrolebinding", release, check=False).returncode != 0
    leftovers = kubectl(testbed, "-n", namespace, "get", "serviceaccount,role,rolebinding,service,secret", "-l",
                        f"app.kubernetes.io/instance={release}", "-o", "name").stdout.strip()
    assert leftovers == ""
    kubectl(testbed, "get", "crd", "modeldeployments.aoai.dev")
