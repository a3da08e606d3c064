"""Microsoft's azure-mgmt-cognitiveservices judges the emulator's Cognitive Services extensions
of issues 11, 13 and 14: capacity rules (InvalidCapacity), paged lists followed through
nextLink, the properties a PUT keeps; accounts with their pollers, subdomains, projects and
content filters; and, with the official `openai` client and azure-mgmt-authorization, key
rotation, embeddings, a failing deployment and keyless access with Entra tokens."""
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.cognitiveservices.models import Deployment, DeploymentModel, DeploymentProperties, Sku

from azure_clients import admin, az, mgmt, secret_credential  # noqa: F401


def deployment(model, sku, capacity, version=None, **props):
    return Deployment(
        sku=Sku(name=sku, capacity=capacity),
        properties=DeploymentProperties(model=DeploymentModel(format="OpenAI", name=model, version=version), **props),
    )


def test_capacity_rules_are_published_and_enforced(az):
    client = mgmt(az, secret_credential(az))
    rg, account = az["AZURE_RESOURCE_GROUP"], az["AZURE_OPENAI_ACCOUNT"]
    models = list(client.accounts.list_models(rg, account))
    gpt4o = next(m for m in models if m.name == "gpt-4o.2024-08-06")
    ptu = next(s for s in gpt4o.skus if s.name == "GlobalProvisionedManaged")
    assert (ptu.capacity.minimum, ptu.capacity.step, ptu.capacity.default) == (15, 5, 15)
    with pytest.raises(HttpResponseError) as err:
        client.deployments.begin_create_or_update(
            rg, account, "sdk-ptu", deployment("gpt-4o", "GlobalProvisionedManaged", 3, "2024-08-06")
        ).result(timeout=30)
    assert err.value.status_code == 400
    assert err.value.error.code == "InvalidCapacity"
    assert "at least 15" in err.value.error.message
    with pytest.raises(HttpResponseError) as err:
        client.deployments.begin_create_or_update(
            rg, account, "sdk-ptu", deployment("gpt-4o", "GlobalProvisionedManaged", 18, "2024-08-06")
        ).result(timeout=30)
    assert "increments of 5" in err.value.error.message
    done = client.deployments.begin_create_or_update(
        rg, account, "sdk-ptu", deployment("gpt-4o", "GlobalProvisionedManaged", 20, "2024-08-06")
    ).result(timeout=30)
    assert done.sku.capacity == 20
    client.deployments.begin_delete(rg, account, "sdk-ptu").result(timeout=30)


def test_the_sdk_pager_follows_next_link_through_every_page(az):
    client = mgmt(az, secret_credential(az))
    rg, account = az["AZURE_RESOURCE_GROUP"], az["AZURE_OPENAI_ACCOUNT"]
    names = [f"sdk-page-{i}" for i in range(5)]
    for n in names:
        client.deployments.begin_create_or_update(rg, account, n, deployment("gpt-4o-mini", "GlobalStandard", 1)).result(timeout=30)
    admin(az, "POST", "list-page-size", {"size": 2})
    admin(az, "DELETE", "log")
    try:
        listed = [d.name for d in client.deployments.list(rg, account)]
    finally:
        admin(az, "POST", "list-page-size", {"size": 100})
    assert sorted(n for n in listed if n.startswith("sdk-page-")) == names
    assert len(listed) == len(set(listed)), "no deployment twice"
    pages = [e for e in admin(az, "GET", "log") if e["path"].endswith("/deployments") and e["method"] == "GET"]
    assert len(pages) == -(-len(listed) // 2), pages
    for n in names:
        client.deployments.begin_delete(rg, account, n).result(timeout=30)


def test_a_put_keeps_every_property_it_sends(az):
    # azure-mgmt-cognitiveservices 14.1.0 (the newest) has no `routing` or `contextCacheContainerId`
    # yet; the Rust suite checks those two (azure_deployments.rs).
    from azure.mgmt.cognitiveservices.models import DeploymentCapacitySettings

    client = mgmt(az, secret_credential(az))
    rg, account = az["AZURE_RESOURCE_GROUP"], az["AZURE_OPENAI_ACCOUNT"]
    account_id = client.accounts.get(rg, account).id
    body = Deployment(
        sku=Sku(name="GlobalStandard", capacity=10),
        properties=DeploymentProperties(
            model=DeploymentModel(format="OpenAI", name="gpt-4o-mini", version="2024-07-18", publisher="OpenAI",
                                  source=f"{account_id}/deployments/origin", source_account=account_id),
            parent_deployment_name="parent-chat",
            capacity_settings=DeploymentCapacitySettings(designated_capacity=10, priority=1),
            spillover_deployment_name="overflow-chat",
        ),
    )
    client.deployments.begin_create_or_update(rg, account, "sdk-rich", body).result(timeout=30)
    got = client.deployments.get(rg, account, "sdk-rich").properties
    assert got.model.publisher == "OpenAI" and got.model.source_account == account_id
    assert got.model.source.endswith("/deployments/origin")
    assert got.parent_deployment_name == "parent-chat"
    assert got.capacity_settings.designated_capacity == 10 and got.capacity_settings.priority == 1
    assert got.spillover_deployment_name == "overflow-chat"
    client.deployments.begin_delete(rg, account, "sdk-rich").result(timeout=30)


def test_account_lifecycle_subdomain_projects_and_content_filters(az):
    """Issue 13: an account created, updated and deleted through the SDK's pollers, a taken
    subdomain refused, a Foundry project with its endpoint, a validated content filter with a
    blocklist, and a deployment naming it."""
    from azure.mgmt.cognitiveservices.models import (
        Account, AccountProperties, CustomBlocklistConfig, Identity,
        Project, ProjectProperties, RaiBlocklist, RaiBlocklistItemBulkRequest, RaiBlocklistItemProperties,
        RaiBlocklistProperties, RaiPolicy, RaiPolicyContentFilter, RaiPolicyProperties,
    )
    from azure.mgmt.cognitiveservices.models import Sku as AccountSku

    client = mgmt(az, secret_credential(az))
    rg, name = "rg-sdk", "sdk-foundry"
    account = Account(
        location="eastus2", kind="AIServices", sku=AccountSku(name="S0"), identity=Identity(type="SystemAssigned"),
        properties=AccountProperties(custom_sub_domain_name="sdk-foundry-sub", allow_project_management=True,
                                     public_network_access="Enabled", disable_local_auth=False),
        tags={"owner": "platform"},
    )
    created = client.accounts.begin_create(rg, name, account).result(timeout=30)
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.custom_sub_domain_name == "sdk-foundry-sub"
    assert created.identity.principal_id
    # The subdomain is taken now.
    with pytest.raises(HttpResponseError) as err:
        client.accounts.begin_create("rg-other", "sdk-copy", Account(
            location="eastus2", kind="AIServices", sku=AccountSku(name="S0"),
            properties=AccountProperties(custom_sub_domain_name="SDK-foundry-sub"))).result(timeout=30)
    assert err.value.status_code == 409 and err.value.error.code == "CustomDomainInUse"
    check = client.check_domain_availability("sdk-foundry-sub", "Microsoft.CognitiveServices/accounts")
    assert check.is_subdomain_available is False
    updated = client.accounts.begin_update(rg, name, Account(tags={"owner": "platform", "env": "test"})).result(timeout=30)
    assert updated.tags == {"owner": "platform", "env": "test"}

    project = client.projects.begin_create(rg, name, "team-a", Project(
        location="eastus2", properties=ProjectProperties(display_name="Team A", description="chat"))).result(timeout=30)
    assert project.properties.provisioning_state == "Succeeded"
    assert project.properties.endpoints["AI Foundry API"].endswith("/api/projects/team-a")
    assert [p.name for p in client.projects.list(rg, name)] == ["team-a"]
    assert client.accounts.get(rg, name).properties.default_project == "team-a"

    client.rai_blocklists.create_or_update(rg, name, "words", RaiBlocklist(
        properties=RaiBlocklistProperties(description="blocked words")))
    client.rai_blocklist_items.batch_add(rg, name, "words", [
        RaiBlocklistItemBulkRequest(name="w1", properties=RaiBlocklistItemProperties(pattern="forbidden", is_regex=False)),
    ])
    assert [i.name for i in client.rai_blocklist_items.list(rg, name, "words")] == ["w1"]
    filters = [RaiPolicyContentFilter(name="Hate", severity_threshold="Low", blocking=True, enabled=True, source="Prompt"),
               RaiPolicyContentFilter(name="Hate", severity_threshold="Medium", blocking=True, enabled=True, source="Completion")]
    with pytest.raises(HttpResponseError) as err:
        client.rai_policies.create_or_update(rg, name, "strict", RaiPolicy(properties=RaiPolicyProperties(
            base_policy_name="Microsoft.DefaultV2", content_filters=filters,
            custom_blocklists=[CustomBlocklistConfig(blocklist_name="nope", blocking=True, source="Prompt")])))
    assert err.value.status_code == 400 and "nope" in err.value.error.message
    policy = client.rai_policies.create_or_update(rg, name, "strict", RaiPolicy(properties=RaiPolicyProperties(
        base_policy_name="Microsoft.DefaultV2", content_filters=filters,
        custom_blocklists=[CustomBlocklistConfig(blocklist_name="words", blocking=True, source="Prompt")])))
    assert policy.properties.type == "UserManaged"
    deployed = client.deployments.begin_create_or_update(
        rg, name, "chat", deployment("gpt-4o-mini", "GlobalStandard", 1, rai_policy_name="strict")).result(timeout=30)
    assert deployed.properties.rai_policy_name == "strict"
    with pytest.raises(HttpResponseError) as err:
        client.deployments.begin_create_or_update(
            rg, name, "chat2", deployment("gpt-4o-mini", "GlobalStandard", 1, rai_policy_name="missing")).result(timeout=30)
    assert err.value.status_code == 400

    client.deployments.begin_delete(rg, name, "chat").result(timeout=30)
    client.projects.begin_delete(rg, name, "team-a").result(timeout=30)
    assert list(client.projects.list(rg, name)) == []
    client.accounts.begin_delete(rg, name).result(timeout=30)
    assert name not in [a.name for a in client.accounts.list_by_resource_group(rg)]


def test_embeddings_and_key_rotation_with_the_openai_client(az):
    """Issue 14: the official openai client keeps working through a key1/key2 rotation (the key
    regenerated stops at once), embeddings answer, a deployment told to fail answers its error."""
    import openai
    from openai import AzureOpenAI

    client = mgmt(az, secret_credential(az))
    rg, account = az["AZURE_RESOURCE_GROUP"], az["AZURE_OPENAI_ACCOUNT"]
    client.deployments.begin_create_or_update(rg, account, "sdk-embed", deployment("text-embedding-3-small", "GlobalStandard", 1)).result(timeout=30)
    client.deployments.begin_create_or_update(rg, account, "sdk-rotate", deployment("gpt-4o-mini", "GlobalStandard", 1)).result(timeout=30)
    endpoint = az["AZURE_OPENAI_ENDPOINT"]

    def ask(key):
        c = AzureOpenAI(azure_endpoint=endpoint, api_key=key, api_version="2024-10-21", max_retries=0)
        return c.chat.completions.create(model="sdk-rotate", max_tokens=1, messages=[{"role": "user", "content": "hi"}])

    keys = client.accounts.list_keys(rg, account)
    assert ask(keys.key1).choices[0].finish_reason == "length"
    # Rotate: regenerate the key not in use, move to it, regenerate the old one.
    fresh2 = client.accounts.regenerate_key(rg, account, "Key2").key2
    assert ask(keys.key1) and ask(fresh2)
    client.accounts.regenerate_key(rg, account, "Key1")
    with pytest.raises(openai.AuthenticationError):
        ask(keys.key1)
    assert ask(fresh2)

    emb = AzureOpenAI(azure_endpoint=endpoint, api_key=fresh2, api_version="2024-10-21", max_retries=0)
    vectors = emb.embeddings.create(model="sdk-embed", input=["one", "two"], dimensions=16)
    assert [len(d.embedding) for d in vectors.data] == [16, 16]
    assert vectors.data[0].embedding != vectors.data[1].embedding

    admin(az, "POST", "deployment-failure?name=sdk-rotate", {"status": 500, "code": "InternalServerError", "message": "The deployment is unhealthy."})
    try:
        with pytest.raises(openai.InternalServerError) as err:
            ask(fresh2)
        assert "The deployment is unhealthy." in str(err.value)
    finally:
        admin(az, "DELETE", "deployment-failure?name=sdk-rotate")
    assert ask(fresh2)
    assert admin(az, "GET", "deployment-requests?name=sdk-rotate")["requests"] >= 6
    for d in ("sdk-embed", "sdk-rotate"):
        client.deployments.begin_delete(rg, account, d).result(timeout=30)


def test_keyless_mode_with_an_entra_token_of_an_app_teams_identity(az):
    """Issue 14: an account with disableLocalAuth; an app team's identity granted "Cognitive
    Services OpenAI User" with azure-mgmt-authorization calls through openai with an
    azure-identity token provider; a key fails; removing the assignment removes the access."""
    import uuid

    import openai
    from azure.identity import ClientSecretCredential, WorkloadIdentityCredential, get_bearer_token_provider
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters
    from azure.mgmt.cognitiveservices.models import Account, AccountProperties
    from azure.mgmt.cognitiveservices.models import Sku as AccountSku
    from openai import AzureOpenAI

    from azure_clients import ARM_SCOPE

    client = mgmt(az, secret_credential(az))
    rg, name = "rg-keyless", "sdk-keyless"
    acc = client.accounts.begin_create(rg, name, Account(
        location="eastus", kind="AIServices", sku=AccountSku(name="S0"),
        properties=AccountProperties(custom_sub_domain_name="sdk-keyless", disable_local_auth=True))).result(timeout=30)
    client.deployments.begin_create_or_update(rg, name, "chat", deployment("gpt-4o-mini", "GlobalStandard", 1)).result(timeout=30)
    endpoint = acc.properties.endpoint

    team = admin(az, "POST", "identities", {})
    authority = az["AZURE_AUTHORITY_HOST"]
    team_cred = ClientSecretCredential(az["AZURE_TENANT_ID"], team["client_id"], team["client_secret"],
                                       authority=authority, disable_instance_discovery=True)
    scope = "https://cognitiveservices.azure.com/.default"

    def ask(**auth):
        c = AzureOpenAI(azure_endpoint=endpoint, api_version="2024-10-21", max_retries=0, **auth)
        return c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])

    with pytest.raises(openai.AuthenticationError) as err:
        ask(azure_ad_token_provider=get_bearer_token_provider(team_cred, scope))
    assert "lacks the required data action" in str(err.value)

    authz = AuthorizationManagementClient(secret_credential(az), az["AZURE_SUBSCRIPTION_ID"],
                                          base_url=az["AZURE_RESOURCE_MANAGER_ENDPOINT"], credential_scopes=[ARM_SCOPE])
    role = next(iter(authz.role_definitions.list(acc.id, filter="roleName eq 'Cognitive Services OpenAI User'")))
    assert role.name == "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
    assignment_name = str(uuid.uuid4())
    created = authz.role_assignments.create(acc.id, assignment_name, RoleAssignmentCreateParameters(
        role_definition_id=role.id, principal_id=team["object_id"], principal_type="ServicePrincipal"))
    assert created.scope == acc.id and created.principal_id == team["object_id"]
    assert [a.name for a in authz.role_assignments.list_for_scope(acc.id, filter=f"principalId eq '{team['object_id']}'")] == [assignment_name]

    assert ask(azure_ad_token_provider=get_bearer_token_provider(team_cred, scope)).choices[0].message.content
    # The same identity as a workload identity (federated token file) works too.
    wi = WorkloadIdentityCredential(tenant_id=az["AZURE_TENANT_ID"], client_id=team["client_id"],
                                    token_file_path=az["AZURE_FEDERATED_TOKEN_FILE"], authority=authority,
                                    disable_instance_discovery=True)
    assert ask(azure_ad_token_provider=get_bearer_token_provider(wi, scope))
    keys = client.accounts.list_keys(rg, name)
    with pytest.raises(openai.PermissionDeniedError) as err:
        ask(api_key=keys.key1)
    assert "Key based authentication is disabled" in str(err.value)

    authz.role_assignments.delete(acc.id, assignment_name)
    with pytest.raises(openai.AuthenticationError):
        ask(azure_ad_token_provider=get_bearer_token_provider(team_cred, scope))
    client.deployments.begin_delete(rg, name, "chat").result(timeout=30)
    client.accounts.begin_delete(rg, name).result(timeout=30)


def test_no_contract_violations_from_this_traffic(az):
    state = admin(az, "GET", "state")
    if not state["contract_loaded"]:
        pytest.skip("AZURE_SPECS_DIR not set for the test bed: SDK traffic not validated against the specs")
    assert state["contract_violations"] == []
