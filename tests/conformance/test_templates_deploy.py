"""The façade cluster templates deployed against the ARM emulator through azure-mgmt-resource-deployments.

The step templates go in the controller's order, each fed with the previous steps' outputs as read back
from ARM; then the composed managed-application mainTemplate goes in as one deployment of nested ones.
"""

from __future__ import annotations

import ipaddress
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.deployments.models import (
    Deployment,
    DeploymentExtended,
    DeploymentMode,
    DeploymentParameter,
    DeploymentProperties,
)
from azure.mgmt.resource.resources import ResourceManagementClient

from core.arm_templates.composer import MAIN_TEMPLATE_PATH
from core.arm_templates.steps import (
    FACADE_CLUSTER_STEPS,
    bound_parameters,
    deployment_name,
    load_step_template,
    output_values,
    step_named,
)

pytestmark = pytest.mark.timeout(60)

REPOSITORY = Path(__file__).resolve().parents[2]
SSH_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJ1bm5pbmctYWdhaW5zdC10aGUtZW11bGF0b3I operator@example"
# Parameters the controller supplies itself; everything else comes from defaults or earlier steps.
SUPPLIED = {
    "identity-keyvault": {"keyType": "RSA", "keySize": 4096, "keyRotationDaysBeforeExpiry": 45},
    "cluster": {"adminSshPublicKey": SSH_PUBLIC_KEY, "vmSize": "Standard_L16s_v3", "instanceCount": 5},
    "private-link": {
        "natIpConfigurationCount": 3,
        "enableProxyProtocol": True,
        "autoApprovalSubscriptionIds": ["11111111-2222-3333-4444-555555555555"],
        "visibilitySubscriptionIds": ["*"],
    },
    "dns": {},
    "diagnostics": {},
}
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def deployment_body(template: dict[str, Any], parameters: dict[str, Any]) -> Deployment:
    """An incremental deployment request with an inline template."""
    return Deployment(
        properties=DeploymentProperties(
            mode=DeploymentMode.INCREMENTAL,
            template=template,
            parameters={name: DeploymentParameter(value=value) for name, value in parameters.items()},
        )
    )


def succeeded_outputs(result: DeploymentExtended) -> dict[str, Any]:
    """The plain output values of a deployment that must have succeeded."""
    assert result.properties is not None
    assert result.properties.provisioning_state == "Succeeded"
    assert result.properties.outputs is not None
    return output_values(result.properties.outputs)


@pytest.fixture
def deployments(arm_mgmt_client: Callable[..., Any]) -> DeploymentsMgmtClient:
    """DeploymentsMgmtClient for Contoso's subscription."""
    client: DeploymentsMgmtClient = arm_mgmt_client(DeploymentsMgmtClient)
    return client


@pytest.fixture
def resources(arm_mgmt_client: Callable[..., Any]) -> ResourceManagementClient:
    """ResourceManagementClient for Contoso's subscription."""
    client: ResourceManagementClient = arm_mgmt_client(ResourceManagementClient)
    return client


@pytest.fixture
def facade_group(resource_group: str, resources: ResourceManagementClient) -> Iterator[str]:
    """The test's resource group; Private Link Services are deleted before the group itself.

    Azure deletes a group's dependents first; the ARM emulator's group deletion does not yet order
    deletions (it refuses to delete a load balancer still used by a Private Link Service), so the
    dependent goes first here. Drop this once the emulator orders group deletion itself.
    """
    yield resource_group
    for item in resources.resources.list_by_resource_group(
        resource_group, filter="resourceType eq 'Microsoft.Network/privateLinkServices'"
    ):
        assert item.id is not None
        resources.resources.begin_delete_by_id(item.id, api_version="2025-07-01").result()


def cluster_name() -> str:
    """A fresh cluster name, so repeated runs never share Key Vault names."""
    return f"fc{uuid.uuid4().hex[:8]}"


def deploy_step(
    deployments: DeploymentsMgmtClient,
    resource_group: str,
    cluster: str,
    step_name: str,
    outputs_by_step: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Deploy one step as the controller does and return its plain output values."""
    step = step_named(step_name)
    parameters = {"clusterName": cluster, **SUPPLIED[step_name], **bound_parameters(step, outputs_by_step)}
    result = deployments.deployments.begin_create_or_update(
        resource_group,
        deployment_name(cluster, step),
        deployment_body(load_step_template(REPOSITORY, step), parameters),
    ).result()
    outputs = succeeded_outputs(result)
    assert set(outputs) == set(load_step_template(REPOSITORY, step)["outputs"])
    return outputs


def test_steps_deploy_in_order_and_return_computed_outputs(
    deployments: DeploymentsMgmtClient, resources: ResourceManagementClient, facade_group: str
) -> None:
    resource_group = facade_group
    cluster = cluster_name()
    outputs: dict[str, dict[str, Any]] = {}
    for step in FACADE_CLUSTER_STEPS:
        outputs[step.name] = deploy_step(deployments, resource_group, cluster, step.name, outputs)

    identity = outputs["identity-keyvault"]
    assert GUID.match(identity["identityPrincipalId"])
    assert GUID.match(identity["identityClientId"])
    read_back = resources.resources.get_by_id(identity["identityResourceId"], api_version="2024-11-30")
    assert read_back.properties is not None
    assert read_back.properties["principalId"] == identity["identityPrincipalId"]
    assert identity["keyVaultUri"].startswith("https://")
    assert identity["keyIdWithVersion"].startswith(identity["keyUri"] + "/")
    assert identity["keyIdWithVersion"] != identity["keyUri"]

    network = outputs["cluster"]
    frontend = ipaddress.ip_address(network["frontendPrivateIpAddress"])
    assert frontend in ipaddress.ip_network("10.40.0.0/24")
    assert network["privateLinkSubnetId"].endswith("/subnets/snet-pls-nat")
    assert network["loadBalancerFrontendIpConfigurationId"].startswith(network["loadBalancerResourceId"] + "/")
    scale_set = resources.resources.get_by_id(network["scaleSetResourceId"], api_version="2025-04-01")
    assert scale_set.sku is not None
    assert scale_set.sku.capacity == 5
    assert scale_set.sku.name == "Standard_L16s_v3"

    private_link = outputs["private-link"]
    alias = private_link["privateLinkServiceAlias"]
    assert alias.startswith(f"pls-{cluster}.")
    assert alias.endswith(".westeurope.azure.privatelinkservice")
    service = resources.resources.get_by_id(private_link["privateLinkServiceResourceId"], api_version="2025-07-01")
    assert service.properties is not None
    configurations = service.properties["ipConfigurations"]
    assert [item["properties"]["primary"] for item in configurations] == [True, False, False]
    assert service.properties["enableProxyProtocol"] is True

    assert outputs["dns"]["endpointFqdn"] == f"{cluster}.blob.facade.internal"
    assert outputs["diagnostics"]["logAnalyticsWorkspaceResourceId"].endswith(f"/workspaces/log-{cluster}")


def test_redeploying_a_step_is_idempotent(deployments: DeploymentsMgmtClient, resource_group: str) -> None:
    cluster = cluster_name()
    first = deploy_step(deployments, resource_group, cluster, "identity-keyvault", {})
    second = deploy_step(deployments, resource_group, cluster, "identity-keyvault", {})
    # The same deployment name and a PUT of an existing key must not mint a new key version or identity.
    assert second == first


def test_composed_main_template_deploys_all_steps(deployments: DeploymentsMgmtClient, facade_group: str) -> None:
    resource_group = facade_group
    cluster = cluster_name()
    template = json.loads((REPOSITORY / MAIN_TEMPLATE_PATH).read_text(encoding="utf-8"))
    result = deployments.deployments.begin_create_or_update(
        resource_group,
        f"{cluster}-managed-app",
        deployment_body(template, {"clusterName": cluster, "adminSshPublicKey": SSH_PUBLIC_KEY}),
    ).result()
    outputs = succeeded_outputs(result)
    assert set(outputs) == set(template["outputs"])
    assert outputs["endpointFqdn"] == f"{cluster}.blob.facade.internal"
    assert outputs["privateLinkServiceAlias"].startswith(f"pls-{cluster}.")
    assert outputs["keyIdWithVersion"].startswith(outputs["keyUri"] + "/")
    nested = {item.name for item in deployments.deployments.list_by_resource_group(resource_group)}
    assert {deployment_name(cluster, step) for step in FACADE_CLUSTER_STEPS} <= nested
