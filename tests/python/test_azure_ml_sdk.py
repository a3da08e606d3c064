"""Microsoft's official Azure Machine Learning SDK, `azure-ai-ml` (unmodified), drives the
Machine Learning side of the emulator of `testbed up`: managed online endpoints and deployments
(`ManagedOnlineEndpoint`, `ManagedOnlineDeployment`, `begin_create_or_update`, `get_keys`,
`invoke`), serverless endpoints and marketplace subscriptions, and the registry catalogue.

The SDK is pointed at the emulator only through its own supported setting for sovereign and
custom clouds: `MLClient(..., cloud=<name>, cloud_metadata={...})`, whose resource manager and
registry discovery endpoints are the emulator's ARM URL (the SDK then asks tokens for that URL's
scope, which the emulator's ARM accepts as a custom cloud's ARM does), with azure-identity's
`ClientSecretCredential` against the emulator's Entra ID and `REQUESTS_CA_BUNDLE` for its CA."""
import json
import os

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.entities import (
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    MarketplaceSubscription,
    OnlineRequestSettings,
    ProbeSettings,
    ServerlessEndpoint,
)
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from test_azure_sdks import admin, secret_credential

PHI = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1"
LLAMA_70B = "azureml://registries/azureml/models/Llama-3.3-70B-Instruct/versions/4"
MISTRAL = "azureml://registries/azureml-mistral/models/Mistral-Large-2411"
COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-plus-08-2024"
NC24, NC48 = "Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4"
TIMEOUT = 120


@pytest.fixture(scope="module")
def az(testbed):
    env = testbed.azure_env
    names = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "AZUREML_CURRENT_CLOUD")
    saved = {k: os.environ.get(k) for k in names}
    os.environ["REQUESTS_CA_BUNDLE"] = env["REQUESTS_CA_BUNDLE"]
    os.environ["SSL_CERT_FILE"] = env["SSL_CERT_FILE"]
    yield env
    for k, v in saved.items():  # MLClient records its cloud in AZUREML_CURRENT_CLOUD
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def cloud(env):
    """The SDK's custom-cloud settings for the emulator (one cloud name per emulator URL)."""
    arm = env["AZURE_RESOURCE_MANAGER_ENDPOINT"]
    port = arm.rstrip("/").rsplit(":", 1)[1]
    metadata = {
        "azure_portal": arm,
        "resource_manager": arm,
        "active_directory": env["AZURE_AUTHORITY_HOST"],
        "aml_resource_id": "https://ml.azure.com/",
        "storage_endpoint": "core.windows.net",
        "registry_discovery_endpoint": arm,
    }
    return {"cloud": f"AzureTestbed{port}", "cloud_metadata": metadata, "enable_telemetry": False, "show_progress": False}


@pytest.fixture(scope="module")
def ml(az):
    return MLClient(secret_credential(az), az["AZURE_SUBSCRIPTION_ID"], az["AZURE_RESOURCE_GROUP"],
                    az["AZURE_ML_WORKSPACE"], **cloud(az))


def request_file(tmp_path, text):
    path = tmp_path / "request.json"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": text}]}))
    return str(path)


def deployment(name, endpoint, model=PHI, instance_type=NC24, count=1, **extra):
    return ManagedOnlineDeployment(name=name, endpoint_name=endpoint, model=model, instance_type=instance_type,
                                   instance_count=count, **extra)


def test_managed_online_endpoint_lifecycle(ml, az, tmp_path):
    created = ml.online_endpoints.begin_create_or_update(
        ManagedOnlineEndpoint(name="sdk-chat", auth_mode="key", tags={"team": "a"})).result(timeout=TIMEOUT)
    assert created.provisioning_state.lower() == "succeeded"
    assert created.scoring_uri.startswith("https://127.0.0.1:") and created.scoring_uri.endswith("/score")
    blue = ml.online_deployments.begin_create_or_update(deployment(
        "blue", "sdk-chat",
        liveness_probe=ProbeSettings(initial_delay=600, period=20),
        request_settings=OnlineRequestSettings(request_timeout_ms=90000, max_concurrent_requests_per_instance=4),
        environment_variables={"MAX_TOKENS": "512"},
    )).result(timeout=TIMEOUT)
    assert blue.provisioning_state.lower() == "succeeded"
    got = ml.online_deployments.get("blue", "sdk-chat")
    assert (got.model, got.instance_type, got.instance_count) == (PHI, NC24, 1)
    assert got.request_settings.request_timeout_ms == 90000
    assert got.liveness_probe.initial_delay == 600
    assert got.environment_variables == {"MAX_TOKENS": "512"}

    endpoint = ml.online_endpoints.get("sdk-chat")
    endpoint.traffic = {"blue": 100}
    ml.online_endpoints.begin_create_or_update(endpoint).result(timeout=TIMEOUT)
    assert ml.online_endpoints.get("sdk-chat").traffic == {"blue": 100}
    keys = ml.online_endpoints.get_keys("sdk-chat")
    assert keys.primary_key and keys.secondary_key and keys.primary_key != keys.secondary_key
    answer = json.loads(ml.online_endpoints.invoke("sdk-chat", request_file=request_file(tmp_path, "hello")))
    assert "deployment 'blue'" in answer["choices"][0]["message"]["content"]
    assert any(e.name == "sdk-chat" for e in ml.online_endpoints.list())
    assert [d.name for d in ml.online_deployments.list("sdk-chat")] == ["blue"]

    # The instance count changes in place; the instance type cannot.
    blue = ml.online_deployments.get("blue", "sdk-chat")
    blue.instance_count = 2
    assert ml.online_deployments.begin_create_or_update(blue).result(timeout=TIMEOUT).instance_count == 2
    blue.instance_type = NC48
    with pytest.raises(HttpResponseError) as err:
        ml.online_deployments.begin_create_or_update(blue).result(timeout=TIMEOUT)
    assert "cannot be updated" in str(err.value)

    # So a new instance type is a new deployment, then the traffic moves, then the old one goes.
    ml.online_deployments.begin_create_or_update(deployment("green", "sdk-chat", instance_type=NC48)).result(timeout=TIMEOUT)
    endpoint = ml.online_endpoints.get("sdk-chat")
    endpoint.traffic = {"green": 100, "blue": 0}
    ml.online_endpoints.begin_create_or_update(endpoint).result(timeout=TIMEOUT)
    ml.online_deployments.begin_delete("blue", "sdk-chat").result(timeout=TIMEOUT)
    answer = json.loads(ml.online_endpoints.invoke("sdk-chat", request_file=request_file(tmp_path, "again")))
    assert f"deployment 'green' of endpoint 'sdk-chat' ({PHI} on {NC48} x1)" in answer["choices"][0]["message"]["content"]
    served = admin(az, "GET", "ml/served")
    mine = [s for s in served if s["endpoint_id"].endswith("/onlineEndpoints/sdk-chat")]
    assert [s["deployment"] for s in mine] == ["blue", "green"] and all(s["status"] == 200 for s in mine)

    ml.online_endpoints.begin_delete(name="sdk-chat").result(timeout=TIMEOUT)
    with pytest.raises(ResourceNotFoundError):
        ml.online_endpoints.get("sdk-chat")


def test_bad_deployments_are_rejected_with_azure_errors_and_nothing_is_written(ml):
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="sdk-bad", auth_mode="key")).result(timeout=TIMEOUT)
    cases = [
        ("unknown", deployment("unknown", "sdk-bad", model="azureml://registries/azureml/models/No-Such-Model/versions/1"), "was not found"),
        ("toosmall", deployment("toosmall", "sdk-bad", model=LLAMA_70B), "is not supported for model 'Llama-3.3-70B-Instruct'"),
        ("serverless", deployment("serverless", "sdk-bad", model=MISTRAL + "/versions/2"), "not offered for deployment to managed compute"),
        # No NC H100 v5 quota in the seeded subscription: one instance plus Azure's 20 % reserve needs 80 vCPUs.
        ("noquota", deployment("noquota", "sdk-bad", instance_type="Standard_NC40ads_H100_v5"),
         "Not enough quota available for Standard_NC40ads_H100_v5"),
    ]
    for name, body, message in cases:
        with pytest.raises(HttpResponseError) as err:
            ml.online_deployments.begin_create_or_update(body).result(timeout=TIMEOUT)
        assert err.value.status_code == 400
        assert message in str(err.value), str(err.value)
        with pytest.raises(ResourceNotFoundError):
            ml.online_deployments.get(name, "sdk-bad")
    assert "Current usage/limit: 0/0. Additional needed: 80" in str(err.value)
    ml.online_endpoints.begin_delete(name="sdk-bad").result(timeout=TIMEOUT)


def test_aml_token_endpoint_issues_tokens_that_score(ml, tmp_path):
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="sdk-token", auth_mode="aml_token")).result(timeout=TIMEOUT)
    ml.online_deployments.begin_create_or_update(deployment("blue", "sdk-token")).result(timeout=TIMEOUT)
    endpoint = ml.online_endpoints.get("sdk-token")
    endpoint.traffic = {"blue": 100}
    ml.online_endpoints.begin_create_or_update(endpoint).result(timeout=TIMEOUT)
    token = ml.online_endpoints.get_keys("sdk-token")
    assert token.access_token.count(".") == 2 and token.expiry_time_utc > 0
    answer = json.loads(ml.online_endpoints.invoke("sdk-token", request_file=request_file(tmp_path, "hi"),
                                                   deployment_name="blue"))
    assert "deployment 'blue'" in answer["choices"][0]["message"]["content"]
    ml.online_endpoints.begin_delete(name="sdk-token").result(timeout=TIMEOUT)


def test_serverless_endpoint_behind_a_marketplace_subscription(ml):
    from openai import OpenAI

    with pytest.raises(HttpResponseError) as err:
        ml.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="sdk-cohere", model_id=COHERE)).result(timeout=TIMEOUT)
    assert "needs a marketplace subscription" in str(err.value)

    subscription = ml.marketplace_subscriptions.begin_create_or_update(
        MarketplaceSubscription(name="sdk-mistral", model_id=MISTRAL)).result(timeout=TIMEOUT)
    assert subscription.status.lower() == "subscribed"
    assert subscription.marketplace_plan.offer_id == "mistral-ai-large-2411-offer"
    assert ml.marketplace_subscriptions.get("sdk-mistral").model_id == MISTRAL
    assert "sdk-mistral" in [s.name for s in ml.marketplace_subscriptions.list()]

    endpoint = ml.serverless_endpoints.begin_create_or_update(
        ServerlessEndpoint(name="sdk-mistral", model_id=MISTRAL)).result(timeout=TIMEOUT)
    assert endpoint.provisioning_state.lower() == "succeeded"
    got = ml.serverless_endpoints.get("sdk-mistral")
    assert got.model_id == MISTRAL and got.scoring_uri.startswith("https://127.0.0.1:")
    assert "sdk-mistral" in [e.name for e in ml.serverless_endpoints.list()]
    keys = ml.serverless_endpoints.get_keys("sdk-mistral")
    client = OpenAI(base_url=got.scoring_uri, api_key=keys.primary_key, max_retries=0)
    reply = client.chat.completions.create(model="Mistral-Large-2411", messages=[{"role": "user", "content": "bonjour"}])
    assert reply.choices[0].message.content == "Hello from serverless endpoint 'sdk-mistral' (Mistral-Large-2411). You said: bonjour"

    ml.serverless_endpoints.begin_delete("sdk-mistral").result(timeout=TIMEOUT)
    with pytest.raises(ResourceNotFoundError):
        ml.serverless_endpoints.get("sdk-mistral")
    ml.marketplace_subscriptions.begin_delete("sdk-mistral").result(timeout=TIMEOUT)


def test_registry_catalogue_through_the_registry_client(az):
    registry = MLClient(secret_credential(az), registry_name=az["AZURE_ML_REGISTRY"], **cloud(az))
    model = registry.models.get("Llama-3.3-70B-Instruct", version="4")
    assert model.id == LLAMA_70B
    assert json.loads(model.tags["inference_compute_allow_list"]) == ["Standard_NC96ads_A100_v4", "Standard_ND96amsr_A100_v4"]
    assert sorted(m.version for m in registry.models.list("Llama-3.2-3B-Instruct")) == ["1", "2"]
    with pytest.raises(ResourceNotFoundError):
        registry.models.get("Llama-3.3-70B-Instruct", version="99")


def test_no_contract_violations_from_the_ml_sdk_traffic(az):
    """With the specs beside AZURE_SPECS_DIR, every request azure-ai-ml sent at the spec's
    api-version and every answer was validated (its older pinned versions have no spec here)."""
    state = admin(az, "GET", "ml/state")
    if not state["contract_loaded"]:
        pytest.skip("the Machine Learning specs are not loaded: SDK traffic not validated")
    assert admin(az, "GET", "state")["contract_violations"] == []
