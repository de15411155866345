"""The ARM emulator's in-memory state: subscriptions and access, resource groups, resources, deployments."""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from emulators.arm.resource_ids import id_key, parse_resource_id

ROLE_PERMISSIONS = {"owner": {"read", "write"}, "contributor": {"read", "write"}, "reader": {"read"}}


@dataclass
class Subscription:
    """A subscription owned by a tenant; `access` maps an app (client) id to its role on the subscription.

    `cross_tenant_access` maps an app id to (role, the app's home tenant id): a grant honoured for tokens the app
    gets in its own home tenant, as a managed-application offer's publisher authorizations give the publisher.
    """

    id: str
    tenant_id: str
    display_name: str
    access: dict[str, str] = field(default_factory=dict)
    cross_tenant_access: dict[str, tuple[str, str]] = field(default_factory=dict)
    deployment_seconds: float | None = None
    # Held deployments keep running past their duration until released (a test watching a deployment in flight).
    deployments_held: bool = False
    # (region, quota name) -> limit, e.g. ("eastus", "cores") -> 20; both lower-case.
    quotas: dict[tuple[str, str], int] = field(default_factory=dict)

    def allows(self, app_id: str, permission: str) -> bool:
        """True when the app holds a role granting `permission` ("read" or "write")."""
        role = self.access.get(app_id.lower())
        return role is not None and permission in ROLE_PERMISSIONS.get(role.lower(), set())

    def authorizes(self, token_tenant_id: str, app_id: str, permission: str) -> bool:
        """True for the app's role with a token of this subscription's tenant, or its cross-tenant grant's home."""
        if token_tenant_id.lower() == self.tenant_id.lower():
            return self.allows(app_id, permission)
        grant = self.cross_tenant_access.get(app_id.lower())
        if grant is None:
            return False
        role, home_tenant_id = grant
        return token_tenant_id.lower() == home_tenant_id.lower() and permission in ROLE_PERMISSIONS.get(
            role.lower(), set()
        )

    def authorizes_member(self, token_tenant_id: str, permission: str) -> bool:
        """A person's access: the emulator holds no role assignments for people, so every member of the owning
        tenant reads the subscription (as a Reader at subscription scope would) and nobody else sees it."""
        return token_tenant_id.lower() == self.tenant_id.lower() and permission == "read"

    def as_arm(self) -> dict[str, Any]:
        """The subscription as GET /subscriptions/{id} answers."""
        return {
            "id": f"/subscriptions/{self.id}",
            "subscriptionId": self.id,
            "tenantId": self.tenant_id,
            "displayName": self.display_name,
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
            "authorizationSource": "RoleBased",
        }


@dataclass
class ResourceGroup:
    """A resource group of a subscription."""

    subscription_id: str
    name: str
    location: str
    tags: dict[str, str]
    managed_by: str | None = None

    @property
    def id(self) -> str:
        """The resource group's id."""
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"

    def as_arm(self, provisioning_state: str = "Succeeded") -> dict[str, Any]:
        """The resource group as ARM answers."""
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": self.location,
            "tags": self.tags,
            "properties": {"provisioningState": provisioning_state},
        }
        if self.managed_by:
            body["managedBy"] = self.managed_by
        return body


@dataclass
class StoredResource:
    """A resource as ARM returns it (`body`), plus what the emulator keeps beside it."""

    id: str
    body: dict[str, Any]
    created_by_app: str | None = None
    # Emulator-side state that is not part of the resource body (power state of a scale set, vault port, ...).
    runtime: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def type(self) -> str:
        """The full resource type (parsed once: listings and checks ask for it on every resource)."""
        return parse_resource_id(self.id).type


class ArmStore:
    """Every piece of ARM state, guarded by one re-entrant lock (requests run in worker threads)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.subscriptions: dict[str, Subscription] = {}
        self.resource_groups: dict[tuple[str, str], ResourceGroup] = {}
        # Only put_resource/remove_resource change `resources`: they keep the two indexes below in step.
        self.resources: dict[str, StoredResource] = {}
        # Keys in sorted order, for prefix scans (children, group members) without visiting every resource.
        self._sorted_keys: list[str] = []
        # Lower-case type -> key -> resource, in insertion order, for checks that look at one type only.
        self._by_type: dict[str, dict[str, StoredResource]] = {}
        # Insertion sequence of each key, so prefix scans answer in the order resources were created.
        self._sequence: dict[str, int] = {}
        self._next_sequence = 0
        # Soft-deleted vaults: (subscription, vault name) -> the deletedVaults representation.
        self.deleted_vaults: dict[tuple[str, str], dict[str, Any]] = {}

    def subscription(self, subscription_id: str) -> Subscription | None:
        """The subscription, case-insensitively."""
        return self.subscriptions.get(subscription_id.lower())

    def resource_group(self, subscription_id: str, name: str) -> ResourceGroup | None:
        """The resource group, case-insensitively."""
        return self.resource_groups.get((subscription_id.lower(), name.lower()))

    def resource(self, resource_id: str) -> StoredResource | None:
        """The resource with that id, case-insensitively."""
        return self.resources.get(id_key(resource_id))

    def put_resource(self, resource: StoredResource) -> None:
        """Insert or replace."""
        key = id_key(resource.id)
        if key not in self.resources:
            bisect.insort(self._sorted_keys, key)
            self._sequence[key] = self._next_sequence
            self._next_sequence += 1
        self.resources[key] = resource
        self._by_type.setdefault(resource.type.lower(), {})[key] = resource

    def remove_resource(self, resource_id: str) -> StoredResource | None:
        """Remove one resource (not its children)."""
        key = id_key(resource_id)
        resource = self.resources.pop(key, None)
        if resource is not None:
            del self._sorted_keys[bisect.bisect_left(self._sorted_keys, key)]
            del self._sequence[key]
            self._by_type[resource.type.lower()].pop(key, None)
        return resource

    def resources_under(self, prefix_id: str) -> list[StoredResource]:
        """Every resource whose id starts with `prefix_id/` (children, extension resources, group members)."""
        prefix = id_key(prefix_id) + "/"
        keys = []
        position = bisect.bisect_left(self._sorted_keys, prefix)
        while position < len(self._sorted_keys) and self._sorted_keys[position].startswith(prefix):
            keys.append(self._sorted_keys[position])
            position += 1
        keys.sort(key=self._sequence.__getitem__)
        return [self.resources[key] for key in keys]

    def resources_of_type(self, resource_type: str) -> list[StoredResource]:
        """Every resource of one full type (case-insensitive), oldest first."""
        return list(self._by_type.get(resource_type.lower(), {}).values())
