"""Azure Resource Manager emulator, with the Key Vault data plane of the vaults it creates.

Clients use the official SDKs unchanged; against this emulator they need only (see describe()):

- every azure-mgmt-* client: `base_url=<arm base_url>`, `credential_scopes=["https://management.azure.com/.default"]`,
  `connection_verify=<ca_bundle>`;
- azure-keyvault-keys `KeyClient(vault_url, credential, verify_challenge_resource=False, connection_verify=<ca_bundle>)`
  and `CryptographyClient(key_id, credential, verify_challenge_resource=False, connection_verify=<ca_bundle>)`:
  vaults live on 127.0.0.1, so the challenge's resource (vault.azure.net) cannot match the vault host. The vault URL
  is the vault's `properties.vaultUri` (each vault has its own port, no path prefix).
- azure-identity credentials as the Entra emulator documents (authority, disable_instance_discovery, connection_verify).

Control API (`/_emulator`): `GET|POST subscriptions`, `PUT|DELETE subscriptions/{id}/access/{app_id}` {"role"},
`PUT|DELETE subscriptions/{id}/quotas` {"region", "name": "cores"|"vmssCapacity", "limit"},
`PUT subscriptions/{id}/deployment-seconds` {"seconds"}, `POST|DELETE deployment-durations`
{"seconds", "subscription_id"?, "deployment_name"?, "count"?},
`POST private-endpoints` {"target", "consumer_subscription_id", "name", "request_message", "source_kind"},
`GET resources`, `GET resource-groups`, and `faults` (fault injection; each vault's data-plane port has its own
`/_emulator/faults` for the Key Vault fault rules).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulators.arm.emulator import ArmEmulator

if TYPE_CHECKING:
    from emulators.entra import EntraEmulator
    from emulators.suite import EmulatorSuiteConfig

__all__ = ["ArmEmulator", "build_arm_components"]


def build_arm_components(config: EmulatorSuiteConfig, entra: EntraEmulator) -> list[Any]:
    """The suite components: only "arm"; vault data planes are opened on their own ports as vaults are created."""
    return [ArmEmulator(config, entra)]
