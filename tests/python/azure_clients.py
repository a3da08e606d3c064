"""Shared helpers of the Azure SDK judge tests: the `az` fixture (the test bed's azure.env with
the emulator's CA exported for the SDKs), credentials, the management client, the admin routes."""
import json
import os
import urllib.request

import pytest
from azure.identity import ClientSecretCredential, WorkloadIdentityCredential
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

ARM_SCOPE = "https://management.azure.com/.default"


@pytest.fixture(scope="module")
def az(testbed):
    env = testbed.azure_env
    names = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "AZURE_POD_IDENTITY_AUTHORITY_HOST")
    saved = {k: os.environ.get(k) for k in names}
    for k in names:
        os.environ[k] = env[k]
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def secret_credential(env):
    return ClientSecretCredential(
        env["AZURE_TENANT_ID"],
        env["AZURE_CLIENT_ID"],
        env["AZURE_CLIENT_SECRET"],
        authority=env["AZURE_AUTHORITY_HOST"],
        disable_instance_discovery=True,
    )


def workload_credential(env):
    return WorkloadIdentityCredential(
        tenant_id=env["AZURE_TENANT_ID"],
        client_id=env["AZURE_CLIENT_ID"],
        token_file_path=env["AZURE_FEDERATED_TOKEN_FILE"],
        authority=env["AZURE_AUTHORITY_HOST"],
        disable_instance_discovery=True,
    )


def mgmt(env, credential):
    return CognitiveServicesManagementClient(
        credential,
        env["AZURE_SUBSCRIPTION_ID"],
        base_url=env["AZURE_RESOURCE_MANAGER_ENDPOINT"],
        credential_scopes=[ARM_SCOPE],
        polling_interval=0.2,
    )


def admin(env, method, route, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(env["AZURE_TESTBED_ADMIN_URL"] + route, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read()
        return json.loads(text) if text else None
