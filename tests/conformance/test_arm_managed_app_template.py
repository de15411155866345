"""The repository's managed-app main template (every façade step as an inline nested deployment) deploys
through the ARM emulator, and its outputs match what the SDKs read back."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.resource.deployments import DeploymentsMgmtClient

pytestmark = pytest.mark.timeout(60)

MAIN_TEMPLATE = Path(__file__).resolve().parents[2] / "arm_templates" / "managed-app" / "mainTemplate.json"


@pytest.mark.skipif(not MAIN_TEMPLATE.exists(), reason="the managed-app package is not in this checkout")
def test_main_template_deploys_and_outputs_match_the_resources(
    arm_mgmt_client: Callable[..., Any], arm_credential_for: Callable[[str], Any], resource_group: str, ca_bundle: Path
) -> None:
    template = json.loads(MAIN_TEMPLATE.read_text())
    deployments: DeploymentsMgmtClient = arm_mgmt_client(DeploymentsMgmtClient)
    parameters = {"clusterName": {"value": "alpha"}, "adminSshPublicKey": {"value": "ssh-rsa AAAAB3NzaC1yc2E test"}}
    result = deployments.deployments.begin_create_or_update(
        resource_group,
        "facade-main",
        {"properties": {"mode": "Incremental", "template": template, "parameters": parameters}},
    ).result()
    assert result.properties.provisioning_state == "Succeeded"
    outputs = {name: value["value"] for name, value in result.properties.outputs.items()}

    network: NetworkManagementClient = arm_mgmt_client(NetworkManagementClient)
    service = network.private_link_services.get(resource_group, outputs["privateLinkServiceName"])
    assert service.alias == outputs["privateLinkServiceAlias"]
    balancer = network.load_balancers.get(resource_group, outputs["loadBalancerName"])
    assert balancer.sku.name == "Standard"
    assert balancer.frontend_ip_configurations[0].private_ip_address == outputs["frontendPrivateIpAddress"]

    vault = arm_mgmt_client(KeyVaultManagementClient).vaults.get(resource_group, outputs["keyVaultName"])
    assert vault.properties.vault_uri == outputs["keyVaultUri"]
    assert vault.properties.enable_purge_protection is True

    scale_set = arm_mgmt_client(ComputeManagementClient).virtual_machine_scale_sets.get(
        resource_group, outputs["scaleSetName"]
    )
    assigned = {key.lower(): value for key, value in scale_set.identity.user_assigned_identities.items()}
    assert assigned[outputs["identityResourceId"].lower()].principal_id == outputs["identityPrincipalId"]

    zone_name = outputs["privateDnsZoneResourceId"].rsplit("/", 1)[-1]
    records = list(arm_mgmt_client(PrivateDnsManagementClient).record_sets.list(resource_group, zone_name))
    assert any(record.a_records for record in records)

    # The key the template created wraps and unwraps for the control-plane app that deployed the vault.
    crypto = CryptographyClient(
        outputs["keyIdWithVersion"],
        arm_credential_for("contoso"),
        verify_challenge_resource=False,
        connection_verify=str(ca_bundle),
    )
    secret = os.urandom(32)
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, secret)
    assert crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key == secret
