"""The publisher's deployment (deploy/controlplane.json) on the ARM emulator through azure-mgmt-resource-deployments.

The template deploys as one deployment; its outputs are evaluated from what the resources became (the API's
URL from its ingress, the identity, the Key Vault reference) and read back from ARM to prove them.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.deployments.models import Deployment, DeploymentMode, DeploymentProperties
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources.models import GenericResource, Sku

from core.arm_templates.checker import check_deployment_templates
from core.arm_templates.steps import output_values

pytestmark = pytest.mark.timeout(60)

REPOSITORY = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPOSITORY / "deploy" / "controlplane.json"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
API_VERSIONS = {
    "microsoft.app": "2025-07-01",
    "microsoft.keyvault": "2025-05-01",
    "microsoft.managedidentity": "2024-11-30",
    "microsoft.authorization": "2022-04-01",
    "microsoft.insights": "2024-03-11",
    "microsoft.operationalinsights": "2025-07-01",
    "microsoft.dbforpostgresql": "2024-08-01",
    "microsoft.cache": "2024-11-01",
    "microsoft.containerregistry": "2025-04-01",
}
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return loaded


def parameters(kind: str) -> dict[str, Any]:
    """What a publisher supplies; the secure values are unique so a leak into any resource body is findable."""
    values = {
        "image": "controlplaneimages.azurecr.io/controlplane:1.4.0",
        "registryName": "controlplaneimages",
        "publisherTenantId": str(uuid.uuid4()),
        "publisherClientId": str(uuid.uuid4()),
        "publisherServicePrincipalObjectId": str(uuid.uuid4()),
        "publisherCredentialKind": kind,
        "publisherCredential": f"credential-{uuid.uuid4().hex}",
        "sessionSecret": f"session-{uuid.uuid4().hex}",
        "controlPlaneClientId": str(uuid.uuid4()),
        "controlPlaneClientSecret": f"control-plane-{uuid.uuid4().hex}",
        "postgresAdministratorPassword": f"p@ss/{uuid.uuid4().hex}",
    }
    return {name: {"value": value} for name, value in values.items()}


def api_version(resource_id: str) -> str:
    namespace = resource_id.split("/providers/")[-1].split("/")[0].lower()
    return API_VERSIONS[namespace]


@pytest.fixture
def deployments(arm_mgmt_client: Callable[..., Any]) -> DeploymentsMgmtClient:
    client: DeploymentsMgmtClient = arm_mgmt_client(DeploymentsMgmtClient)
    return client


@pytest.fixture
def resources(arm_mgmt_client: Callable[..., Any]) -> ResourceManagementClient:
    client: ResourceManagementClient = arm_mgmt_client(ResourceManagementClient)
    return client


@pytest.fixture
def authorization(arm_mgmt_client: Callable[..., Any]) -> AuthorizationManagementClient:
    client: AuthorizationManagementClient = arm_mgmt_client(AuthorizationManagementClient)
    return client


@pytest.fixture
def publisher_group(resources: ResourceManagementClient) -> Iterator[str]:
    name = f"rg-controlplane-{uuid.uuid4().hex[:8]}"
    resources.resource_groups.create_or_update(name, {"location": "westeurope"})
    # The registry the publisher pushed the image to before deploying (the template only grants pulling from it).
    group_id = resources.resource_groups.get(name).id
    resources.resources.begin_create_or_update_by_id(
        f"{group_id}/providers/Microsoft.ContainerRegistry/registries/controlplaneimages",
        GenericResource(location="westeurope", sku=Sku(name="Standard")),
        api_version="2025-04-01",
    ).result()
    yield name
    resources.resource_groups.begin_delete(name).result()


def deploy(
    deployments: DeploymentsMgmtClient, group: str, body: dict[str, Any], values: dict[str, Any]
) -> tuple[str, dict[str, Any], Any]:
    result = deployments.deployments.begin_create_or_update(
        group,
        "controlplane",
        Deployment(properties=DeploymentProperties(mode=DeploymentMode.INCREMENTAL, template=body, parameters=values)),
    ).result()
    assert result.properties is not None
    state = result.properties.provisioning_state
    outputs = output_values(result.properties.outputs) if result.properties.outputs else {}
    return str(getattr(state, "value", state)), outputs, result.properties.error


def read(resources: ResourceManagementClient, resource_id: str) -> dict[str, Any]:
    body: dict[str, Any] = resources.resources.get_by_id(resource_id, api_version=api_version(resource_id)).as_dict()
    return body


def roles_at(authorization: AuthorizationManagementClient, scope: str) -> set[tuple[str, str]]:
    """(principal, role definition GUID) of every assignment made exactly at `scope`."""
    return {
        (str(item.principal_id), str(item.role_definition_id).rsplit("/", 1)[1])
        for item in authorization.role_assignments.list_for_scope(scope)
        if str(item.scope).lower() == scope.lower()
    }


def app_id(group_id: str, name: str) -> str:
    return f"{group_id}/providers/Microsoft.App/containerApps/{name}"


def test_the_deployment_template_passes_the_checker() -> None:
    # The day the API versions were last reviewed, so the test does not fail on its own as time passes.
    assert check_deployment_templates(REPOSITORY, date(2026, 12, 8)) == []


def test_the_control_plane_deploys_with_a_certificate_read_from_key_vault_through_the_identity(
    deployments: DeploymentsMgmtClient,
    resources: ResourceManagementClient,
    authorization: AuthorizationManagementClient,
    publisher_group: str,
) -> None:
    values = parameters("certificate")
    state, outputs, error = deploy(deployments, publisher_group, template(), values)
    assert state == "Succeeded", error
    group_id = resources.resource_groups.get(publisher_group).id
    assert group_id is not None

    # The API's URL is its ingress FQDN on the environment's domain; landing, webhook and sign-in hang off it.
    environment = read(resources, f"{group_id}/providers/Microsoft.App/managedEnvironments/cp-env")
    api_host = f"cp-api.{environment['properties']['defaultDomain']}"
    assert outputs["apiUrl"] == f"https://{api_host}"
    assert outputs["landingPageUrl"] == f"https://{api_host}/marketplace/landing"
    assert outputs["webhookUrl"] == f"https://{api_host}/marketplace/webhook"
    assert outputs["portalRedirectUri"] == f"https://{api_host}/auth/callback"

    # The identity, as ARM holds it, and its one role: reading the vault's secrets.
    identity = read(resources, outputs["identityResourceId"])
    assert identity["properties"]["principalId"] == outputs["identityPrincipalId"]
    assert identity["properties"]["clientId"] == outputs["identityClientId"]
    vault_name = outputs["publisherCredentialSecretUri"].split("/secrets/")[0]
    vaults = [
        item
        for item in resources.resources.list_by_resource_group(publisher_group)
        if item.type == "Microsoft.KeyVault/vaults"
    ]
    assert len(vaults) == 1
    assert vault_name == outputs["keyVaultUri"].rstrip("/")
    rule_id = f"{group_id}/providers/Microsoft.Insights/dataCollectionRules/cp-dcr"
    assert roles_at(authorization, str(vaults[0].id)) == {(outputs["identityPrincipalId"], KEY_VAULT_SECRETS_USER)}
    registry_id = f"{group_id}/providers/Microsoft.ContainerRegistry/registries/controlplaneimages"
    assert roles_at(authorization, registry_id) == {(outputs["identityPrincipalId"], ACR_PULL)}
    assert roles_at(authorization, rule_id) == {
        (values["publisherServicePrincipalObjectId"]["value"], MONITORING_METRICS_PUBLISHER)
    }

    # Every workload reads the credential from Key Vault by reference, through the identity; the API mounts it.
    reference = outputs["publisherCredentialSecretUri"]
    assert reference == f"{outputs['keyVaultUri'].rstrip('/')}/secrets/publisher-credential"
    workloads = {name: read(resources, app_id(group_id, name)) for name in ("cp-api", "cp-worker", "cp-scheduler")}
    workloads["cp-migrate"] = read(resources, f"{group_id}/providers/Microsoft.App/jobs/cp-migrate")
    for name, workload in workloads.items():
        properties = workload["properties"]
        secrets = {item["name"]: item for item in properties["configuration"]["secrets"]}
        assert secrets["publisher-credential"] == {
            "name": "publisher-credential",
            "keyVaultUrl": reference,
            "identity": outputs["identityResourceId"],
        }, name
        assert list(workload["identity"]["userAssignedIdentities"]) == [outputs["identityResourceId"]]
        container = properties["template"]["containers"][0]
        assert container["image"] == values["image"]["value"]
        assert properties["configuration"]["registries"] == [
            {"server": "controlplaneimages.azurecr.io", "identity": outputs["identityResourceId"]}
        ]
        environment_variables = {item["name"]: item for item in container["env"]}
        assert (
            environment_variables["CP_PUBLISHER_CLIENT_CERTIFICATE_PATH"]["value"]
            == "/mnt/secrets/publisher-credential.pem"
        )
        assert "CP_PUBLISHER_CLIENT_SECRET" not in environment_variables
        assert environment_variables["CP_DATABASE_URL"] == {"name": "CP_DATABASE_URL", "secretRef": "database-url"}
        assert environment_variables["CP_CONTROL_PLANE_CLIENT_SECRET"]["secretRef"] == "control-plane-secret"
        assert secrets["control-plane-secret"]["keyVaultUrl"].endswith("/secrets/control-plane-secret")
        assert environment_variables["CP_MONITOR_DCR_IMMUTABLE_ID"]["value"] == outputs["dataCollectionRuleImmutableId"]
        assert environment_variables["CP_MONITOR_INGESTION_ENDPOINT"]["value"] == outputs["logsIngestionEndpoint"]
        assert environment_variables["CP_PUBLIC_BASE_URL"]["value"] == outputs["apiUrl"]
        assert properties["template"]["volumes"][0]["secrets"] == [
            {"secretRef": "publisher-credential", "path": "publisher-credential.pem"}
        ]

    # The roles: the API behind ingress with readiness on the schema, workers, exactly one scheduler, the job.
    api = workloads["cp-api"]["properties"]
    assert api["configuration"]["ingress"]["fqdn"] == api_host
    assert api["configuration"]["activeRevisionsMode"] == "Single"
    assert {probe["type"]: probe["httpGet"]["path"] for probe in api["template"]["containers"][0]["probes"]}[
        "Readiness"
    ] == "/readyz"
    assert workloads["cp-worker"]["properties"]["template"]["containers"][0]["args"][0] == "worker"
    scheduler = workloads["cp-scheduler"]["properties"]["template"]
    assert scheduler["containers"][0]["args"] == ["beat"]
    assert (scheduler["scale"]["minReplicas"], scheduler["scale"]["maxReplicas"]) == (1, 1)
    job = workloads["cp-migrate"]["properties"]
    assert job["configuration"]["triggerType"] == "Manual"
    assert job["template"]["containers"][0]["args"] == ["migrate"]

    # The stores and the log export path the settings point at.
    assert outputs["postgresFqdn"].endswith(".postgres.database.azure.com")
    assert outputs["redisHostName"].endswith(".redis.cache.windows.net")
    assert outputs["logsIngestionEndpoint"].startswith("https://cp-dce-")
    assert outputs["dataCollectionRuleImmutableId"].startswith("dcr-")

    # No secure parameter comes back in any resource body or in the deployment.
    everything = json.dumps(
        [read(resources, str(item.id)) for item in resources.resources.list_by_resource_group(publisher_group)]
    ) + json.dumps(deployments.deployments.get(publisher_group, "controlplane").as_dict())
    for name in ("publisherCredential", "sessionSecret", "controlPlaneClientSecret", "postgresAdministratorPassword"):
        assert values[name]["value"] not in everything, name


def test_a_client_secret_instead_of_a_certificate_is_passed_by_secret_reference_and_nothing_is_mounted(
    deployments: DeploymentsMgmtClient, resources: ResourceManagementClient, publisher_group: str
) -> None:
    state, outputs, error = deploy(deployments, publisher_group, template(), parameters("secret"))
    assert state == "Succeeded", error
    group_id = resources.resource_groups.get(publisher_group).id
    api = read(resources, app_id(str(group_id), "cp-api"))["properties"]
    container = api["template"]["containers"][0]
    environment_variables = {item["name"]: item for item in container["env"]}
    assert environment_variables["CP_PUBLISHER_CLIENT_SECRET"] == {
        "name": "CP_PUBLISHER_CLIENT_SECRET",
        "secretRef": "publisher-credential",
    }
    assert "CP_PUBLISHER_CLIENT_CERTIFICATE_PATH" not in environment_variables
    assert not api["template"].get("volumes")
    first_revision = api["latestRevisionName"]

    # A new image is a new revision of the same app (the upgrade path); the outputs stay the same.
    upgraded = parameters("secret")
    upgraded["image"] = {"value": "controlplaneimages.azurecr.io/controlplane:1.5.0"}
    state, upgraded_outputs, error = deploy(deployments, publisher_group, template(), upgraded)
    assert state == "Succeeded", error
    assert upgraded_outputs["apiUrl"] == outputs["apiUrl"]
    assert upgraded_outputs["identityResourceId"] == outputs["identityResourceId"]
    assert read(resources, app_id(str(group_id), "cp-api"))["properties"]["latestRevisionName"] != first_revision


def test_a_container_that_names_an_undeclared_secret_fails_the_deployment_as_container_apps_refuses_it(
    deployments: DeploymentsMgmtClient, publisher_group: str
) -> None:
    broken = copy.deepcopy(template())
    scheduler = next(item for item in broken["resources"] if item["name"] == "[variables('schedulerName')]")
    scheduler["properties"]["configuration"]["secrets"] = scheduler["properties"]["configuration"]["secrets"].replace(
        ", createObject('name', 'session-secret', 'keyVaultUrl', reference(variables('sessionSecretId')).secretUri, "
        "'identity', variables('identityId'))",
        "",
    )
    with pytest.raises(HttpResponseError, match="ContainerAppSecretRefNotFound") as failure:
        deploy(deployments, publisher_group, broken, parameters("certificate"))
    assert "cp-scheduler" in str(failure.value)
    assert deployments.deployments.get(publisher_group, "controlplane").properties.provisioning_state == "Failed"
