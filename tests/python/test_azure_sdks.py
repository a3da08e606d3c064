"""Microsoft's official Python SDKs drive the Azure emulator of `testbed up`, unmodified,
pointed at it only through their own settings (authority host, base URL, credential scopes,
REQUESTS_CA_BUNDLE / SSL_CERT_FILE for the emulator's CA):
azure-identity (ClientSecretCredential, WorkloadIdentityCredential), azure-mgmt-cognitiveservices
(LRO pollers, get, list, delete, list_keys, error handling), azure-keyvault-secrets (set/get) and
openai.AzureOpenAI (a chat completion with the key stored in Key Vault)."""
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.mgmt.cognitiveservices.models import Deployment, DeploymentModel, DeploymentProperties, Sku
from openai import AzureOpenAI

from azure_clients import ARM_SCOPE, admin, az, mgmt, secret_credential, workload_credential  # noqa: F401


def test_credentials_get_tokens_from_the_emulator(az):
    token = secret_credential(az).get_token(ARM_SCOPE)
    assert token.token.count(".") == 2
    assert token.expires_on > 0
    wi = workload_credential(az).get_token("https://vault.azure.net/.default")
    assert wi.token.count(".") == 2


def test_managed_identity_credential_uses_the_imds_style_endpoint(az):
    from azure.identity import ManagedIdentityCredential

    cred = ManagedIdentityCredential(client_id=az["AZURE_MANAGED_IDENTITY_CLIENT_ID"])
    client = mgmt(az, cred)
    account = client.accounts.get(az["AZURE_RESOURCE_GROUP"], az["AZURE_OPENAI_ACCOUNT"])
    assert account.properties.provisioning_state == "Succeeded"


def test_bad_secret_is_refused(az):
    from azure.core.exceptions import ClientAuthenticationError

    cred = ClientSecretCredential(
        az["AZURE_TENANT_ID"], az["AZURE_CLIENT_ID"], "wrong",
        authority=az["AZURE_AUTHORITY_HOST"], disable_instance_discovery=True,
    )
    with pytest.raises(ClientAuthenticationError) as err:
        cred.get_token(ARM_SCOPE)
    assert "AADSTS7000215" in str(err.value)


def test_mgmt_sdk_deployment_lifecycle_and_key_vault_and_openai(az):
    client = mgmt(az, secret_credential(az))
    rg, account = az["AZURE_RESOURCE_GROUP"], az["AZURE_OPENAI_ACCOUNT"]
    name = "sdk-chat"
    poller = client.deployments.begin_create_or_update(
        rg, account, name,
        Deployment(
            sku=Sku(name="GlobalStandard", capacity=10),
            properties=DeploymentProperties(model=DeploymentModel(format="OpenAI", name="gpt-4o-mini")),
            tags={"owner": "sdk-test"},
        ),
    )
    created = poller.result(timeout=30)
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.model.version == "2024-07-18"  # the server's default version
    assert created.tags == {"owner": "sdk-test"}
    got = client.deployments.get(rg, account, name)
    assert got.sku.capacity == 10
    assert got.properties.rate_limits
    assert any(d.name == name for d in client.deployments.list(rg, account))

    # The account key goes to Key Vault through workload identity, and an app reads it back.
    keys = client.accounts.list_keys(rg, account)
    assert keys.key1 and keys.key2
    vault = SecretClient(az["AZURE_KEY_VAULT_URI"], workload_credential(az), verify_challenge_resource=False)
    stored = vault.set_secret("sdk-app-key", keys.key1, content_type="text/plain", tags={"account": account})
    assert stored.properties.version
    app_vault = SecretClient(az["AZURE_KEY_VAULT_URI"], secret_credential(az), verify_challenge_resource=False)
    fetched = app_vault.get_secret("sdk-app-key")
    assert fetched.value == keys.key1
    assert fetched.properties.content_type == "text/plain"

    endpoint = client.accounts.get(rg, account).properties.endpoint
    assert endpoint == az["AZURE_OPENAI_ENDPOINT"]
    openai_client = AzureOpenAI(azure_endpoint=endpoint, api_key=fetched.value, api_version="2024-10-21", max_retries=0)
    answer = openai_client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hello"}])
    assert answer.choices[0].message.content == f"Hello from deployment '{name}' (gpt-4o-mini 2024-07-18). You said: hello"

    client.deployments.begin_delete(rg, account, name).result(timeout=30)
    with pytest.raises(ResourceNotFoundError):
        client.deployments.get(rg, account, name)


def test_mgmt_sdk_surfaces_azure_errors(az):
    client = mgmt(az, secret_credential(az))
    rg, account = az["AZURE_RESOURCE_GROUP"], az["AZURE_OPENAI_ACCOUNT"]
    with pytest.raises(HttpResponseError) as err:
        client.deployments.begin_create_or_update(
            rg, account, "sdk-bad",
            Deployment(sku=Sku(name="Standard", capacity=1),
                       properties=DeploymentProperties(model=DeploymentModel(format="OpenAI", name="no-such-model", version="1"))),
        ).result(timeout=30)
    assert err.value.error.code == "DeploymentModelNotSupported"


def test_openai_rejects_a_wrong_key(az):
    import openai

    client = AzureOpenAI(azure_endpoint=az["AZURE_OPENAI_ENDPOINT"], api_key="not-the-key", api_version="2024-10-21", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="anything", messages=[{"role": "user", "content": "hi"}])


def test_poller_waits_through_provisioning_and_conflicts_surface_as_request_conflict(az):
    client = mgmt(az, secret_credential(az))
    rg, account = az["AZURE_RESOURCE_GROUP"], az["AZURE_OPENAI_ACCOUNT"]
    body = Deployment(sku=Sku(name="Standard", capacity=1),
                      properties=DeploymentProperties(model=DeploymentModel(format="OpenAI", name="gpt-4o")))
    admin(az, "POST", "provisioning-delay", {"ms": 1500})
    try:
        first = client.deployments.begin_create_or_update(rg, account, "sdk-slow", body)
        assert not first.done()
        with pytest.raises(HttpResponseError) as err:
            client.deployments.begin_create_or_update(rg, account, "sdk-other", body).result(timeout=30)
        assert err.value.status_code == 409
        assert err.value.error.code == "RequestConflict"
        result = first.result(timeout=30)
        assert result.properties.provisioning_state == "Succeeded"
        assert result.properties.model.version == "2024-08-06"
    finally:
        admin(az, "POST", "provisioning-delay", {"ms": 0})
    log = admin(az, "GET", "log")
    polls = [e for e in log if "/operationStatuses/" in e["path"]]
    assert len(polls) >= 1
    client.deployments.begin_delete(rg, account, "sdk-slow").result(timeout=30)


def test_mgmt_sdk_update_catalog_views_and_key_vault_delete(az):
    from azure.mgmt.cognitiveservices.models import PatchResourceTagsAndSku

    client = mgmt(az, secret_credential(az))
    rg, account = az["AZURE_RESOURCE_GROUP"], az["AZURE_OPENAI_ACCOUNT"]
    body = Deployment(sku=Sku(name="GlobalStandard", capacity=2),
                      properties=DeploymentProperties(model=DeploymentModel(format="OpenAI", name="gpt-4o-mini")))
    client.deployments.begin_create_or_update(rg, account, "sdk-upd", body).result(timeout=30)
    updated = client.deployments.begin_update(
        rg, account, "sdk-upd", PatchResourceTagsAndSku(sku=Sku(name="GlobalStandard", capacity=4), tags={"t": "1"})
    ).result(timeout=30)
    assert updated.sku.capacity == 4
    assert updated.tags == {"t": "1"}
    skus = list(client.deployments.list_skus(rg, account, "sdk-upd"))
    assert {s.sku.name for s in skus} >= {"Standard", "GlobalStandard"}
    models = list(client.accounts.list_models(rg, account))
    assert any(m.name == "gpt-4o-mini.2024-07-18" and m.is_default_version for m in models)
    usages = list(client.usages.list("eastus"))
    mini = next(u for u in usages if u.name.value == "OpenAI.GlobalStandard.gpt-4o-mini")
    assert mini.current_value >= 4
    client.deployments.begin_delete(rg, account, "sdk-upd").result(timeout=30)

    vault = SecretClient(az["AZURE_KEY_VAULT_URI"], secret_credential(az), verify_challenge_resource=False)
    vault.set_secret("sdk-temp", "one")
    second = vault.set_secret("sdk-temp", "two")
    versions = list(vault.list_properties_of_secret_versions("sdk-temp"))
    assert len(versions) == 2
    deleted = vault.begin_delete_secret("sdk-temp").result()
    assert deleted.recovery_id.endswith("/deletedsecrets/sdk-temp")
    assert vault.get_deleted_secret("sdk-temp").name == "sdk-temp"
    vault.purge_deleted_secret("sdk-temp")
    with pytest.raises(ResourceNotFoundError):
        vault.get_secret("sdk-temp")
    assert second.properties.version not in {None, ""}


def test_no_contract_violations_from_the_sdk_traffic(az):
    """When the test bed runs with AZURE_SPECS_DIR, every request the SDKs above sent and every
    response the emulator gave them was validated against Microsoft's specs."""
    state = admin(az, "GET", "state")
    if not state["contract_loaded"]:
        pytest.skip("AZURE_SPECS_DIR not set for the test bed: SDK traffic not validated against the specs")
    assert state["contract_violations"] == []
