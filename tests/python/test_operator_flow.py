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


def ml_manifests(tb, ns, workspace):
    e = tb.azure_env
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: aoai.dev/v1alpha1
kind: AIWorkspace
metadata: {{name: {workspace}}}
spec:
  subscriptionId: {e['AZURE_SUBSCRIPTION_ID']}
  resourceGroup: {e['AZURE_RESOURCE_GROUP']}
  workspaceName: {e['AZURE_ML_WORKSPACE']}
  keyVault: {{vaultUri: "{e['AZURE_KEY_VAULT_URI']}"}}
  allowedNamespaces: {{names: [{ns}]}}
  marketplace: {{allowedPublishers: ["000-000"]}}
---
apiVersion: aoai.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: phi, namespace: {ns}}}
spec:
  workspaceRef: {{name: {workspace}}}
  managedCompute:
    model: azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1
    instanceType: Standard_NC24ads_A100_v4
    instanceCount: 1
    readinessProbe: {{periodSeconds: 10}}
    requestSettings: {{requestTimeoutMs: 5000}}
  connectionConfigMap: phi-connection
---
apiVersion: aoai.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: mistral, namespace: {ns}}}
spec:
  workspaceRef: {{name: {workspace}}}
  serverless: {{modelId: azureml://registries/azureml-mistral/models/Mistral-Large-2411}}
"""


def test_operator_managed_compute_and_serverless_with_kubectl(testbed, operator):
    """Issue 12 with the real kubectl: an AIWorkspace, a managed-compute and a serverless
    ModelDeployment converge; the app reads the key with azure-keyvault-secrets and calls the
    scoring URI (requests) and the serverless endpoint (the openai client); an instance count
    change goes in place; `kubectl explain` teaches the forms; deleting removes the endpoints."""
    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient
    import ssl
    import requests
    import openai
    try:
        import httpx2 as httpx
    except ImportError:  # pragma: no cover
        import httpx

    ns, ws = "op-ml", "op-ml-ws"
    kubectl(testbed, "apply", "-f", "-", input=ml_manifests(testbed, ns, ws))
    kubectl(testbed, "wait", "--for=condition=Ready", "aiworkspace/" + ws, "--timeout=60s")
    for md in ("phi", "mistral"):
        kubectl(testbed, "wait", "--for=condition=Ready", f"modeldeployment/{md}", "-n", ns, "--timeout=90s")
    wide = kubectl(testbed, "get", "md", "-n", ns, "-o", "wide").stdout
    assert "Standard_NC24ads_A100_v4" in wide and ws in wide, wide
    assert ws in kubectl(testbed, "get", "aiw").stdout
    explain = kubectl(testbed, "explain", "modeldeployment.spec.managedCompute").stdout
    assert "instanceType" in explain and "instanceCount" in explain, explain
    assert "modelId" in kubectl(testbed, "explain", "modeldeployment.spec.serverless").stdout

    e = testbed.azure_env
    cred = ClientSecretCredential(e["AZURE_TENANT_ID"], e["AZURE_CLIENT_ID"], e["AZURE_CLIENT_SECRET"],
                                  authority=e["AZURE_AUTHORITY_HOST"], disable_instance_discovery=True)
    os.environ["REQUESTS_CA_BUNDLE"] = str(testbed.ca)
    os.environ["SSL_CERT_FILE"] = str(testbed.ca)
    phi = json.loads(kubectl(testbed, "get", "md", "phi", "-n", ns, "-o", "json").stdout)["status"]
    cm = json.loads(kubectl(testbed, "get", "configmap", "phi-connection", "-n", ns, "-o", "json").stdout)["data"]
    assert cm["AZURE_ML_SCORING_URI"] == phi["scoringUri"]
    secrets = SecretClient(vault_url=cm["AZURE_KEY_VAULT_URI"], credential=cred, verify_challenge_resource=False)
    key = secrets.get_secret(cm["AZURE_KEY_VAULT_SECRET_NAME"]).value
    assert key and key not in json.dumps(phi) and key not in json.dumps(cm)
    r = requests.post(phi["scoringUri"], headers={"Authorization": f"Bearer {key}"},
                      json={"messages": [{"role": "user", "content": "Say hello"}]}, verify=str(testbed.ca), timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers.get("azureml-model-deployment") == phi["deploymentName"]

    mistral = json.loads(kubectl(testbed, "get", "md", "mistral", "-n", ns, "-o", "json").stdout)["status"]
    skey = secrets.get_secret(mistral["keyVaultSecret"]["name"]).value
    client = openai.OpenAI(base_url=mistral["scoringUri"], api_key=skey,
                           http_client=httpx.Client(verify=ssl.create_default_context(cafile=str(testbed.ca))))
    answer = client.chat.completions.create(model="Mistral-Large-2411",
                                            messages=[{"role": "user", "content": "Say hello"}])
    assert answer.choices[0].message.content

    # Instance count: in place, the same deployment.
    kubectl(testbed, "patch", "md", "phi", "-n", ns, "--type", "merge", "-p",
            '{"spec":{"managedCompute":{"instanceCount":2}}}')
    deadline = time.time() + 60
    while True:
        st = json.loads(kubectl(testbed, "get", "md", "phi", "-n", ns, "-o", "json").stdout)["status"]
        if st.get("instanceCount") == 2 and st["conditions"][0]["status"] == "True":
            break
        assert time.time() < deadline, st
        time.sleep(0.2)
    assert st["deploymentName"] == phi["deploymentName"]
    # The forms are immutable where Azure cannot change them.
    bad = kubectl(testbed, "patch", "md", "mistral", "-n", ns, "--type", "merge", "-p",
                  '{"spec":{"serverless":{"modelId":"azureml://registries/azureml/models/Phi-4"}}}', check=False)
    assert bad.returncode != 0 and "cannot change" in (bad.stderr + bad.stdout)
    for md in ("phi", "mistral"):
        kubectl(testbed, "delete", "modeldeployment", md, "-n", ns, "--timeout=90s")
    kubectl(testbed, "delete", "aiworkspace", ws, "--timeout=60s")
