"""Fault injection honoured by the SDKs' retry, rate-limit headers, regional quotas and scale-set operations."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.resources import ResourceManagementClient

pytestmark = pytest.mark.timeout(30)

SCALE_SET_TEMPLATE: dict[str, Any] = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    "contentVersion": "1.0.0.0",
    "parameters": {"capacity": {"type": "int"}, "size": {"type": "string", "defaultValue": "Standard_D4s_v5"}},
    "resources": [
        {
            "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
            "apiVersion": "2023-01-31",
            "name": "vmss-id",
            "location": "[resourceGroup().location]",
        },
        {
            "type": "Microsoft.Compute/virtualMachineScaleSets",
            "apiVersion": "2024-07-01",
            "name": "facade-vmss",
            "location": "[resourceGroup().location]",
            "dependsOn": ["vmss-id"],
            "sku": {"name": "[parameters('size')]", "tier": "Standard", "capacity": "[parameters('capacity')]"},
            "identity": {
                "type": "UserAssigned",
                "userAssignedIdentities": {
                    "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'vmss-id')]": {}
                },
            },
            "properties": {
                "virtualMachineProfile": {
                    "osProfile": {
                        "computerNamePrefix": "facade",
                        "adminUsername": "azureuser",
                        "adminPassword": "Not-returned-1",
                    }
                }
            },
        },
    ],
}


def test_sdk_retries_injected_429_and_succeeds(
    arm_mgmt_client: Callable[..., Any], arm_control: httpx.Client, resource_group: str
) -> None:
    arm_control.post(
        "/faults",
        json={
            "kind": "status",
            "status": 429,
            "retry_after_seconds": 0,
            "method": "GET",
            "path_pattern": f"/resourcegroups/{resource_group}$",
            "count": 2,
        },
    ).raise_for_status()
    client: ResourceManagementClient = arm_mgmt_client(ResourceManagementClient, retry_backoff_factor=0.01)
    assert client.resource_groups.get(resource_group).name == resource_group
    rules = arm_control.get("/faults").json()
    assert [rule["hits"] for rule in rules] == [2]


def test_rate_limit_headers_count_down_per_subscription(
    arm_credential_for: Callable[[str], Any],
    arm_state: dict[str, Any],
    arm_subscriptions: dict[str, str],
    ca_bundle: Path,
    resource_group: str,
) -> None:
    token = arm_credential_for("contoso").get_token(*arm_state["credential_scopes"]).token
    with httpx.Client(
        base_url=arm_state["base_url"], verify=str(ca_bundle), headers={"Authorization": f"Bearer {token}"}
    ) as http:
        url = f"/subscriptions/{arm_subscriptions['contoso']}/resourcegroups/{resource_group}"
        # Writes refill at 20 a second: of a few back-to-back writes, some land within 50 ms of the one before,
        # however slow the machine, so the count goes down (reads refill too fast to show it reliably).
        responses = [
            http.put(url, params={"api-version": "2025-04-01"}, json={"location": "westeurope"}) for _ in range(6)
        ]
    remaining = [int(response.headers["x-ms-ratelimit-remaining-subscription-writes"]) for response in responses]
    assert min(remaining[1:]) < remaining[0]


def test_quota_exceeded_fails_the_deployment_then_scale_set_operations(
    arm_mgmt_client: Callable[..., Any],
    arm_control: httpx.Client,
    arm_subscriptions: dict[str, str],
    resource_group: str,
) -> None:
    subscription_id = arm_subscriptions["contoso"]
    arm_control.put(
        f"/subscriptions/{subscription_id}/quotas", json={"region": "westeurope", "name": "cores", "limit": 16}
    ).raise_for_status()
    try:
        deployments: DeploymentsMgmtClient = arm_mgmt_client(DeploymentsMgmtClient)

        def deploy(name: str, capacity: int) -> Any:
            body = {
                "properties": {
                    "mode": "Incremental",
                    "template": SCALE_SET_TEMPLATE,
                    "parameters": {"capacity": {"value": capacity}},
                }
            }
            return deployments.deployments.begin_create_or_update(resource_group, name, body).result()

        with pytest.raises(HttpResponseError) as raised:
            deploy("too-big", 5)  # 5 x 4 vCPUs > 16
        assert raised.value.error.code == "DeploymentFailed"
        assert raised.value.error.details[0].code == "QuotaExceeded"
        assert "Current Limit: 16" in raised.value.error.details[0].message
        deploy("fits", 4)

        compute: ComputeManagementClient = arm_mgmt_client(ComputeManagementClient)
        scale_set = compute.virtual_machine_scale_sets.get(resource_group, "facade-vmss")
        assert scale_set.sku.capacity == 4
        assert scale_set.virtual_machine_profile.os_profile.admin_password is None
        assigned = next(iter(scale_set.identity.user_assigned_identities.values()))
        assert assigned.principal_id
        assert assigned.client_id

        compute.virtual_machine_scale_sets.begin_deallocate(resource_group, "facade-vmss").result()
        view = compute.virtual_machine_scale_sets.get_instance_view(resource_group, "facade-vmss")
        assert {status.code: status.count for status in view.virtual_machine.statuses_summary}[
            "PowerState/deallocated"
        ] == 4
        compute.virtual_machine_scale_sets.begin_start(resource_group, "facade-vmss").result()
        view = compute.virtual_machine_scale_sets.get_instance_view(resource_group, "facade-vmss")
        assert "PowerState/running" in {status.code for status in view.virtual_machine.statuses_summary}

        scaled = compute.virtual_machine_scale_sets.begin_update(
            resource_group, "facade-vmss", {"sku": {"capacity": 2}}
        ).result()
        assert scaled.sku.capacity == 2
        with pytest.raises(HttpResponseError) as refused:
            compute.virtual_machine_scale_sets.begin_update(
                resource_group, "facade-vmss", {"sku": {"capacity": 5}}
            ).result()
        assert refused.value.status_code == 409
        assert refused.value.error.code == "QuotaExceeded"
    finally:
        arm_control.delete(f"/subscriptions/{subscription_id}/quotas").raise_for_status()


def test_control_api_lists_every_resource_for_orphan_checks(
    arm_mgmt_client: Callable[..., Any],
    arm_control: httpx.Client,
    arm_subscriptions: dict[str, str],
    resource_group: str,
) -> None:
    from azure.mgmt.msi import ManagedServiceIdentityClient

    arm_mgmt_client(ManagedServiceIdentityClient).user_assigned_identities.create_or_update(
        resource_group, "lonely", {"location": "westeurope"}
    )
    listed = arm_control.get("/resources", params={"subscription_id": arm_subscriptions["contoso"]}).json()
    mine = [item for item in listed if f"/resourceGroups/{resource_group}/" in item["id"]]
    assert [item["body"]["name"] for item in mine] == ["lonely"]
    assert json.loads(json.dumps(mine))[0]["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
