"""Key Vault: vaults and keys through azure-mgmt-keyvault, key operations through azure-keyvault-keys."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys import KeyClient, KeyRotationLifetimeAction, KeyRotationPolicy, KeyRotationPolicyAction
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.keyvault.models import (
    KeyCreateParameters,
    KeyProperties,
    Sku,
    VaultCreateOrUpdateParameters,
    VaultProperties,
)
from azure.mgmt.msi import ManagedServiceIdentityClient

from emulators.entra import EntraEmulator

pytestmark = pytest.mark.timeout(40)

CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"


class MintedIdentityCredential:
    """Stands in for a managed identity's token source (IMDS, which is not emulated): mints its tokens."""

    def __init__(self, entra: EntraEmulator, tenant_id: str, client_id: str, object_id: str) -> None:
        self.entra, self.tenant_id, self.client_id, self.object_id = entra, tenant_id, client_id, object_id

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """A token for the first scope's resource."""
        token = self.entra.mint_access_token(
            tenant_id=self.tenant_id,
            audience=scopes[0].removesuffix("/.default"),
            client_id=self.client_id,
            extra_claims={"oid": self.object_id},
        )
        return AccessToken(token, 4_102_444_800)

    def get_token_info(self, *scopes: str, **kwargs: Any) -> Any:
        """The newer credential protocol, used by the Key Vault challenge policy."""
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self.get_token(*scopes).token, 4_102_444_800)


@pytest.fixture
def contoso_tenant_id(emulator_state: dict[str, Any]) -> str:
    """Contoso's tenant id (the vaults' tenant)."""
    return str(emulator_state["entra"]["tenants"]["contoso"]["id"])


@pytest.fixture
def vault(arm_mgmt_client: Callable[..., Any], resource_group: str, contoso_tenant_id: str) -> Any:
    """A premium vault with purge protection and RBAC authorization, created by the control-plane app."""
    client: KeyVaultManagementClient = arm_mgmt_client(KeyVaultManagementClient)
    return client.vaults.begin_create_or_update(
        resource_group,
        f"kv{uuid.uuid4().hex[:12]}",
        VaultCreateOrUpdateParameters(
            location="westeurope",
            properties=VaultProperties(
                tenant_id=contoso_tenant_id,
                sku=Sku(family="A", name="premium"),
                enable_purge_protection=True,
                enable_rbac_authorization=True,
            ),
        ),
    ).result()


def key_client(vault_uri: str, credential: Any, ca_bundle: Path) -> KeyClient:
    """KeyClient with the options the emulator needs."""
    return KeyClient(vault_uri, credential, verify_challenge_resource=False, connection_verify=str(ca_bundle))


def test_vault_and_key_created_through_arm_have_real_key_material(
    arm_mgmt_client: Callable[..., Any],
    arm_credential_for: Callable[[str], Any],
    resource_group: str,
    vault: Any,
    ca_bundle: Path,
) -> None:
    management: KeyVaultManagementClient = arm_mgmt_client(KeyVaultManagementClient)
    assert vault.properties.enable_soft_delete is True
    assert vault.properties.enable_purge_protection is True
    assert vault.properties.vault_uri.startswith("https://127.0.0.1:")
    created = management.keys.create_if_not_exist(
        resource_group,
        vault.name,
        "cmk",
        KeyCreateParameters(properties=KeyProperties(kty="RSA-HSM", key_size=3072, key_ops=["wrapKey", "unwrapKey"])),
    )
    assert created.key_uri == f"{vault.properties.vault_uri.rstrip('/')}/keys/cmk"
    assert created.key_size == 3072

    keys = key_client(vault.properties.vault_uri, arm_credential_for("contoso"), ca_bundle)
    key = keys.get_key("cmk")
    assert key.id == created.key_uri_with_version
    assert key.key_type == "RSA-HSM"
    assert key.properties.recovery_level == "Recoverable"
    assert len(key.key.n) == 3072 // 8


def test_create_rotate_wrap_unwrap_with_rbac(
    arm_mgmt_client: Callable[..., Any],
    arm_credential_for: Callable[[str], Any],
    resource_group: str,
    vault: Any,
    ca_bundle: Path,
    entra: EntraEmulator,
) -> None:
    keys = key_client(vault.properties.vault_uri, arm_credential_for("contoso"), ca_bundle)
    first = keys.create_rsa_key("data-key", size=2048, key_operations=["wrapKey", "unwrapKey"])
    policy = keys.update_key_rotation_policy(
        "data-key",
        KeyRotationPolicy(),
        lifetime_actions=[KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P90D")],
        expires_in="P1Y",
    )
    assert policy.expires_in == "P1Y"
    assert keys.get_key_rotation_policy("data-key").lifetime_actions[0].action == KeyRotationPolicyAction.rotate

    plaintext = os.urandom(32)
    app_crypto = CryptographyClient(
        first.id, arm_credential_for("contoso"), verify_challenge_resource=False, connection_verify=str(ca_bundle)
    )
    wrapped = app_crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, plaintext)
    assert wrapped.key_id == first.id

    rotated = keys.rotate_key("data-key")
    assert rotated.properties.version != first.properties.version
    assert [item.version for item in keys.list_properties_of_key_versions("data-key")] == [
        first.properties.version,
        rotated.properties.version,
    ]

    # A user-assigned identity holding the crypto role on the key unwraps with the versioned id stored beside the data.
    identity = arm_mgmt_client(ManagedServiceIdentityClient).user_assigned_identities.create_or_update(
        resource_group, "facade-id", {"location": "westeurope"}
    )
    key_resource_id = f"{vault.id}/keys/data-key"
    authorization: AuthorizationManagementClient = arm_mgmt_client(AuthorizationManagementClient)
    role_definition = (
        f"/subscriptions/{vault.id.split('/')[2]}/providers/Microsoft.Authorization/roleDefinitions/"
        f"{CRYPTO_SERVICE_ENCRYPTION_USER}"
    )
    tenant_id = identity.tenant_id
    identity_credential = MintedIdentityCredential(entra, tenant_id, identity.client_id, identity.principal_id)
    identity_crypto = CryptographyClient(
        first.id, identity_credential, verify_challenge_resource=False, connection_verify=str(ca_bundle)
    )
    with pytest.raises(HttpResponseError) as denied:
        identity_crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key)
    assert denied.value.status_code == 403
    assert denied.value.error.code == "Forbidden"
    authorization.role_assignments.create(
        key_resource_id,
        str(uuid.uuid4()),
        RoleAssignmentCreateParameters(
            role_definition_id=role_definition, principal_id=identity.principal_id, principal_type="ServicePrincipal"
        ),
    )
    assert identity_crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key == plaintext
    # The same identity has no role on another key of the vault.
    other = keys.create_rsa_key("other-key", size=2048)
    other_crypto = CryptographyClient(
        other.id, identity_credential, verify_challenge_resource=False, connection_verify=str(ca_bundle)
    )
    with pytest.raises(HttpResponseError) as denied:
        other_crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep, plaintext)
    assert denied.value.status_code == 403


def test_rsa_hsm_needs_premium_and_soft_deleted_vault_is_listed(
    arm_mgmt_client: Callable[..., Any],
    arm_credential_for: Callable[[str], Any],
    resource_group: str,
    ca_bundle: Path,
    contoso_tenant_id: str,
) -> None:
    management: KeyVaultManagementClient = arm_mgmt_client(KeyVaultManagementClient)
    name = f"kv{uuid.uuid4().hex[:12]}"
    standard = management.vaults.begin_create_or_update(
        resource_group,
        name,
        VaultCreateOrUpdateParameters(
            location="westeurope",
            properties=VaultProperties(
                tenant_id=contoso_tenant_id,
                sku=Sku(family="A", name="standard"),
                enable_rbac_authorization=True,
            ),
        ),
    ).result()
    keys = key_client(standard.properties.vault_uri, arm_credential_for("contoso"), ca_bundle)
    with pytest.raises(HttpResponseError) as raised:
        keys.create_rsa_key("hsm", size=2048, hardware_protected=True)
    assert raised.value.status_code == 400
    assert keys.create_rsa_key("soft", size=2048).key_type == "RSA"

    management.vaults.delete(resource_group, name)
    deleted = {item.name: item for item in management.vaults.list_deleted()}
    assert deleted[name].properties.vault_id == standard.id
    assert not management.vaults.get_deleted(name, "westeurope").properties.purge_protection_enabled
    with pytest.raises(HttpResponseError):
        keys.get_key("soft")
    # Without purge protection the deleted vault can be purged.
    management.vaults.begin_purge_deleted(name, "westeurope").result()
    assert name not in {item.name for item in management.vaults.list_deleted()}


def test_purge_refused_while_purge_protection_is_on(
    arm_mgmt_client: Callable[..., Any], resource_group: str, vault: Any
) -> None:
    management: KeyVaultManagementClient = arm_mgmt_client(KeyVaultManagementClient)
    management.vaults.delete(resource_group, vault.name)
    assert vault.name in {item.name for item in management.vaults.list_deleted()}
    with pytest.raises(HttpResponseError) as raised:
        management.vaults.begin_purge_deleted(vault.name, "westeurope").result()
    assert raised.value.status_code == 409
    # The name stays taken while the vault is soft-deleted.
    with pytest.raises(HttpResponseError) as conflict:
        management.vaults.begin_create_or_update(
            resource_group,
            vault.name,
            VaultCreateOrUpdateParameters(
                location="westeurope",
                properties=VaultProperties(tenant_id=vault.properties.tenant_id, sku=Sku(family="A", name="premium")),
            ),
        ).result()
    assert conflict.value.error.code == "ConflictError"
