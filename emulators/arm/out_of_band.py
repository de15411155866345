"""Out-of-band changes: what a customer (or a policy, or an accident) does to resources behind the control plane.

Under `/_emulator/out-of-band`: delete a resource, change a scale set's capacity or SKU, change a Private Link
Service's visibility or auto-approval, disable or (soft) delete a Key Vault key, remove a role assignment. Each
change lands in the same store ARM reads from, so GET and list answer as Azure would after the change.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from emulators.arm.errors import ResourceFailure
from emulators.arm.keyvault_keys import KeyVaultError
from emulators.arm.resource_ids import parse_resource_id

if TYPE_CHECKING:
    from emulators.arm.emulator import ArmEmulator

KEY_TYPE = "microsoft.keyvault/vaults/keys"
SCALE_SET_TYPE = "microsoft.compute/virtualmachinescalesets"
PLS_TYPE = "microsoft.network/privatelinkservices"


class ResourceTarget(BaseModel):
    """The resource to act on, by its full ARM id."""

    model_config = ConfigDict(extra="forbid")
    resource_id: str = Field(min_length=1, max_length=2048)


class ForeignResource(ResourceTarget):
    """A resource someone else creates (the customer, by hand): any type, stored as given."""

    body: dict[str, Any] = Field(default_factory=dict)
    created_by_app: str = Field(default="customer", max_length=128)


class ScaleSetChange(ResourceTarget):
    """A capacity and/or SKU change on a scale set, as `az vmss scale` or a portal resize would make."""

    capacity: int | None = Field(default=None, ge=0, le=1000)
    sku_name: str | None = Field(default=None, min_length=1, max_length=64)


class PrivateLinkChange(ResourceTarget):
    """New visibility and/or auto-approval subscription lists on a Private Link Service."""

    visibility_subscriptions: list[str] | None = None
    auto_approval_subscriptions: list[str] | None = None


def build_out_of_band_router(emulator: ArmEmulator) -> APIRouter:
    """Endpoints that change ARM state behind the control plane's back."""
    router = APIRouter(prefix="/out-of-band")
    store = emulator.store

    def stored_or_404(resource_id: str, wanted_type: str | None = None) -> Any:
        stored = store.resource(resource_id)
        if stored is None:
            raise HTTPException(404, f"resource {resource_id} not found")
        if wanted_type is not None and stored.type.lower() != wanted_type:
            raise HTTPException(400, f"resource {resource_id} is a {stored.type}, not a {wanted_type}")
        return stored

    def vault_and_key(resource_id: str) -> tuple[Any, str]:
        names = parse_resource_id(resource_id).name.split("/")
        vault = emulator.key_vaults.vault(names[0])
        if vault is None:
            raise HTTPException(404, f"vault {names[0]} not found")
        return vault, names[-1]

    @router.post("/put")
    def put_resource(request: ForeignResource) -> dict[str, Any]:
        """Create or replace a resource as someone other than the control plane (e.g. in a cluster's group)."""
        with store.lock:
            try:
                resource_id = parse_resource_id(request.resource_id)
            except ValueError as error:
                raise HTTPException(400, str(error)) from None
            subscription = store.subscription(resource_id.subscription_id or "")
            if subscription is None:
                raise HTTPException(404, f"subscription {resource_id.subscription_id} not found")
            group = resource_id.resource_group
            if group and store.resource_group(subscription.id, group) is None:
                raise HTTPException(404, f"resource group {group} not found")
            try:
                stored = emulator.providers.put(resource_id, request.body, subscription, request.created_by_app)
            except ResourceFailure as error:
                raise HTTPException(400, f"{error.code}: {error.message}") from None
            return emulator.providers.render(stored)

    @router.post("/delete")
    def delete_resource(request: ResourceTarget) -> dict[str, Any]:
        """Delete a resource (its children and extension resources go with it); a key is soft-deleted."""
        with store.lock:
            emulator.deployments.advance()
            stored = stored_or_404(request.resource_id)
            if stored.type.lower() == KEY_TYPE:
                vault, key_name = vault_and_key(stored.id)
                try:
                    emulator.key_vaults.delete_key(vault, key_name)
                except KeyVaultError as error:
                    raise HTTPException(error.status, error.message) from None
            emulator.providers.delete(stored.id)
            return {"deleted": stored.id}

    @router.post("/scale-set")
    def change_scale_set(request: ScaleSetChange) -> dict[str, Any]:
        """Set a scale set's capacity and/or SKU name directly (no quota check: the change already happened)."""
        with store.lock:
            stored = stored_or_404(request.resource_id, SCALE_SET_TYPE)
            sku = dict(stored.body.get("sku") or {})
            if request.capacity is not None:
                sku["capacity"] = request.capacity
            if request.sku_name is not None:
                sku["name"] = request.sku_name
            stored.body["sku"] = sku
            return emulator.providers.render(stored)

    @router.post("/private-link-service")
    def change_private_link_service(request: PrivateLinkChange) -> dict[str, Any]:
        """Replace a Private Link Service's visibility and/or auto-approval lists."""
        with store.lock:
            stored = stored_or_404(request.resource_id, PLS_TYPE)
            properties = stored.body["properties"]
            if request.visibility_subscriptions is not None:
                properties["visibility"] = {"subscriptions": list(request.visibility_subscriptions)}
            if request.auto_approval_subscriptions is not None:
                properties["autoApproval"] = {"subscriptions": list(request.auto_approval_subscriptions)}
            return emulator.providers.render(stored)

    @router.post("/disable-key")
    def disable_key(request: ResourceTarget) -> dict[str, Any]:
        """Disable the key's current version (wrap and unwrap then fail, as in Key Vault)."""
        with store.lock:
            stored = stored_or_404(request.resource_id, KEY_TYPE)
            vault, key_name = vault_and_key(stored.id)
            try:
                key = vault.key(key_name)
            except KeyVaultError as error:
                raise HTTPException(error.status, error.message) from None
            key.latest.enabled = False
            return copy.deepcopy(emulator.providers.render(stored))

    return router
