"""Microsoft.Compute/virtualMachineScaleSets: capacity, identities, power state, and regional quotas."""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from emulators.arm.errors import ArmError, ResourceFailure
from emulators.arm.resource_providers import PutRequest, ResourceHandler, ResourceProviders, now_timestamp
from emulators.arm.store import StoredResource, Subscription

SCALE_SET_TYPE = "microsoft.compute/virtualmachinescalesets"
# Quota names a subscription can be given per region through the control API.
QUOTA_CORES = "cores"
QUOTA_SCALE_SET_CAPACITY = "vmsscapacity"
_SIZE_VCPUS = re.compile(r"^standard_[a-z]+?(\d+)", re.IGNORECASE)


def vcpus_of_size(size: str) -> int:
    """vCPUs of a VM size from its name (Standard_D8s_v5 -> 8; constrained sizes count their full size)."""
    match = _SIZE_VCPUS.match(size)
    return int(match.group(1)) if match else 1


def _usage(providers: ResourceProviders, subscription: Subscription, region: str, excluding: str) -> tuple[int, int]:
    cores = capacity = 0
    subscription_prefix = f"/subscriptions/{subscription.id.lower()}/"
    for resource in providers.store.resources_of_type(SCALE_SET_TYPE):
        if resource.id.lower() == excluding.lower() or not resource.id.lower().startswith(subscription_prefix):
            continue
        if str(resource.body.get("location", "")).lower() != region:
            continue
        sku = resource.body.get("sku") or {}
        capacity += int(sku.get("capacity", 0))
        cores += int(sku.get("capacity", 0)) * vcpus_of_size(str(sku.get("name", "")))
    return cores, capacity


def check_quota(
    providers: ResourceProviders, subscription: Subscription, resource_id: str, location: str, sku: dict[str, Any]
) -> None:
    """Refuse a scale set size that would exceed the subscription's regional quotas (deallocated VMs count too)."""
    region = location.lower().replace(" ", "")
    if not any((region, quota_name) in subscription.quotas for quota_name in (QUOTA_CORES, QUOTA_SCALE_SET_CAPACITY)):
        return  # no limit in this region: nothing to add up
    used_cores, used_capacity = _usage(providers, subscription, region, resource_id)
    requested_capacity = int(sku.get("capacity", 0))
    requested_cores = requested_capacity * vcpus_of_size(str(sku.get("name", "")))
    for quota_name, used, requested, label in (
        (QUOTA_CORES, used_cores, requested_cores, "Total Regional Cores"),
        (QUOTA_SCALE_SET_CAPACITY, used_capacity, requested_capacity, "Virtual Machine Scale Set instances"),
    ):
        limit = subscription.quotas.get((region, quota_name))
        if limit is not None and used + requested > limit:
            raise ResourceFailure(
                "QuotaExceeded",
                f"Operation could not be completed as it results in exceeding approved {label} quota. Location: "
                f"{region}, Current Limit: {limit}, Current Usage: {used}, Additional Required: {requested}, "
                f"(Minimum) New Limit Required: {used + requested}.",
            )


def _identity(
    providers: ResourceProviders, request: PutRequest, previous: dict[str, Any] | None
) -> dict[str, Any] | None:
    requested = request.body.get("identity")
    if not requested:
        return None
    identity: dict[str, Any] = dict(copy.deepcopy(requested))
    kinds = {item.strip().lower() for item in str(identity.get("type", "None")).split(",")}
    if "systemassigned" in kinds:
        identity["principalId"] = (previous or {}).get("principalId") or str(uuid.uuid4())
        identity["tenantId"] = request.subscription.tenant_id
    resolved = {}
    for identity_id in identity.get("userAssignedIdentities") or {}:
        stored = providers.store.resource(identity_id)
        if stored is None:
            raise ResourceFailure("FailedIdentityOperation", f"Identity '{identity_id}' could not be found.")
        properties = stored.body["properties"]
        resolved[stored.id] = {"principalId": properties["principalId"], "clientId": properties["clientId"]}
    if resolved:
        identity["userAssignedIdentities"] = resolved
    return identity


class VirtualMachineScaleSetHandler(ResourceHandler):
    """virtualMachineScaleSets: sku.capacity within quota, identities resolved, secrets never returned."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        sku = request.body.get("sku") or {}
        capacity = sku.get("capacity")
        if not sku.get("name") or not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0:
            raise ResourceFailure(
                "InvalidParameter", "The scale set needs sku.name and a non-negative integer sku.capacity."
            )
        location = str(request.body.get("location", ""))
        check_quota(providers, request.subscription, request.resource_id.id, location, sku)
        body = providers.base_body(request)
        previous = request.existing.body if request.existing else {}
        identity = _identity(providers, request, previous.get("identity"))
        if identity is not None:
            body["identity"] = identity
        properties = body["properties"]
        properties.setdefault("orchestrationMode", "Uniform")
        properties.setdefault("upgradePolicy", {"mode": "Manual"})
        properties["uniqueId"] = previous.get("properties", {}).get("uniqueId") or str(uuid.uuid4())
        properties["timeCreated"] = previous.get("properties", {}).get("timeCreated") or now_timestamp()
        # Azure never returns the admin password or custom data.
        os_profile = (properties.get("virtualMachineProfile") or {}).get("osProfile")
        if isinstance(os_profile, dict):
            os_profile.pop("adminPassword", None)
            os_profile.pop("customData", None)
        return body

    def after_put(self, providers: ResourceProviders, stored: StoredResource) -> None:
        stored.runtime.setdefault("power_state", "running")


def scale_set_instance_view(stored: StoredResource) -> dict[str, Any]:
    """GET .../virtualMachineScaleSets/{name}/instanceView."""
    capacity = int((stored.body.get("sku") or {}).get("capacity", 0))
    power_state = stored.runtime.get("power_state", "running")
    summary = [{"code": "ProvisioningState/succeeded", "count": capacity}]
    if capacity:
        summary.append({"code": f"PowerState/{power_state}", "count": capacity})
    return {
        "virtualMachine": {"statusesSummary": summary},
        "statuses": [
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "time": now_timestamp(),
            }
        ],
    }


def scale_set_action(stored: StoredResource, action: str) -> None:
    """POST deallocate / start / powerOff / restart on a scale set."""
    transitions = {"deallocate": "deallocated", "start": "running", "poweroff": "stopped", "restart": "running"}
    if action.lower() not in transitions:
        raise ArmError(400, "InvalidResourceOperation", f"The operation '{action}' is not supported on scale sets.")
    stored.runtime["power_state"] = transitions[action.lower()]


def register_compute_handlers(providers: ResourceProviders) -> None:
    """Add the Microsoft.Compute handlers to the registry."""
    providers.register("Microsoft.Compute/virtualMachineScaleSets", VirtualMachineScaleSetHandler())
