"""What the control plane owns in a customer's subscription, and the checks that keep it to that.

A cluster deploys into a resource group created for it alone and tagged with the cluster's name. A group the
customer names must not exist yet, or exist empty and carry that tag for this very cluster: anything else is
refused at confirmation, so a shared or pre-existing group is never discovered at deletion. Deletion removes
only the resources our deployments reported creating (ARM's outputResources); a group holding anything else is
kept, and what is left in it is recorded for the operator.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlmodel import Session, col, func, select

from core.arm_templates.steps import FACADE_CLUSTER_STEPS, read_step_template
from core.azure.arm import ArmAccessDenied, ArmClient, ArmRequestFailed
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.schemas import ClusterPlacement
from core.errors import Conflict, UpstreamUnavailable, ValidationFailed
from core.settings import DEFAULT_ARM_TEMPLATES_PATH

# The tag that marks a resource group as ours, with the name of the one cluster it belongs to.
OWNERSHIP_TAG = "vast-cluster"
# Resource types in the order they can be deleted: consumers before what they use (a PLS holds the load
# balancer's frontend, the scale set its backend pool and the subnets, the vault's key encrypts the disks).
DELETION_ORDER = (
    "microsoft.network/privatelinkservices",
    "microsoft.compute/virtualmachinescalesets",
    "microsoft.network/loadbalancers",
    "microsoft.compute/diskencryptionsets",
    "microsoft.network/privatednszones",
    "microsoft.operationalinsights/workspaces",
    "microsoft.network/virtualnetworks",
    "microsoft.keyvault/vaults",
    "microsoft.managedidentity/userassignedidentities",
)
# Used only for a type none of our templates declares (it cannot come from our own deployments).
FALLBACK_API_VERSION = "2025-04-01"


class PlacementRefused(ValidationFailed):
    """The deployment choices name a subscription, region or group ARM would not give us."""

    code = "PlacementRefused"


class ResourceGroupNotOwned(Conflict):
    """The resource group exists and is not one the control plane made, empty, for this cluster."""

    code = "ResourceGroupNotOwned"


def default_resource_group(cluster_name: str) -> str:
    """The group a cluster gets when the customer names none: deterministic, one per cluster."""
    return f"rg-{cluster_name}"


def ownership_tags(cluster_name: str) -> dict[str, str]:
    """The tags we put on (merge into) a cluster's resource group."""
    return {OWNERSHIP_TAG: cluster_name}


def owner_of(tags: dict[str, str]) -> str | None:
    """The cluster a group's tags name as its owner (ARM tag names are case-insensitive, values are not)."""
    return next((value for name, value in tags.items() if name.lower() == OWNERSHIP_TAG), None)


def resource_type_of(resource_id: str) -> str:
    """`Namespace/type[/child...]` of a provider resource id, lower-case."""
    segments = [segment for segment in resource_id.split("/") if segment]
    positions = [index for index, segment in enumerate(segments) if segment.lower() == "providers"]
    if not positions:
        return ""
    rest = segments[positions[-1] + 1 :]
    return "/".join([rest[0], *rest[1::2]]).lower() if rest else ""


def deletion_rank(resource_id: str) -> int:
    """Position of the resource's type in DELETION_ORDER (unknown types go between the network and the vault)."""
    resource_type = resource_type_of(resource_id)
    if resource_type in DELETION_ORDER:
        return DELETION_ORDER.index(resource_type)
    return DELETION_ORDER.index("microsoft.network/virtualnetworks")


@cache
def _template_api_versions() -> dict[str, str]:
    versions: dict[str, str] = {}

    def walk(resources: Any, parent_type: str | None) -> None:
        items = resources.values() if isinstance(resources, dict) else resources or []
        for resource in items:
            if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
                continue
            resource_type = str(resource["type"])
            if parent_type and "/" not in resource_type:
                resource_type = f"{parent_type}/{resource_type}"  # a nested child names only its own type
            versions.setdefault(resource_type.lower(), str(resource.get("apiVersion") or FALLBACK_API_VERSION))
            walk(resource.get("resources"), resource_type)

    for step in FACADE_CLUSTER_STEPS:
        # The shipped templates' API versions: deleting by id needs one per type, not the exact deployed copy.
        walk(read_step_template(DEFAULT_ARM_TEMPLATES_PATH, step).get("resources"), None)
    return versions


def api_version_for(resource_id: str) -> str:
    """The API version our templates deploy the resource's type with (ARM needs one for a DELETE by id)."""
    return _template_api_versions().get(resource_type_of(resource_id), FALLBACK_API_VERSION)


def split_group_contents(present: Iterable[str], owned: Iterable[str]) -> tuple[list[str], list[str]]:
    """The group's resources as (ours, someone else's), compared case-insensitively as ARM ids are."""
    owned_keys = {resource_id.rstrip("/").lower() for resource_id in owned}
    ours: list[str] = []
    foreign: list[str] = []
    for resource_id in present:
        (ours if resource_id.rstrip("/").lower() in owned_keys else foreign).append(resource_id)
    return ours, foreign


def next_deletions(ours: list[str]) -> list[str]:
    """Our remaining resources of the earliest deletion rank: what one controller pass deletes."""
    if not ours:
        return []
    first = min(deletion_rank(resource_id) for resource_id in ours)
    return sorted(resource_id for resource_id in ours if deletion_rank(resource_id) == first)


# Confirmation ---------------------------------------------------------------------------------------------------
def group_in_use(session: Session, placement: ClusterPlacement) -> Cluster | None:
    """A cluster of ours, not deleted, already placed in this subscription's group."""
    statement = select(Cluster).where(
        func.lower(col(Cluster.azure_subscription_id)) == placement.azure_subscription_id.lower(),
        func.lower(col(Cluster.resource_group)) == placement.resource_group.lower(),
        col(Cluster.status) != ClusterStatus.DELETED,
    )
    return session.exec(statement).first()


def check_placement(session: Session, arm: ArmClient, placement: ClusterPlacement, cluster_name: str) -> None:
    """Refuse a placement ARM would not give us, or a group that is not free for this cluster; ARM is only read.

    Raises PlacementRefused (422), ResourceGroupNotOwned (409) or UpstreamUnavailable (503) when ARM cannot
    answer now. `arm` works in the placement's subscription with the beneficiary tenant's consent.
    """
    subscription_id = placement.azure_subscription_id
    other = group_in_use(session, placement)
    if other is not None:
        raise ResourceGroupNotOwned(
            f"Resource group '{placement.resource_group}' in subscription {subscription_id} already holds another "
            "VAST cluster. Leave the resource group empty to get a new one, or name a group that does not exist.",
            details={"resource_group": placement.resource_group},
        )
    try:
        if subscription_id.lower() not in arm.accessible_subscription_ids():
            raise PlacementRefused(
                f"Our application has no access to Azure subscription {subscription_id}. Choose a subscription your "
                "administrator consented to and granted the application the Contributor role on.",
                details={"field": "azure_subscription_id"},
            )
        locations = arm.list_locations()
        if placement.region.lower() not in locations:
            raise PlacementRefused(
                f"Region '{placement.region}' is not available in subscription {subscription_id}. Available regions: "
                f"{', '.join(sorted(locations))}.",
                details={"field": "region"},
            )
        group = arm.get_resource_group(placement.resource_group)
        if group is None:
            return
        owner = owner_of(group.tags)
        contents = arm.list_group_resource_ids(placement.resource_group)
    except ArmAccessDenied as error:
        raise PlacementRefused(error.message, details={"field": "azure_subscription_id"}) from None
    except ArmRequestFailed as error:
        if error.transient:
            raise UpstreamUnavailable(f"Azure Resource Manager did not answer ({error.message})") from None
        raise PlacementRefused(error.message, details={"arm_code": error.arm_code}) from None
    if owner != cluster_name or contents:
        reason = (
            f"it holds {len(contents)} resource(s)"
            if contents
            else "it was not created for this purchase"
            if owner is None
            else "it belongs to another VAST cluster"
        )
        raise ResourceGroupNotOwned(
            f"Resource group '{placement.resource_group}' already exists and {reason}. We deploy only into a resource "
            "group of our own: leave the field empty to get a new one, or name a group that does not exist yet.",
            details={"resource_group": placement.resource_group, "resources": len(contents)},
        )
