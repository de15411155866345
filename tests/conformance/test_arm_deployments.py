"""Resource-group deployments through azure-mgmt-resource-deployments against the ARM emulator."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.resources import ResourceManagementClient

pytestmark = pytest.mark.timeout(30)

SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
WORKSPACE_TYPE = "Microsoft.OperationalInsights/workspaces"
OUTER_ID = "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', variables('outerName'))]"

NAMING_TEMPLATE: dict[str, Any] = {
    "$schema": SCHEMA,
    "contentVersion": "1.0.0.0",
    "parameters": {
        "prefix": {"type": "string", "minLength": 2, "maxLength": 10},
        "workspaces": {"type": "int", "defaultValue": 2, "minValue": 0, "maxValue": 5},
        "tier": {"type": "string", "defaultValue": "standard", "allowedValues": ["standard", "premium"]},
        "withWorkspaces": {"type": "bool", "defaultValue": True},
    },
    "variables": {
        "identityName": "[concat(parameters('prefix'), '-id')]",
        "identityId": "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', variables('identityName'))]",
        "copy": [
            {
                "name": "workspaceNames",
                "count": "[parameters('workspaces')]",
                "input": "[format('{0}-law-{1}', parameters('prefix'), copyIndex('workspaceNames'))]",
            }
        ],
    },
    "resources": [
        {
            "type": IDENTITY_TYPE,
            "apiVersion": "2023-01-31",
            "name": "[variables('identityName')]",
            "location": "[resourceGroup().location]",
            "tags": {"tier": "[parameters('tier')]"},
        },
        {
            "type": WORKSPACE_TYPE,
            "apiVersion": "2023-09-01",
            "name": "[variables('workspaceNames')[copyIndex()]]",
            "location": "[resourceGroup().location]",
            "condition": "[parameters('withWorkspaces')]",
            "copy": {"name": "workspaceLoop", "count": "[parameters('workspaces')]"},
            "dependsOn": [
                "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', variables('identityName'))]"
            ],
            "properties": {"retentionInDays": "[add(30, mul(copyIndex(), 30))]"},
        },
    ],
    "outputs": {
        "identityName": {"type": "string", "value": "[variables('identityName')]"},
        "principalId": {
            "type": "string",
            "value": "[reference(variables('identityId'), '2023-01-31').principalId]",
        },
        "clientIdFull": {
            "type": "string",
            "value": "[reference(variables('identityName'), '2023-01-31', 'Full').properties.clientId]",
        },
        "workspaceNames": {
            "type": "array",
            "value": "[if(parameters('withWorkspaces'), variables('workspaceNames'), createArray())]",
        },
        "suffix": {"type": "string", "value": "[uniqueString(resourceGroup().id, parameters('prefix'))]"},
        "upperTier": {"type": "string", "value": "[toUpper(parameters('tier'))]"},
        "tenant": {"type": "string", "value": "[subscription().tenantId]"},
    },
}


def deployment_body(template: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    """A deployment request with inline template and parameter values."""
    return {
        "properties": {
            "mode": "Incremental",
            "template": template,
            "parameters": {name: {"value": value} for name, value in parameters.items()},
        }
    }


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


def test_deployment_runs_to_succeeded_with_outputs_computed_from_parameters(
    deployments: DeploymentsMgmtClient,
    resources: ResourceManagementClient,
    resource_group: str,
    arm_subscriptions: dict[str, str],
) -> None:
    first = deployments.deployments.begin_create_or_update(
        resource_group, "naming-a", deployment_body(NAMING_TEMPLATE, prefix="ab", workspaces=3)
    ).result()
    second = deployments.deployments.begin_create_or_update(
        resource_group, "naming-b", deployment_body(NAMING_TEMPLATE, prefix="cd", workspaces=1, tier="premium")
    ).result()

    assert first.properties.provisioning_state == "Succeeded"
    outputs_a, outputs_b = first.properties.outputs, second.properties.outputs
    assert outputs_a["identityName"]["value"] == "ab-id"
    assert outputs_b["identityName"]["value"] == "cd-id"
    assert outputs_a["workspaceNames"]["value"] == ["ab-law-0", "ab-law-1", "ab-law-2"]
    assert outputs_b["workspaceNames"]["value"] == ["cd-law-0"]
    assert outputs_a["suffix"]["value"] != outputs_b["suffix"]["value"]
    assert outputs_b["upperTier"]["value"] == "PREMIUM"
    # reference() outputs are the identity's generated ids, readable afterwards through ARM.
    identity = resources.resources.get_by_id(
        f"/subscriptions/{arm_subscriptions['contoso']}/resourceGroups/{resource_group}/providers/{IDENTITY_TYPE}/ab-id",
        api_version="2023-01-31",
    )
    assert outputs_a["principalId"]["value"] == identity.properties["principalId"]
    assert outputs_a["clientIdFull"]["value"] == identity.properties["clientId"]
    assert identity.tags == {"tier": "standard"}
    names = sorted(item.name for item in resources.resources.list_by_resource_group(resource_group))
    assert names == ["ab-id", "ab-law-0", "ab-law-1", "ab-law-2", "cd-id", "cd-law-0"]
    workspace = resources.resources.get_by_id(
        f"/subscriptions/{arm_subscriptions['contoso']}/resourceGroups/{resource_group}/providers/{WORKSPACE_TYPE}/ab-law-2",
        api_version="2023-09-01",
    )
    assert workspace.properties["retentionInDays"] == 90
    operations = list(deployments.deployment_operations.list(resource_group, "naming-a"))
    assert [operation.properties.target_resource.resource_name for operation in operations] == [
        "ab-id",
        "ab-law-0",
        "ab-law-1",
        "ab-law-2",
    ]
    assert {operation.properties.provisioning_state for operation in operations} == {"Succeeded"}
    listed = {
        item.name: item.properties.provisioning_state
        for item in deployments.deployments.list_by_resource_group(resource_group)
    }
    assert listed == {"naming-a": "Succeeded", "naming-b": "Succeeded"}


def test_condition_false_skips_resources(
    deployments: DeploymentsMgmtClient, resources: ResourceManagementClient, resource_group: str
) -> None:
    result = deployments.deployments.begin_create_or_update(
        resource_group,
        "no-workspaces",
        deployment_body(NAMING_TEMPLATE, prefix="ef", workspaces=2, withWorkspaces=False),
    ).result()
    assert result.properties.outputs["workspaceNames"]["value"] == []
    assert [item.name for item in resources.resources.list_by_resource_group(resource_group)] == ["ef-id"]


def test_validate_reports_the_resources_without_deploying(
    deployments: DeploymentsMgmtClient, resources: ResourceManagementClient, resource_group: str
) -> None:
    result = deployments.deployments.begin_validate(
        resource_group, "check", deployment_body(NAMING_TEMPLATE, prefix="gh", workspaces=1)
    ).result()
    assert result.properties.provisioning_state == "Succeeded"
    assert [item.id.rsplit("/", 1)[-1] for item in result.properties.validated_resources] == ["gh-id", "gh-law-0"]
    assert list(resources.resources.list_by_resource_group(resource_group)) == []


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ({"prefix": "x"}, "'prefix'"),
        ({"prefix": "ok", "tier": "gold"}, "'gold' is not part of the allowed value"),
        ({"prefix": "ok", "workspaces": 9}, "greater than the maximum value"),
        ({"prefix": "ok", "unknown": 1}, "'unknown'"),
        ({}, "The value for the template parameter 'prefix' is not provided"),
    ],
)
def test_invalid_parameters_are_invalid_template(
    deployments: DeploymentsMgmtClient, resource_group: str, parameters: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(HttpResponseError) as raised:
        deployments.deployments.begin_create_or_update(
            resource_group, "bad-params", deployment_body(NAMING_TEMPLATE, **parameters)
        )
    assert raised.value.status_code == 400
    assert raised.value.error.code == "InvalidTemplate"
    assert fragment in raised.value.error.message


def test_unknown_function_is_invalid_template(deployments: DeploymentsMgmtClient, resource_group: str) -> None:
    template = copy.deepcopy(NAMING_TEMPLATE)
    template["outputs"]["broken"] = {"type": "string", "value": "[toLowerCase(parameters('prefix'))]"}
    with pytest.raises(HttpResponseError) as raised:
        deployments.deployments.begin_validate(
            resource_group, "bad-function", deployment_body(template, prefix="ij")
        ).result()
    assert raised.value.error.code == "InvalidTemplate"
    assert "The template function 'toLowerCase' is not valid" in raised.value.error.message


def test_dependency_cycle_and_unknown_dependency_are_refused(
    deployments: DeploymentsMgmtClient, resource_group: str
) -> None:
    def identity(name: str, depends_on: list[str]) -> dict[str, Any]:
        return {
            "type": IDENTITY_TYPE,
            "apiVersion": "2023-01-31",
            "name": name,
            "location": "westeurope",
            "dependsOn": depends_on,
        }

    cycle = {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "resources": [identity("one", ["two"]), identity("two", ["one"])],
    }
    with pytest.raises(HttpResponseError) as raised:
        deployments.deployments.begin_create_or_update(resource_group, "cycle", deployment_body(cycle))
    assert raised.value.error.code == "InvalidTemplate"
    assert "Circular dependency" in raised.value.error.message

    dangling = {"$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": [identity("one", ["nowhere"])]}
    with pytest.raises(HttpResponseError) as raised:
        deployments.deployments.begin_create_or_update(resource_group, "dangling", deployment_body(dangling))
    assert raised.value.error.code == "InvalidTemplate"
    assert "'nowhere' is not defined" in raised.value.error.message


def test_failed_deployment_raises_with_arm_error_and_operation_details(
    deployments: DeploymentsMgmtClient, resource_group: str
) -> None:
    # A PLS on a Basic load balancer: template is valid, the provider refuses the resource while deploying.
    template = {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "variables": {"lbId": "[resourceId('Microsoft.Network/loadBalancers', 'basic-lb')]"},
        "resources": [
            {
                "type": "Microsoft.Network/virtualNetworks",
                "apiVersion": "2025-07-01",
                "name": "net",
                "location": "westeurope",
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                    "subnets": [
                        {
                            "name": "a",
                            "properties": {
                                "addressPrefix": "10.1.0.0/24",
                                "privateLinkServiceNetworkPolicies": "Disabled",
                            },
                        }
                    ],
                },
            },
            {
                "type": "Microsoft.Network/loadBalancers",
                "apiVersion": "2025-07-01",
                "name": "basic-lb",
                "location": "westeurope",
                "sku": {"name": "Basic"},
                "dependsOn": ["net"],
                "properties": {
                    "frontendIPConfigurations": [
                        {
                            "name": "fe",
                            "properties": {
                                "subnet": {
                                    "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'net', 'a')]"
                                }
                            },
                        }
                    ]
                },
            },
            {
                "type": "Microsoft.Network/privateLinkServices",
                "apiVersion": "2025-07-01",
                "name": "pls",
                "location": "westeurope",
                "dependsOn": ["basic-lb"],
                "properties": {
                    "loadBalancerFrontendIpConfigurations": [
                        {"id": "[format('{0}/frontendIPConfigurations/fe', variables('lbId'))]"}
                    ],
                    "ipConfigurations": [
                        {
                            "name": "nat",
                            "properties": {
                                "subnet": {
                                    "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'net', 'a')]"
                                }
                            },
                        }
                    ],
                },
            },
        ],
    }
    poller = deployments.deployments.begin_create_or_update(resource_group, "basic-pls", deployment_body(template))
    with pytest.raises(HttpResponseError) as raised:
        poller.result()
    assert raised.value.error.code == "DeploymentFailed"
    assert raised.value.error.details[0].code == "PrivateLinkServiceNotSupportedForBasicLoadBalancer"
    assert raised.value.error.details[0].target.endswith("/privateLinkServices/pls")
    deployment = deployments.deployments.get(resource_group, "basic-pls")
    assert deployment.properties.provisioning_state == "Failed"
    assert deployment.properties.error.code == "DeploymentFailed"
    states = {
        operation.properties.target_resource.resource_name: (
            operation.properties.provisioning_state,
            operation.properties.status_message,
        )
        for operation in deployments.deployment_operations.list(resource_group, "basic-pls")
    }
    assert states["net"][0] == "Succeeded"
    assert states["basic-lb"][0] == "Succeeded"
    assert states["pls"][0] == "Failed"
    assert states["pls"][1]["error"]["code"] == "PrivateLinkServiceNotSupportedForBasicLoadBalancer"


def test_cancel_stops_a_running_deployment(
    deployments: DeploymentsMgmtClient,
    resources: ResourceManagementClient,
    resource_group: str,
    arm_control: httpx.Client,
) -> None:
    arm_control.post(
        "/deployment-durations", json={"seconds": 30, "deployment_name": "slow", "count": 1}
    ).raise_for_status()
    poller = deployments.deployments.begin_create_or_update(
        resource_group, "slow", deployment_body(NAMING_TEMPLATE, prefix="kl")
    )
    assert deployments.deployments.get(resource_group, "slow").properties.provisioning_state == "Running"
    deployments.deployments.cancel(resource_group, "slow")
    with pytest.raises(HttpResponseError):
        poller.result()
    assert deployments.deployments.get(resource_group, "slow").properties.provisioning_state == "Canceled"
    assert list(resources.resources.list_by_resource_group(resource_group)) == []
    with pytest.raises(HttpResponseError) as raised:
        deployments.deployments.cancel(resource_group, "slow")
    assert raised.value.error.code == "DeploymentCannotBeCancelled"


def test_same_deployment_resubmitted_while_running_is_the_same_run(
    deployments: DeploymentsMgmtClient, resource_group: str, arm_control: httpx.Client
) -> None:
    arm_control.post(
        "/deployment-durations", json={"seconds": 30, "deployment_name": "again", "count": 1}
    ).raise_for_status()
    body = deployment_body(NAMING_TEMPLATE, prefix="mn")
    first = deployments.deployments.begin_create_or_update(resource_group, "again", body)
    second = deployments.deployments.begin_create_or_update(resource_group, "again", body)
    assert first.polling_method()._operation.get_polling_url() == second.polling_method()._operation.get_polling_url()  # type: ignore[attr-defined]
    with pytest.raises(HttpResponseError) as raised:
        deployments.deployments.begin_create_or_update(
            resource_group, "again", deployment_body(NAMING_TEMPLATE, prefix="op")
        )
    assert raised.value.error.code == "DeploymentActive"
    deployments.deployments.cancel(resource_group, "again")


def test_inline_nested_deployments_with_inner_and_outer_scope(
    deployments: DeploymentsMgmtClient, resource_group: str
) -> None:
    template = {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {"base": {"type": "string"}},
        "variables": {"outerName": "[concat(parameters('base'), '-outer')]", "outerId": OUTER_ID},
        "resources": [
            {
                "type": "Microsoft.Resources/deployments",
                "apiVersion": "2025-04-01",
                "name": "inner-scope",
                "properties": {
                    "mode": "Incremental",
                    "expressionEvaluationOptions": {"scope": "inner"},
                    "parameters": {"name": {"value": "[concat(parameters('base'), '-inner')]"}},
                    "template": {
                        "$schema": SCHEMA,
                        "contentVersion": "1.0.0.0",
                        "parameters": {"name": {"type": "string"}},
                        "resources": [
                            {
                                "type": IDENTITY_TYPE,
                                "apiVersion": "2023-01-31",
                                "name": "[parameters('name')]",
                                "location": "westeurope",
                            }
                        ],
                        "outputs": {"created": {"type": "string", "value": "[parameters('name')]"}},
                    },
                },
            },
            {
                "type": "Microsoft.Resources/deployments",
                "apiVersion": "2025-04-01",
                "name": "outer-scope",
                "dependsOn": ["inner-scope"],
                "properties": {
                    "mode": "Incremental",
                    "template": {
                        "$schema": SCHEMA,
                        "contentVersion": "1.0.0.0",
                        "resources": [
                            {
                                "type": IDENTITY_TYPE,
                                "apiVersion": "2023-01-31",
                                "name": "[variables('outerName')]",
                                "location": "westeurope",
                            }
                        ],
                    },
                },
            },
        ],
        "outputs": {
            "inner": {"type": "string", "value": "[reference('inner-scope').outputs.created.value]"},
            "outerPrincipal": {
                "type": "string",
                "value": "[reference(variables('outerId'), '2023-01-31').principalId]",
            },
        },
    }
    result = deployments.deployments.begin_create_or_update(
        resource_group, "nested", deployment_body(template, base="qr")
    ).result()
    assert result.properties.outputs["inner"]["value"] == "qr-inner"
    assert len(result.properties.outputs["outerPrincipal"]["value"]) == 36
    assert (
        deployments.deployments.get(resource_group, "inner-scope").properties.outputs["created"]["value"] == "qr-inner"
    )


def test_complete_mode_removes_resources_not_in_the_template(
    deployments: DeploymentsMgmtClient, resources: ResourceManagementClient, resource_group: str
) -> None:
    deployments.deployments.begin_create_or_update(
        resource_group, "full", deployment_body(NAMING_TEMPLATE, prefix="st", workspaces=2)
    ).result()
    body = deployment_body(NAMING_TEMPLATE, prefix="st", workspaces=1)
    body["properties"]["mode"] = "Complete"
    deployments.deployments.begin_create_or_update(resource_group, "full", body).result()
    assert sorted(item.name for item in resources.resources.list_by_resource_group(resource_group)) == [
        "st-id",
        "st-law-0",
    ]


def test_deployment_delete_keeps_resources(
    deployments: DeploymentsMgmtClient, resources: ResourceManagementClient, resource_group: str
) -> None:
    deployments.deployments.begin_create_or_update(
        resource_group, "gone", deployment_body(NAMING_TEMPLATE, prefix="uv", workspaces=0)
    ).result()
    deployments.deployments.begin_delete(resource_group, "gone").result()
    assert not deployments.deployments.check_existence(resource_group, "gone")
    assert [item.name for item in resources.resources.list_by_resource_group(resource_group)] == ["uv-id"]
