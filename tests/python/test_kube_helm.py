"""Helm (the Go SDK via helm-python-sdk) against the real control plane: install, upgrade and
uninstall a small chart with a CRD, a namespaced custom resource, a ServiceAccount, RBAC
and a Deployment, through the kubeconfig that `testbed kube --dir DIR` writes."""
import json
import pathlib
import subprocess
import tempfile
import textwrap
import time

import pytest

helm = pytest.importorskip("helm_python")

from conftest import start_testbed, stop  # noqa: E402

CHART = {
    "Chart.yaml": """
        apiVersion: v2
        name: demo
        version: 0.1.0
        appVersion: "1.0"
    """,
    "values.yaml": """
        replicas: 1
    """,
    "crds/gadgets.yaml": """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: gadgets.demo.example.com
        spec:
          group: demo.example.com
          scope: Namespaced
          names: {plural: gadgets, singular: gadget, kind: Gadget}
          versions:
          - name: v1
            served: true
            storage: true
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec:
                    type: object
                    properties:
                      size: {type: integer, minimum: 1}
    """,
    "templates/all.yaml": """
        apiVersion: v1
        kind: ServiceAccount
        metadata:
          name: {{ .Release.Name }}-sa
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: Role
        metadata:
          name: {{ .Release.Name }}-role
        rules:
        - apiGroups: ["demo.example.com"]
          resources: ["gadgets"]
          verbs: ["get", "list", "watch"]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: RoleBinding
        metadata:
          name: {{ .Release.Name }}-rb
        roleRef:
          apiGroup: rbac.authorization.k8s.io
          kind: Role
          name: {{ .Release.Name }}-role
        subjects:
        - kind: ServiceAccount
          name: {{ .Release.Name }}-sa
          namespace: {{ .Release.Namespace }}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}-app
          labels: {app: demo}
        spec:
          replicas: {{ .Values.replicas }}
          selector:
            matchLabels: {app: demo}
          template:
            metadata:
              labels: {app: demo}
            spec:
              serviceAccountName: {{ .Release.Name }}-sa
              containers:
              - name: app
                image: example.invalid/app:1.0
                ports:
                - containerPort: 8080
        ---
        apiVersion: demo.example.com/v1
        kind: Gadget
        metadata:
          name: {{ .Release.Name }}-gadget
        spec:
          size: 3
    """,
}


@pytest.fixture(scope="module")
def kube_dir():
    tb = start_testbed("kube")
    yield tb.dir
    stop(tb)


def kubectl(directory: pathlib.Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cache = tempfile.mkdtemp(prefix="kubectl-cache-")
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(directory / "kubeconfig"), "--cache-dir", cache, *args],
        capture_output=True, text=True, timeout=60, check=check,
    )


def get_json(directory, *args):
    out = kubectl(directory, "get", *args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


@pytest.fixture()
def chart_dir(tmp_path):
    for rel, content in CHART.items():
        path = tmp_path / "demo" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip())
    return tmp_path / "demo"


def test_helm_install_upgrade_uninstall(kube_dir, chart_dir):
    with helm.Config(kubeconfig_path=str(kube_dir / "kubeconfig"), namespace="default") as cfg:
        release = cfg.install(str(chart_dir), "demo", timeout=60)
        assert release["status"] == "deployed"
        assert [r["name"] for r in cfg.list()] == ["demo"]

        crd = get_json(kube_dir, "crd", "gadgets.demo.example.com")
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True"
        gadget = get_json(kube_dir, "gadget", "demo-gadget", "-n", "default")
        assert gadget["spec"]["size"] == 3
        deployment = get_json(kube_dir, "deployment", "demo-app")
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "demo-sa"
        assert get_json(kube_dir, "serviceaccount", "demo-sa") is not None
        assert get_json(kube_dir, "rolebinding", "demo-rb")["roleRef"]["name"] == "demo-role"
        # Helm keeps its release record in a Secret.
        secrets = get_json(kube_dir, "secrets", "-l", "owner=helm,name=demo")
        assert len(secrets["items"]) == 1
        # The chart's RBAC is what the service account gets.
        can = kubectl(kube_dir, "auth", "can-i", "list", "gadgets.demo.example.com",
                      "--as=system:serviceaccount:default:demo-sa", check=False)
        assert can.stdout.strip() == "yes"
        cannot = kubectl(kube_dir, "auth", "can-i", "delete", "gadgets.demo.example.com",
                         "--as=system:serviceaccount:default:demo-sa", check=False)
        assert cannot.stdout.strip() == "no"

        upgraded = cfg.upgrade(str(chart_dir), "demo", {"replicas": 2}, timeout=60)
        assert upgraded["revision"] == 2
        assert get_json(kube_dir, "deployment", "demo-app")["spec"]["replicas"] == 2

        cfg.uninstall("demo", timeout=60)
        assert cfg.list() == []
        for kind, name in [("deployment", "demo-app"), ("serviceaccount", "demo-sa"),
                           ("role", "demo-role"), ("rolebinding", "demo-rb"), ("gadget", "demo-gadget")]:
            assert get_json(kube_dir, kind, name) is None, f"{kind}/{name} should be gone"
        assert get_json(kube_dir, "secrets", "-l", "owner=helm,name=demo")["items"] == []
        # Helm never deletes CRDs from crds/.
        assert get_json(kube_dir, "crd", "gadgets.demo.example.com") is not None


def test_helm_reports_schema_violations(kube_dir, chart_dir):
    bad = chart_dir / "templates" / "all.yaml"
    bad.write_text(bad.read_text().replace("size: 3", "size: 0"))
    with helm.Config(kubeconfig_path=str(kube_dir / "kubeconfig"), namespace="default") as cfg:
        with pytest.raises(helm.HelmError) as err:
            cfg.install(str(chart_dir), "broken", timeout=60)
        assert "spec.size in body should be greater than or equal to 1" in str(err.value)
