"""The resource providers: how a PUT of each resource type is checked and which read-only properties it gets.

Every type not listed gets the generic behaviour: the body is stored as given, with `provisioningState`.
Handlers raise ResourceFailure; a direct PUT turns it into a 400, a deployment into a failed operation.
"""

from __future__ import annotations

import base64
import copy
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from emulators.arm.errors import ResourceFailure
from emulators.arm.resource_ids import ResourceId, parse_resource_id
from emulators.arm.store import ArmStore, StoredResource, Subscription

# Top-level keys of a resource body that ARM keeps; anything else in a PUT body is ignored.
RESOURCE_BODY_KEYS = ("location", "tags", "sku", "kind", "identity", "zones", "plan", "extendedLocation", "etag")
# Types whose location is "global" whatever the request says.
GLOBAL_TYPES = {"microsoft.network/privatednszones"}


@dataclass
class PutRequest:
    """What a handler sees: the target id, the request body, the current resource if any, and the caller."""

    resource_id: ResourceId
    body: dict[str, Any]
    existing: StoredResource | None
    subscription: Subscription
    caller_app: str | None

    @property
    def properties(self) -> dict[str, Any]:
        """The request's `properties` object (empty when absent)."""
        value = self.body.get("properties")
        return value if isinstance(value, dict) else {}


def _random_key() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode()


def now_timestamp() -> str:
    """UTC now in ARM's timestamp format."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ResourceHandler:
    """Generic resource: store what was given, add id/name/type and provisioningState."""

    # Child types whose parent must exist first (false for extension-style or top-level types).
    requires_parent = True
    # The status of a PUT that creates the resource (a few providers answer 200 either way).
    created_status = 201

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        """The body to store for this PUT."""
        return providers.base_body(request)

    def render(self, providers: ResourceProviders, stored: StoredResource) -> dict[str, Any]:
        """The body a GET returns."""
        return copy.deepcopy(stored.body)

    def after_put(self, providers: ResourceProviders, stored: StoredResource) -> None:
        """Side effects once the resource is stored (e.g. the subnets a vnet declares inline)."""

    def on_delete(self, providers: ResourceProviders, stored: StoredResource) -> bool:
        """Side effects of a DELETE; False keeps the generic removal from happening (e.g. soft delete)."""
        return True

    def list_action(self, providers: ResourceProviders, stored: StoredResource, action: str) -> dict[str, Any]:
        """A POST action such as listKeys; types without one answer as ARM does for an unknown action."""
        raise ResourceFailure(
            "InvalidResourceOperation", f"The resource type '{stored.type}' does not support the operation '{action}'."
        )


class UserAssignedIdentityHandler(ResourceHandler):
    """Microsoft.ManagedIdentity/userAssignedIdentities: principal and client ids are generated once."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        body = providers.base_body(request)
        previous = request.existing.body["properties"] if request.existing else {}
        body["properties"] = {
            "tenantId": request.subscription.tenant_id,
            "principalId": previous.get("principalId") or str(uuid.uuid4()),
            "clientId": previous.get("clientId") or str(uuid.uuid4()),
        }
        return body


class RoleAssignmentHandler(ResourceHandler):
    """Microsoft.Authorization/roleAssignments, an extension resource whose `scope` is computed from its id."""

    requires_parent = False

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        name = request.resource_id.leaf_name
        try:
            uuid.UUID(name)
        except ValueError:
            raise ResourceFailure(
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
            ) from None
        properties = request.properties
        for required in ("roleDefinitionId", "principalId"):
            if not properties.get(required):
                raise ResourceFailure("InvalidRoleAssignmentRequest", f"The property '{required}' is required.")
        scope = request.resource_id.scope
        if "/providers/" in scope.lower() and providers.store.resource(scope) is None:
            raise ResourceFailure("ResourceNotFound", f"The scope '{scope}' of the role assignment was not found.")
        if request.existing is not None:
            previous = request.existing.body["properties"]
            if (previous["principalId"], previous["roleDefinitionId"].lower()) != (
                properties["principalId"],
                str(properties["roleDefinitionId"]).lower(),
            ):
                raise ResourceFailure(
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                )
        # An assignment's scope is the scope of its id, so the ones at this scope sit under this prefix.
        for other in providers.store.resources_under(f"{scope}/providers/Microsoft.Authorization/roleAssignments"):
            if other.id.lower() == request.resource_id.id.lower():
                continue
            other_properties = other.body["properties"]
            if (
                other_properties["scope"].lower() == scope.lower()
                and other_properties["principalId"] == properties["principalId"]
                and other_properties["roleDefinitionId"].lower() == str(properties["roleDefinitionId"]).lower()
            ):
                raise ResourceFailure("RoleAssignmentExists", "The role assignment already exists.")
        body: dict[str, Any] = {
            "id": request.resource_id.id,
            "name": name,
            "type": "Microsoft.Authorization/roleAssignments",
        }
        body["properties"] = {
            "roleDefinitionId": properties["roleDefinitionId"],
            "principalId": properties["principalId"],
            "principalType": properties.get("principalType", "ServicePrincipal"),
            "scope": scope,
            "condition": properties.get("condition"),
            "description": properties.get("description"),
            "createdOn": request.existing.body["properties"]["createdOn"] if request.existing else now_timestamp(),
            "updatedOn": now_timestamp(),
        }
        return body


class LogAnalyticsWorkspaceHandler(ResourceHandler):
    """Microsoft.OperationalInsights/workspaces: a generated customerId (the workspace id)."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        body = providers.base_body(request)
        previous = request.existing.body["properties"] if request.existing else {}
        body["properties"].setdefault("sku", {"name": "PerGB2018"})
        body["properties"].setdefault("retentionInDays", 30)
        body["properties"]["customerId"] = previous.get("customerId") or str(uuid.uuid4())
        return body

    def after_put(self, providers: ResourceProviders, stored: StoredResource) -> None:
        stored.runtime.setdefault(
            "sharedKeys", {"primarySharedKey": _random_key(), "secondarySharedKey": _random_key()}
        )

    def list_action(self, providers: ResourceProviders, stored: StoredResource, action: str) -> dict[str, Any]:
        # Templates read the shared keys with listKeys(); the REST API calls the same action sharedKeys.
        if action in ("listkeys", "sharedkeys"):
            return dict(stored.runtime["sharedKeys"])
        return super().list_action(providers, stored, action)


class DiagnosticSettingHandler(ResourceHandler):
    """Microsoft.Insights/diagnosticSettings, an extension resource on the resource it watches."""

    requires_parent = False

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        scope = request.resource_id.scope
        if "/providers/" in scope.lower() and providers.store.resource(scope) is None:
            raise ResourceFailure(
                "ResourceNotFound", f"The resource '{scope}' of the diagnostic setting was not found."
            )
        workspace = request.properties.get("workspaceId")
        if workspace and providers.store.resource(workspace) is None:
            raise ResourceFailure("LinkedInvalidPropertyId", f"The workspace '{workspace}' was not found.")
        body = providers.base_body(request)
        body.pop("location", None)
        body["properties"].pop("provisioningState", None)
        return body


class PrivateDnsZoneHandler(ResourceHandler):
    """Microsoft.Network/privateDnsZones: global, with record set counts."""

    def render(self, providers: ResourceProviders, stored: StoredResource) -> dict[str, Any]:
        body = copy.deepcopy(stored.body)
        children = providers.store.resources_under(stored.id)
        record_sets = [
            child for child in children if child.type.lower() != "microsoft.network/privatednszones/virtualnetworklinks"
        ]
        links = [
            child for child in children if child.type.lower() == "microsoft.network/privatednszones/virtualnetworklinks"
        ]
        body["properties"].update(
            numberOfRecordSets=len(record_sets) + 1,  # the SOA record always exists
            maxNumberOfRecordSets=25000,
            numberOfVirtualNetworkLinks=len(links),
            maxNumberOfVirtualNetworkLinks=1000,
        )
        return body

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        body = providers.base_body(request)
        body["location"] = "global"
        body["etag"] = str(uuid.uuid4())
        return body


class PrivateDnsRecordSetHandler(ResourceHandler):
    """privateDnsZones/{A,AAAA,CNAME,...}: fqdn computed from the zone."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        body = providers.base_body(request)
        body.pop("location", None)
        zone, record = request.resource_id.name.split("/")
        body["properties"].pop("provisioningState", None)
        body["properties"]["fqdn"] = f"{zone}." if record == "@" else f"{record}.{zone}."
        body["properties"].setdefault("ttl", 3600)
        body["properties"]["isAutoRegistered"] = False
        body["etag"] = str(uuid.uuid4())
        return body


class VirtualNetworkLinkHandler(ResourceHandler):
    """privateDnsZones/virtualNetworkLinks: the linked vnet must exist."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        network_id = (request.properties.get("virtualNetwork") or {}).get("id")
        if not network_id or providers.store.resource(network_id) is None:
            raise ResourceFailure("InvalidResourceReference", f"Virtual network '{network_id}' was not found.")
        body = providers.base_body(request)
        body["location"] = "global"
        body["properties"].setdefault("registrationEnabled", False)
        body["properties"]["virtualNetworkLinkState"] = "Completed"
        body["etag"] = str(uuid.uuid4())
        return body


class ResourceProviders:
    """Dispatches PUT/GET/DELETE of provider resources to their type's handler."""

    def __init__(self, store: ArmStore) -> None:
        self.store = store
        self.handlers: dict[str, ResourceHandler] = {
            "microsoft.managedidentity/userassignedidentities": UserAssignedIdentityHandler(),
            "microsoft.authorization/roleassignments": RoleAssignmentHandler(),
            "microsoft.operationalinsights/workspaces": LogAnalyticsWorkspaceHandler(),
            "microsoft.insights/diagnosticsettings": DiagnosticSettingHandler(),
            "microsoft.network/privatednszones": PrivateDnsZoneHandler(),
            "microsoft.network/privatednszones/virtualnetworklinks": VirtualNetworkLinkHandler(),
        }
        for record_type in ("a", "aaaa", "cname", "mx", "ptr", "srv", "txt"):
            self.handlers[f"microsoft.network/privatednszones/{record_type}"] = PrivateDnsRecordSetHandler()
        self._generic = ResourceHandler()

    def register(self, resource_type: str, handler: ResourceHandler) -> None:
        """Add the handler of a type (the network, compute and Key Vault modules register theirs)."""
        self.handlers[resource_type.lower()] = handler

    def handler(self, resource_type: str) -> ResourceHandler:
        """The handler of a type, or the generic one."""
        return self.handlers.get(resource_type.lower(), self._generic)

    def base_body(self, request: PutRequest) -> dict[str, Any]:
        """id/name/type, the kept top-level keys and `properties` with provisioningState Succeeded."""
        resource_id = request.resource_id
        body: dict[str, Any] = {"id": resource_id.id, "name": resource_id.leaf_name, "type": resource_id.type}
        for key in RESOURCE_BODY_KEYS:
            if key in request.body:
                body[key] = copy.deepcopy(request.body[key])
        if resource_id.type.lower() in GLOBAL_TYPES:
            body["location"] = "global"
        properties = copy.deepcopy(request.properties)
        properties["provisioningState"] = "Succeeded"
        body["properties"] = properties
        return body

    def put(
        self, resource_id: ResourceId, body: dict[str, Any], subscription: Subscription, caller_app: str | None
    ) -> StoredResource:
        """Create or replace a resource; raises ResourceFailure when the provider refuses it."""
        with self.store.lock:
            handler = self.handler(resource_id.type)
            parent = resource_id.parent
            if parent is not None and handler.requires_parent and self.store.resource(parent.id) is None:
                raise ResourceFailure(
                    "ParentResourceNotFound",
                    "Can not perform requested operation on nested resource. "
                    f"Parent resource '{parent.name}' not found.",
                )
            existing = self.store.resource(resource_id.id)
            request = PutRequest(resource_id, body, existing, subscription, caller_app)
            prepared = handler.prepare(self, request)
            stored = StoredResource(
                id=resource_id.id,
                body=prepared,
                created_by_app=existing.created_by_app if existing else caller_app,
                runtime=existing.runtime if existing else {},
            )
            self.store.put_resource(stored)
            handler.after_put(self, stored)
            return stored

    def render(self, stored: StoredResource) -> dict[str, Any]:
        """The GET representation."""
        return self.handler(stored.type).render(self, stored)

    def get(self, resource_id: str) -> dict[str, Any] | None:
        """The GET representation of a resource id, or None."""
        stored = self.store.resource(resource_id)
        return self.render(stored) if stored else None

    def delete(self, resource_id: str) -> bool:
        """Delete a resource, its children and its extension resources; False when it did not exist."""
        with self.store.lock:
            stored = self.store.resource(resource_id)
            if stored is None:
                return False
            dependants = sorted(self.store.resources_under(stored.id), key=lambda item: -len(item.id))
            if not self.handler(stored.type).on_delete(self, stored):
                return True
            for dependant in dependants:
                if self.handler(dependant.type).on_delete(self, dependant):
                    self.store.remove_resource(dependant.id)
            self.store.remove_resource(stored.id)
            return True

    def list_action(self, resource_id: str, action: str) -> Any:
        """Run a POST action (listKeys, ...) on a resource; ResourceFailure when it is missing or has none."""
        with self.store.lock:
            stored = self.store.resource(resource_id)
            if stored is None:
                parsed = parse_resource_id(resource_id)
                raise ResourceFailure(
                    "ResourceNotFound", f"The Resource '{parsed.type}/{parsed.name}' was not found for '{action}'."
                )
            return self.handler(stored.type).list_action(self, stored, action.lower())

    def list_children(self, parent_id: str, child_type: str) -> list[dict[str, Any]]:
        """Direct children of one type, e.g. a vnet's subnets, a PLS's connections."""
        parent = parse_resource_id(parent_id)
        wanted = f"{parent.type}/{child_type}".lower()
        return [
            self.render(resource)
            for resource in self.store.resources_under(parent_id)
            if resource.type.lower() == wanted and parse_resource_id(resource.id).scope.lower() == parent.scope.lower()
        ]
