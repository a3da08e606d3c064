"""The operator through real clients against `testbed up`:
- the platform/app flow with the real `kubectl` (apply CRDs, AIAccount, ModelDeployment,
  `kubectl wait --for=condition=Ready`, read status, `kubectl delete`);
- the app-team flow: read the ConfigMap/status, fetch the key with the official
  azure-keyvault-secrets client, call the deployment with the official openai client.
The operator binary runs as a subprocess with only KUBECONFIG + azure.env in its environment."""
import json
import os
import shutil
import subprocess
import time
import uuid

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def kubectl(tb, *args, check=True, input=None):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    res = subprocess.run(["kubectl", *args], env=tb.env(), capture_output=True, text=True, input=input, timeout=90)
    if check and res.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {res.stdout}\n{res.stderr}")
    return res


@pytest.fixture(scope="module")
def operator(testbed, operator_bin):
    """`aoai-operator run` with the testbed's environment (plus test-speed knobs and a unique lease)."""
    kubectl(testbed, "apply", "-f", os.path.join(ROOT, "crds"))
    env = testbed.env(RESYNC_INTERVAL="2s", POLL_INTERVAL="200ms", MAX_POLL_INTERVAL="1s", WRITE_SLOT_RETRY="200ms",
                      METRICS_ADDR="127.0.0.1:0", LEASE_NAME=f"aoai-operator-{uuid.uuid4().hex[:8]}",
                      RUST_LOG="info")
    log = open(os.path.join(testbed.dir, "operator.log"), "w")
    proc = subprocess.Popen([str(operator_bin), "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    text = open(os.path.join(testbed.dir, "operator.log")).read()
    secret = testbed.azure_env.get("AZURE_CLIENT_SECRET")
    assert not secret or secret not in text, "the client secret leaked into the operator log"


def manifests(tb, ns, account, md, cm):
    e = tb.azure_env
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: aoai.dev/v1alpha1
kind: AIAccount
metadata: {{name: {account}}}
spec:
  subscriptionId: {e['AZURE_SUBSCRIPTION_ID']}
  resourceGroup: {e['AZURE_RESOURCE_GROUP']}
  accountName: {e['AZURE_OPENAI_ACCOUNT']}
  keyVault: {{vaultUri: "{e['AZURE_KEY_VAULT_URI']}", secretName: {account}-key}}
  allowedNamespaces:
    names: [{ns}]
---
apiVersion: aoai.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: {md}, namespace: {ns}}}
spec:
  accountRef: {{name: {account}}}
  model: {{format: OpenAI, name: gpt-4o-mini, version: "2024-07-18"}}
  sku: {{name: GlobalStandard, capacity: 1}}
  connectionConfigMap: {cm}
"""


def test_operator_kubectl_flow(testbed, operator):
    ns, account, md = "op-kubectl", "op-kubectl-acct", "chat"
    kubectl(testbed, "apply", "-f", "-", input=manifests(testbed, ns, account, md, "chat-connection"))
    kubectl(testbed, "wait", "--for=condition=Ready", f"modeldeployment/{md}", "-n", ns, "--timeout=60s")
    obj = json.loads(kubectl(testbed, "get", "modeldeployment", md, "-n", ns, "-o", "json").stdout)
    st = obj["status"]
    assert st["deploymentName"] == f"{ns}.{md}"
    assert st["endpoint"].startswith("https://")
    assert st["keyVaultSecret"]["name"] == f"{account}-key"
    assert st["observedGeneration"] == obj["metadata"]["generation"]
    table = kubectl(testbed, "get", "md", "-n", ns).stdout
    assert "GlobalStandard" in table and "True" in table, table
    kubectl(testbed, "get", "aia", account)
    explain = kubectl(testbed, "explain", "modeldeployment.spec.deletionPolicy").stdout
    assert "Retain" in explain
    # Immutable field: the API server refuses with a helpful message.
    bad = kubectl(testbed, "patch", "md", md, "-n", ns, "--type", "merge", "-p", '{"spec":{"deploymentName":"other"}}', check=False)
    assert bad.returncode != 0 and "immutable" in (bad.stderr + bad.stdout)
    kubectl(testbed, "delete", "modeldeployment", md, "-n", ns, "--timeout=60s")
    res = kubectl(testbed, "get", "modeldeployment", md, "-n", ns, check=False)
    assert res.returncode != 0
    kubectl(testbed, "delete", "aiaccount", account, "--timeout=60s")


def test_operator_app_team_consumes_deployment(testbed, operator):
    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient
    import ssl
    import openai
    try:  # the pinned openai release ships its HTTP client as httpx2
        import httpx2 as httpx
    except ImportError:  # pragma: no cover
        import httpx

    ns, account, md, cm_name = "op-app", "op-app-acct", "assistant", "assistant-connection"
    kubectl(testbed, "apply", "-f", "-", input=manifests(testbed, ns, account, md, cm_name))
    kubectl(testbed, "wait", "--for=condition=Ready", f"modeldeployment/{md}", "-n", ns, "--timeout=60s")
    cm = json.loads(kubectl(testbed, "get", "configmap", cm_name, "-n", ns, "-o", "json").stdout)["data"]
    status = json.loads(kubectl(testbed, "get", "modeldeployment", md, "-n", ns, "-o", "json").stdout)["status"]
    assert cm["AZURE_OPENAI_ENDPOINT"] == status["endpoint"]
    assert cm["AZURE_OPENAI_DEPLOYMENT"] == status["deploymentName"]
    e = testbed.azure_env
    os.environ["REQUESTS_CA_BUNDLE"] = str(testbed.ca)
    os.environ["SSL_CERT_FILE"] = str(testbed.ca)
    cred = ClientSecretCredential(e["AZURE_TENANT_ID"], e["AZURE_CLIENT_ID"], e["AZURE_CLIENT_SECRET"],
                                  authority=e["AZURE_AUTHORITY_HOST"], disable_instance_discovery=True)
    secrets = SecretClient(vault_url=cm["AZURE_KEY_VAULT_URI"], credential=cred, verify_challenge_resource=False)
    key = secrets.get_secret(cm["AZURE_KEY_VAULT_SECRET_NAME"]).value
    assert key and key not in json.dumps(cm) and key not in json.dumps(status)
    client = openai.AzureOpenAI(azure_endpoint=cm["AZURE_OPENAI_ENDPOINT"], api_key=key,
                                api_version=cm["AZURE_OPENAI_API_VERSION"],
                                http_client=httpx.Client(verify=ssl.create_default_context(cafile=str(testbed.ca))))
    answer = client.chat.completions.create(model=cm["AZURE_OPENAI_DEPLOYMENT"],
                                            messages=[{"role": "user", "content": "Say hello"}])
    assert answer.choices[0].message.content
    kubectl(testbed, "delete", "modeldeployment", md, "-n", ns, "--timeout=60s")
    kubectl(testbed, "delete", "aiaccount", account, "--timeout=60s")
