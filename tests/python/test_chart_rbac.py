"""The chart's RBAC is sufficient and minimal: install the chart with Helm into the real control plane of
`testbed up` (RBAC authorization), run the operator binary with a TokenRequest token of the chart's ServiceAccount
(and the chart's own arguments), take a ModelDeployment through create -> Ready -> delete, and check that requests
outside the granted RBAC are denied by the real apiserver."""
import base64
import json
import os
import pathlib
import signal
import subprocess
import tempfile
import time

import helm_python as helm
import pytest
import yaml

from conftest import start_testbed, stop

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "aoai-operator"
NAMESPACE = "aoai-system"
RELEASE = "aoai-operator"
APP_NAMESPACE = "team-rbac"


class RbacTestbed:
    """`testbed up --dir DIR` of its own: the real control plane (RBAC always on) and the Azure emulator. The
    admin kubeconfig is DIR/kubeconfig; the chart ServiceAccount's token comes from the TokenRequest API
    (`kubectl create token`), as kubelet would mount it into the operator's pod."""

    def __init__(self):
        self.tb = start_testbed("up")
        self.dir = self.tb.dir
        self.kubeconfig = self.tb.kubeconfig
        self.azure_env = self.tb.azure_env

    def token(self, namespace, name) -> str:
        return self.kubectl("-n", namespace, "create", "token", name, "--duration=1h").stdout.strip()

    def token_kubeconfig(self, namespace, name, token) -> pathlib.Path:
        """The admin kubeconfig with its user replaced by the ServiceAccount's bearer token."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        user = f"system:serviceaccount:{namespace}:{name}"
        config["users"] = [{"name": user, "user": {"token": token}}]
        config["contexts"][0]["context"]["user"] = user
        path = self.dir / f"kubeconfig-{namespace}-{name}"
        path.write_text(yaml.safe_dump(config))
        return path

    def kubectl(self, *args, kubeconfig=None, check=True, timeout=60):
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig or self.kubeconfig), "--cache-dir", str(self.dir / "kcache"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc

    def stop(self):
        stop(self.tb)


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def chart_args(values) -> list:
    """The operator arguments the chart's Deployment passes, with the metrics address made local."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    deployment = yaml.safe_load(manifests[f"{RELEASE}/templates/deployment.yaml"])
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return ["--metrics-addr=127.0.0.1:0" if a.startswith("--metrics-addr") else a for a in args]


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        ok, last = predicate()
        if ok:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; last seen: {last}")


@pytest.fixture
def rbac_testbed():
    tb = RbacTestbed()
    yield tb
    tb.stop()


def test_operator_runs_under_the_chart_rbac(rbac_testbed, operator_bin):
    tb = rbac_testbed
    values = {"workloadIdentity": {"enabled": False}}

    # 1. Helm installs the chart (CRDs, ServiceAccount, RBAC, Deployment) as the admin.
    with helm.Config(kubeconfig_path=str(tb.kubeconfig), namespace=NAMESPACE) as cfg:
        release = cfg.install(str(CHART), RELEASE, values, namespace=NAMESPACE, create_namespace=True, timeout=120)
        assert release["status"] == "deployed", release

    # 2. The token of the chart's ServiceAccount (what kubelet would mount into the operator's pod).
    sa = json.loads(tb.kubectl("-n", NAMESPACE, "get", "serviceaccount", RELEASE, "-o", "json").stdout)
    assert sa["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    token = tb.token(NAMESPACE, RELEASE)
    claims = jwt_claims(token)
    assert claims["sub"] == f"system:serviceaccount:{NAMESPACE}:{RELEASE}", claims
    assert claims["kubernetes.io"]["serviceaccount"]["uid"] == sa["metadata"]["uid"], claims
    sa_kubeconfig = tb.token_kubeconfig(NAMESPACE, RELEASE, token)
    whoami = tb.kubectl("auth", "whoami", "-o", "json", kubeconfig=sa_kubeconfig)
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == f"system:serviceaccount:{NAMESPACE}:{RELEASE}"

    # 3. Requests outside the granted RBAC are denied...
    denied = [
        ("get", "secrets", "-n", "default"),                 # Secrets of another namespace
        ("list", "secrets", "-n", NAMESPACE),                # only `get` on Secrets, even in its own namespace
        ("delete", "modeldeployments.aoai.dev", "-n", "default"),
        ("create", "deployments.apps", "-n", NAMESPACE),
        ("get", "leases.coordination.k8s.io", "-n", "default"),  # leases only in its own namespace
        ("create", "clusterrolebindings"),
        ("delete", "namespaces"),
        ("delete", "configmaps", "-n", "default"),
        ("update", "modeldeployments.aoai.dev", "-n", "default"),
    ]
    for verb, resource, *ns in denied:
        proc = tb.kubectl("auth", "can-i", verb, resource, *ns, kubeconfig=sa_kubeconfig, check=False)
        assert proc.stdout.strip() == "no", (verb, resource, ns, proc.stdout, proc.stderr)
    proc = tb.kubectl("-n", "default", "get", "secret", "anything", kubeconfig=sa_kubeconfig, check=False)
    assert proc.returncode != 0 and "Forbidden" in proc.stderr, proc.stderr
    assert "cannot get resource \"secrets\"" in proc.stderr
    # ... and what it needs is granted.
    for verb, resource, *ns in [("watch", "modeldeployments.aoai.dev", "-A"), ("patch", "modeldeployments.aoai.dev/status", "-A"),
                                ("get", "secrets", "-n", NAMESPACE), ("create", "leases.coordination.k8s.io", "-n", NAMESPACE),
                                ("patch", "configmaps", "-n", APP_NAMESPACE), ("watch", "namespaces"),
                                ("create", "events.events.k8s.io", "-n", APP_NAMESPACE)]:
        proc = tb.kubectl("auth", "can-i", verb, resource, *ns, kubeconfig=sa_kubeconfig, check=False)
        assert proc.stdout.strip() == "yes", (verb, resource, proc.stdout, proc.stderr)

    # 4. The operator, as that ServiceAccount, with the chart's arguments.
    log_path = tb.dir / "operator.log"
    env = {**os.environ, **tb.azure_env, "KUBECONFIG": str(sa_kubeconfig), "POD_NAMESPACE": NAMESPACE,
           "POD_NAME": "aoai-operator-test-0", "RUST_LOG": "info"}
    with open(log_path, "w") as log:
        operator = subprocess.Popen([str(operator_bin), *chart_args(values)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # 5. Platform team and app team resources, applied by the admin.
        manifest = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APP_NAMESPACE}},
            {
                "apiVersion": "aoai.dev/v1alpha1",
                "kind": "AIAccount",
                "metadata": {"name": "rbac-account"},
                "spec": {
                    "subscriptionId": tb.azure_env["AZURE_SUBSCRIPTION_ID"],
                    "resourceGroup": tb.azure_env["AZURE_RESOURCE_GROUP"],
                    "accountName": tb.azure_env["AZURE_OPENAI_ACCOUNT"],
                    "keyVault": {"vaultUri": tb.azure_env["AZURE_KEY_VAULT_URI"], "secretName": "rbac-account-key"},
                    "allowedNamespaces": {"names": [APP_NAMESPACE]},
                },
            },
            {
                "apiVersion": "aoai.dev/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": "chat", "namespace": APP_NAMESPACE},
                "spec": {
                    "accountRef": {"name": "rbac-account"},
                    "model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"},
                    "sku": {"name": "GlobalStandard", "capacity": 10},
                    "connectionConfigMap": "chat-connection",
                },
            },
        ]
        path = tb.dir / "resources.yaml"
        path.write_text(yaml.safe_dump_all(manifest))
        tb.kubectl("apply", "-f", str(path))

        # 6. create -> Ready.
        tb.kubectl("-n", APP_NAMESPACE, "wait", "--for=condition=Ready", "modeldeployment/chat", "--timeout=120s", timeout=150)
        md = json.loads(tb.kubectl("-n", APP_NAMESPACE, "get", "modeldeployment", "chat", "-o", "json").stdout)
        status = md["status"]
        assert status["endpoint"].startswith("https://")
        assert status["deploymentName"]
        assert status["keyVaultSecret"]["vaultUri"].rstrip("/") == tb.azure_env["AZURE_KEY_VAULT_URI"].rstrip("/")
        assert status["keyVaultSecret"]["name"] == "rbac-account-key"
        cm = json.loads(tb.kubectl("-n", APP_NAMESPACE, "get", "configmap", "chat-connection", "-o", "json").stdout)
        assert status["endpoint"] in json.dumps(cm["data"])
        account = json.loads(tb.kubectl("get", "aiaccount", "rbac-account", "-o", "json").stdout)
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in account["status"]["conditions"])
        # Leader election used the Lease in the operator's namespace.
        leases = tb.kubectl("-n", NAMESPACE, "get", "leases", "-o", "name").stdout
        assert leases.strip(), "no Lease in the operator namespace (leader election)"

        # 7. delete: the finalizer runs (Azure deployment removed) and the object goes.
        tb.kubectl("-n", APP_NAMESPACE, "delete", "modeldeployment", "chat", "--timeout=120s", timeout=150)
        proc = tb.kubectl("-n", APP_NAMESPACE, "get", "modeldeployment", "chat", check=False)
        assert proc.returncode != 0 and "NotFound" in proc.stderr
        tb.kubectl("delete", "aiaccount", "rbac-account", "--timeout=60s", timeout=90)
    finally:
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(timeout=15)
        except subprocess.TimeoutExpired:
            operator.kill()
    # The operator never hit a permission it lacks.
    log = log_path.read_text()
    assert "forbidden" not in log.lower(), "the operator was denied something it needs:\n" + log[-4000:]

    with helm.Config(kubeconfig_path=str(tb.kubeconfig), namespace=NAMESPACE) as cfg:
        cfg.uninstall(RELEASE, timeout=120)
