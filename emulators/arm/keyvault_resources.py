"""Microsoft.KeyVault management resources: vaults (soft delete always on, purge protection) and keys."""

from __future__ import annotations

import copy
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from emulators.arm.errors import ArmError, ResourceFailure
from emulators.arm.keyvault_data_plane import KeyVaultService, VaultState
from emulators.arm.keyvault_keys import KeyVaultError
from emulators.arm.resource_ids import parse_resource_id
from emulators.arm.resource_providers import PutRequest, ResourceHandler, ResourceProviders
from emulators.arm.store import StoredResource

VAULT_TYPE = "microsoft.keyvault/vaults"
_VAULT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")


class VaultHandler(ResourceHandler):
    """vaults: globally unique names, vaultUri on the emulated data plane, soft delete on DELETE."""

    def __init__(self, key_vaults: KeyVaultService) -> None:
        self.key_vaults = key_vaults

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        name = request.resource_id.leaf_name
        if not _VAULT_NAME.match(name) or "--" in name:
            raise ResourceFailure(
                "VaultNameNotValid",
                f"The vault name '{name}' is invalid. A vault's name must be between 3-24 alphanumeric characters.",
            )
        subscription_key = request.subscription.id.lower()
        recover = str(request.properties.get("createMode", "default")).lower() == "recover"
        if request.existing is None:
            for other in providers.store.resources_of_type(VAULT_TYPE):
                if other.body["name"].lower() == name.lower():
                    raise ResourceFailure("VaultAlreadyExists", f"The vault name '{name}' is already in use.")
            deleted = providers.store.deleted_vaults.get((subscription_key, name.lower()))
            if deleted is not None and not recover:
                raise ResourceFailure("ConflictError", f"Exist soft deleted vault with the same name {name}.")
            if deleted is None and recover:
                raise ResourceFailure("NoDeletedVaultFound", f"No deleted vault named '{name}' was found to recover.")
        sku = request.properties.get("sku") or {}
        if str(sku.get("name", "")).lower() not in ("standard", "premium"):
            raise ResourceFailure("BadRequest", "The parameter sku.name must be 'standard' or 'premium'.")
        previous = request.existing.body["properties"] if request.existing else {}
        purge_protection = bool(
            request.properties.get("enablePurgeProtection") or previous.get("enablePurgeProtection")
        )
        if previous.get("enablePurgeProtection") and request.properties.get("enablePurgeProtection") is False:
            raise ResourceFailure(
                "BadRequest",
                'The property "enablePurgeProtection" cannot be set to false. Enabling the purge protection for a '
                "vault is an irreversible action.",
            )
        retention = int(
            request.properties.get("softDeleteRetentionInDays", previous.get("softDeleteRetentionInDays", 90))
        )
        if not 7 <= retention <= 90:
            raise ResourceFailure("BadRequest", "softDeleteRetentionInDays must be between 7 and 90.")
        body = providers.base_body(request)
        properties = body["properties"]
        properties.pop("createMode", None)
        properties["tenantId"] = request.properties.get("tenantId") or request.subscription.tenant_id
        properties["sku"] = {"family": "A", "name": str(sku["name"]).lower()}
        properties["enableSoftDelete"] = True
        properties["softDeleteRetentionInDays"] = retention
        properties["enableRbacAuthorization"] = bool(request.properties.get("enableRbacAuthorization", False))
        properties.setdefault("accessPolicies", [])
        if purge_protection:
            properties["enablePurgeProtection"] = True
        else:
            properties.pop("enablePurgeProtection", None)
        return body

    def after_put(self, providers: ResourceProviders, stored: StoredResource) -> None:
        properties = stored.body["properties"]
        name = stored.body["name"]
        scope = parse_resource_id(stored.id)
        deleted = providers.store.deleted_vaults.pop(((scope.subscription_id or "").lower(), name.lower()), None)
        vault = self.key_vaults.open_vault(
            name,
            stored.id,
            properties["tenantId"],
            properties["sku"]["name"],
            stored.created_by_app if deleted is None else deleted["_creator_app"],
            bool(properties.get("enablePurgeProtection")),
        )
        properties["vaultUri"] = vault.url + "/"
        if deleted is not None:
            for child in deleted["_children"]:
                providers.store.put_resource(child)

    def on_delete(self, providers: ResourceProviders, stored: StoredResource) -> bool:
        properties = stored.body["properties"]
        scope = parse_resource_id(stored.id)
        deleted_at = datetime.now(UTC)
        location = str(stored.body.get("location", ""))
        name = stored.body["name"]
        providers.store.deleted_vaults[((scope.subscription_id or "").lower(), name.lower())] = {
            "id": (
                f"/subscriptions/{scope.subscription_id}/providers/Microsoft.KeyVault/locations/{location}"
                f"/deletedVaults/{name}"
            ),
            "name": name,
            "type": "Microsoft.KeyVault/deletedVaults",
            "properties": {
                "vaultId": stored.id,
                "location": location,
                "deletionDate": deleted_at.isoformat().replace("+00:00", "Z"),
                "scheduledPurgeDate": (
                    deleted_at + timedelta(days=int(properties.get("softDeleteRetentionInDays", 90)))
                )
                .isoformat()
                .replace("+00:00", "Z"),
                "tags": stored.body.get("tags", {}),
                "purgeProtectionEnabled": bool(properties.get("enablePurgeProtection")),
            },
            # Kept for recovery: who created the vault and its child resources (keys).
            "_creator_app": stored.created_by_app,
            "_children": [copy.deepcopy(child) for child in providers.store.resources_under(stored.id)],
        }
        self.key_vaults.set_deleted(name, True)
        return True


def public_deleted_vault(entry: dict[str, Any]) -> dict[str, Any]:
    """A deletedVaults entry without the emulator's bookkeeping keys."""
    return {key: value for key, value in entry.items() if not key.startswith("_")}


def purge_deleted_vault(
    providers: ResourceProviders, key_vaults: KeyVaultService, subscription_id: str, name: str
) -> None:
    """POST .../deletedVaults/{name}/purge: refused while purge protection is on."""
    with providers.store.lock:
        entry = providers.store.deleted_vaults.get((subscription_id.lower(), name.lower()))
        if entry is None:
            raise ArmError(404, "ResourceNotFound", f"The deleted vault '{name}' was not found.")
        if entry["properties"]["purgeProtectionEnabled"]:
            raise ArmError(
                409,
                "ConflictError",
                f"Operation 'DeletedVaultPurge' is not allowed for vault '{name}': purge protection is enabled; the "
                f"vault will be purged on {entry['properties']['scheduledPurgeDate']}.",
            )
        del providers.store.deleted_vaults[(subscription_id.lower(), name.lower())]
    key_vaults.purge(name)


class VaultKeyHandler(ResourceHandler):
    """vaults/keys: creates the key in the data plane with real RSA material; a re-PUT returns the existing key."""

    created_status = 200

    def __init__(self, key_vaults: KeyVaultService) -> None:
        self.key_vaults = key_vaults

    def _vault(self, providers: ResourceProviders, key_resource_id: str) -> VaultState:
        vault_name = parse_resource_id(key_resource_id).name.split("/")[0]
        vault = self.key_vaults.vault(vault_name)
        if vault is None or vault.deleted:
            raise ResourceFailure("ResourceNotFound", f"The vault '{vault_name}' was not found.")
        return vault

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        if request.existing is not None:
            return copy.deepcopy(request.existing.body)
        vault = self._vault(providers, request.resource_id.id)
        properties = request.properties
        key_type = str(properties.get("kty", "RSA"))
        key_size = int(properties.get("keySize", 2048))
        attributes = properties.get("attributes") or {}
        try:
            key = self.key_vaults.create_key(
                vault,
                request.resource_id.leaf_name,
                key_type,
                key_size,
                properties.get("keyOps"),
                {
                    "enabled": attributes.get("enabled", True),
                    "nbf": attributes.get("nbf"),
                    "exp": attributes.get("exp"),
                },
                request.body.get("tags"),
            )
            if properties.get("rotationPolicy"):
                self.key_vaults.set_rotation_policy(key, _data_plane_policy(properties["rotationPolicy"]))
        except KeyVaultError as error:
            raise ResourceFailure(error.code, error.message) from None
        body = providers.base_body(request)
        body.pop("location", None)
        body["properties"] = {"kty": key_type, "keySize": key_size, "keyOps": key.latest.operations}
        if properties.get("rotationPolicy"):
            body["properties"]["rotationPolicy"] = copy.deepcopy(properties["rotationPolicy"])
        return body

    def render(self, providers: ResourceProviders, stored: StoredResource) -> dict[str, Any]:
        body = copy.deepcopy(stored.body)
        vault = self.key_vaults.vault(parse_resource_id(stored.id).name.split("/")[0])
        if vault is None:
            return body
        key = vault.keys.get(stored.body["name"].lower())
        if key is None:
            return body
        latest = key.latest
        body["properties"].update(
            keyUri=f"{vault.url}/keys/{key.name}",
            keyUriWithVersion=f"{vault.url}/keys/{key.name}/{latest.version}",
            attributes={
                "enabled": latest.enabled,
                "created": latest.created,
                "updated": latest.updated,
                "recoveryLevel": vault.recovery_level,
                "exportable": False,
            },
        )
        return body


def _data_plane_policy(policy: dict[str, Any]) -> dict[str, Any]:
    """The management API's rotationPolicy uses the data plane's shape with `expiryTime` in attributes."""
    return {
        "lifetimeActions": [
            {
                "trigger": dict(action.get("trigger") or {}),
                "action": {"type": str((action.get("action") or {}).get("type", "Notify")).capitalize()},
            }
            for action in policy.get("lifetimeActions") or []
        ],
        "attributes": {"expiryTime": (policy.get("attributes") or {}).get("expiryTime")},
    }


class VaultSecretHandler(ResourceHandler):
    """vaults/secrets: a PUT with a value adds a version; the value is write-only, the URIs are the vault's."""

    def __init__(self, key_vaults: KeyVaultService) -> None:
        self.key_vaults = key_vaults

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        vault_name, secret_name = request.resource_id.name.split("/")
        vault = self.key_vaults.vault(vault_name)
        if vault is None:
            raise ResourceFailure("ParentResourceNotFound", f"The vault '{vault_name}' was not found.")
        if not re.fullmatch(r"[0-9a-zA-Z-]{1,127}", secret_name):
            raise ResourceFailure("BadRequest", f"The secret name '{secret_name}' is invalid.")
        body = providers.base_body(request)
        body.pop("location", None)
        properties = body["properties"]
        properties.pop("provisioningState", None)
        previous = request.existing.body["properties"] if request.existing else {}
        version = previous.get("_version")
        if "value" in properties or version is None:
            version = uuid.uuid4().hex
        properties["_version"] = version
        properties["_value"] = properties.pop("value", previous.get("_value"))
        properties["secretUri"] = f"{vault.url}/secrets/{secret_name}"
        properties["secretUriWithVersion"] = f"{vault.url}/secrets/{secret_name}/{version}"
        properties.setdefault("attributes", {"enabled": True})
        return body

    def render(self, providers: ResourceProviders, stored: StoredResource) -> dict[str, Any]:
        body = copy.deepcopy(stored.body)
        body["properties"].pop("_value", None)
        body["properties"].pop("_version", None)
        return body


def register_keyvault_handlers(providers: ResourceProviders, key_vaults: KeyVaultService) -> None:
    """Add the Microsoft.KeyVault handlers to the registry."""
    providers.register("Microsoft.KeyVault/vaults", VaultHandler(key_vaults))
    providers.register("Microsoft.KeyVault/vaults/keys", VaultKeyHandler(key_vaults))
    providers.register("Microsoft.KeyVault/vaults/secrets", VaultSecretHandler(key_vaults))
