"""Microsoft.Network resources: virtual networks and subnets, load balancers, Private Link Services and the
private endpoint connections consumers make to them."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from emulators.arm.errors import ArmError, ResourceFailure
from emulators.arm.network_addresses import allocate_address
from emulators.arm.resource_ids import ResourceId, build_resource_id, parse_resource_id
from emulators.arm.resource_providers import PutRequest, ResourceHandler, ResourceProviders, now_timestamp
from emulators.arm.store import StoredResource

SUBNET_TYPE = "microsoft.network/virtualnetworks/subnets"
CONNECTION_TYPE = "Microsoft.Network/privateLinkServices/privateEndpointConnections"
MAX_PLS_IP_CONFIGURATIONS = 8
# Where a consumer's private endpoint lives, by the kind of network it comes from. Managed VNets of Azure
# services put the endpoint in a resource group the service manages.
ENDPOINT_SOURCE_KINDS = {
    "customer-vnet": "{resource_group}",
    "synapse-managed-vnet": "synapse-managed-{suffix}",
    "fabric-managed-vnet": "fabric-managed-{suffix}",
    "databricks-serverless": "databricks-serverless-{suffix}",
    "ai-search-shared-private-link": "search-shared-private-link-{suffix}",
    "data-factory-managed-vnet": "datafactory-managed-{suffix}",
}
# A managed service's endpoint lives in a subscription the service (Microsoft, Databricks) holds, one per kind
# here; the consumer's own subscription never appears on the connection.
MANAGED_SUBSCRIPTIONS = {
    kind: str(uuid.uuid5(uuid.NAMESPACE_URL, f"managed-endpoints/{kind}"))
    for kind in ENDPOINT_SOURCE_KINDS
    if kind != "customer-vnet"
}
DATABRICKS_REQUEST_MESSAGE = "Databricks network connectivity configuration {ncc_id}"


def managed_endpoint(
    source_kind: str, consumer_resource_id: str, managed_endpoint_name: str, request_message: str
) -> tuple[str, str]:
    """The endpoint name and request message a managed service gives its connection (as the emulator models them).

    Data Factory and Synapse name the endpoint '<factory|workspace>.<managed private endpoint>' and carry no message
    of the customer's; Databricks names the NCC in the message; Fabric forwards the customer's requestMessage.
    """
    if source_kind in ("data-factory-managed-vnet", "synapse-managed-vnet"):
        owner = parse_resource_id(consumer_resource_id).leaf_name
        return f"{owner}.{managed_endpoint_name}", ""
    if source_kind == "databricks-serverless":
        return f"databricks-{uuid.uuid4().hex[:20]}", DATABRICKS_REQUEST_MESSAGE.format(ncc_id=consumer_resource_id)
    if source_kind == "fabric-managed-vnet":
        return f"{consumer_resource_id}.{managed_endpoint_name}", request_message
    return f"{consumer_resource_id.rsplit('/', 1)[-1]}.{managed_endpoint_name}", request_message


def _subnet(providers: ResourceProviders, subnet_id: str | None, owner: str) -> StoredResource:
    stored = providers.store.resource(subnet_id) if subnet_id else None
    if stored is None or stored.type.lower() != SUBNET_TYPE:
        raise ResourceFailure(
            "InvalidResourceReference", f"Resource {subnet_id} referenced by resource {owner} was not found."
        )
    return stored


def _release_addresses(providers: ResourceProviders, stored: StoredResource | None) -> None:
    if stored is None:
        return
    for subnet_id, address in stored.runtime.get("addresses", []):
        subnet = providers.store.resource(subnet_id)
        if subnet is not None:
            subnet.runtime.setdefault("allocated", set()).discard(address)
    stored.runtime["addresses"] = []


def _allocate_configurations(
    providers: ResourceProviders,
    request: PutRequest,
    configurations: list[dict[str, Any]],
    collection: str,
) -> list[dict[str, Any]]:
    """Give each IP configuration an id and a private address from its subnet (keeping earlier addresses)."""
    previous: dict[str, str] = {}
    if request.existing is not None:
        for item in request.existing.body["properties"].get(collection, []):
            address = item.get("properties", {}).get("privateIPAddress")
            if address:
                previous[item["name"].lower()] = address
        _release_addresses(providers, request.existing)
    addresses: list[tuple[str, str]] = []
    result = []
    for item in configurations:
        item = copy.deepcopy(item)
        properties = item.setdefault("properties", {})
        subnet = _subnet(providers, (properties.get("subnet") or {}).get("id"), request.resource_id.id)
        prefix = (
            subnet.body["properties"].get("addressPrefix")
            or (subnet.body["properties"].get("addressPrefixes") or [""])[0]
        )
        static = properties.get("privateIPAllocationMethod", "Dynamic").lower() == "static"
        requested = properties.get("privateIPAddress") if static else previous.get(str(item.get("name", "")).lower())
        try:
            address = allocate_address(prefix, subnet.runtime.setdefault("allocated", set()), requested)
        except ResourceFailure:
            for allocated_subnet_id, allocated in addresses:
                providers.store.resource(allocated_subnet_id).runtime["allocated"].discard(allocated)  # type: ignore[union-attr]
            raise
        addresses.append((subnet.id, address))
        properties["privateIPAddress"] = address
        properties.setdefault("privateIPAllocationMethod", "Dynamic")
        properties.setdefault("privateIPAddressVersion", "IPv4")
        properties["subnet"] = {"id": subnet.id}
        properties["provisioningState"] = "Succeeded"
        item["id"] = f"{request.resource_id.id}/{collection}/{item['name']}"
        result.append(item)
    return result


def _with_ids(parent_id: str, collection: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for item in items:
        item = copy.deepcopy(item)
        item["id"] = f"{parent_id}/{collection}/{item['name']}"
        item.setdefault("properties", {})["provisioningState"] = "Succeeded"
        result.append(item)
    return result


class VirtualNetworkHandler(ResourceHandler):
    """virtualNetworks: subnets given inline become child resources; GET assembles them back."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        if not (request.properties.get("addressSpace") or {}).get("addressPrefixes"):
            raise ResourceFailure(
                "InvalidRequestFormat", "Cannot parse the request: addressSpace.addressPrefixes is required."
            )
        body = providers.base_body(request)
        body["properties"].setdefault("resourceGuid", str(uuid.uuid4()))
        return body

    def after_put(self, providers: ResourceProviders, stored: StoredResource) -> None:
        inline = stored.body["properties"].pop("subnets", None)
        if inline is None:
            return
        declared = {subnet["name"].lower() for subnet in inline}
        for existing in providers.list_children(stored.id, "subnets"):
            if existing["name"].lower() not in declared:
                providers.delete(existing["id"])
        subscription = providers.store.subscription(parse_resource_id(stored.id).subscription_id or "")
        for subnet in inline:
            subnet_id = parse_resource_id(f"{stored.id}/subnets/{subnet['name']}")
            providers.put(subnet_id, {"properties": subnet.get("properties", {})}, subscription, stored.created_by_app)  # type: ignore[arg-type]

    def render(self, providers: ResourceProviders, stored: StoredResource) -> dict[str, Any]:
        body = copy.deepcopy(stored.body)
        body["properties"]["subnets"] = providers.list_children(stored.id, "subnets")
        return body


class SubnetHandler(ResourceHandler):
    """virtualNetworks/subnets: policies default like Azure's (PLS policies enabled until turned off)."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        properties = request.properties
        if not properties.get("addressPrefix") and not properties.get("addressPrefixes"):
            raise ResourceFailure("InvalidRequestFormat", "Subnet addressPrefix is required.")
        body = providers.base_body(request)
        body.pop("location", None)
        body["properties"].setdefault("privateLinkServiceNetworkPolicies", "Enabled")
        body["properties"].setdefault("privateEndpointNetworkPolicies", "Disabled")
        body["type"] = "Microsoft.Network/virtualNetworks/subnets"
        return body


class LoadBalancerHandler(ResourceHandler):
    """loadBalancers: frontend private IPs allocated from their subnets; child collections get ids."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        body = providers.base_body(request)
        body.setdefault("sku", {"name": "Basic", "tier": "Regional"})
        properties = body["properties"]
        properties["frontendIPConfigurations"] = _allocate_configurations(
            providers, request, request.properties.get("frontendIPConfigurations", []), "frontendIPConfigurations"
        )
        for collection in ("backendAddressPools", "loadBalancingRules", "probes", "inboundNatRules", "outboundRules"):
            properties[collection] = _with_ids(
                request.resource_id.id, collection, request.properties.get(collection, [])
            )
        properties["resourceGuid"] = (
            request.existing.body["properties"].get("resourceGuid") if request.existing else None
        ) or str(uuid.uuid4())
        return body

    def after_put(self, providers: ResourceProviders, stored: StoredResource) -> None:
        stored.runtime["addresses"] = allocated_addresses(stored)

    def on_delete(self, providers: ResourceProviders, stored: StoredResource) -> bool:
        for pls in providers.store.resources_of_type("microsoft.network/privatelinkservices"):
            for frontend in pls.body["properties"].get("loadBalancerFrontendIpConfigurations", []):
                if frontend.get("id", "").lower().startswith(stored.id.lower() + "/"):
                    raise ArmError(
                        400,
                        "InUseLoadBalancerCannotBeDeleted",
                        f"Load balancer {stored.id} is in use by private link service {pls.id}.",
                    )
        _release_addresses(providers, stored)
        return True


def allocated_addresses(stored: StoredResource) -> list[tuple[str, str]]:
    """(subnet id, address) pairs a resource holds: kept beside it so they are released on delete or re-PUT."""
    addresses: list[tuple[str, str]] = []
    for collection in ("frontendIPConfigurations", "ipConfigurations"):
        for item in stored.body["properties"].get(collection, []):
            item_properties = item.get("properties", {})
            if item_properties.get("privateIPAddress") and item_properties.get("subnet"):
                addresses.append((item_properties["subnet"]["id"], item_properties["privateIPAddress"]))
    return addresses


class PrivateLinkServiceHandler(ResourceHandler):
    """privateLinkServices: needs a Standard LB frontend and subnets with PLS network policies disabled."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        properties = request.properties
        frontends = properties.get("loadBalancerFrontendIpConfigurations") or []
        if not frontends:
            raise ResourceFailure(
                "PrivateLinkServiceWithoutLoadBalancerFrontend",
                "Private link service must reference at least one load balancer frontend IP configuration.",
            )
        for frontend in frontends:
            frontend_id = frontend.get("id", "")
            balancer_id = (
                frontend_id.rsplit("/frontendIPConfigurations/", 1)[0]
                if "/frontendipconfigurations/" in frontend_id.lower()
                else ""
            )
            balancer = providers.store.resource(balancer_id) if balancer_id else None
            if balancer is None:
                raise ResourceFailure(
                    "InvalidResourceReference",
                    f"Resource {frontend_id} referenced by resource {request.resource_id.id} was not found.",
                )
            if str((balancer.body.get("sku") or {}).get("name", "")).lower() != "standard":
                raise ResourceFailure(
                    "PrivateLinkServiceNotSupportedForBasicLoadBalancer",
                    f"Private link service {request.resource_id.id} can only reference a frontend of a Standard SKU "
                    f"load balancer; {balancer_id} is {balancer.body.get('sku', {}).get('name')}.",
                )
            names = {item["name"].lower() for item in balancer.body["properties"].get("frontendIPConfigurations", [])}
            if frontend_id.rsplit("/", 1)[-1].lower() not in names:
                raise ResourceFailure(
                    "InvalidResourceReference", f"Frontend IP configuration {frontend_id} was not found."
                )
        configurations = properties.get("ipConfigurations") or []
        if not 1 <= len(configurations) <= MAX_PLS_IP_CONFIGURATIONS:
            raise ResourceFailure(
                "PrivateLinkServiceIpConfigurationCountOutOfRange",
                f"A private link service needs between 1 and {MAX_PLS_IP_CONFIGURATIONS} IP configurations.",
            )
        for configuration in configurations:
            subnet = _subnet(
                providers, (configuration.get("properties", {}).get("subnet") or {}).get("id"), request.resource_id.id
            )
            if str(subnet.body["properties"].get("privateLinkServiceNetworkPolicies", "Enabled")).lower() != "disabled":
                raise ResourceFailure(
                    "PrivateLinkServiceNetworkPoliciesCannotBeEnabledOnPrivateLinkServiceSubnet",
                    f"Private link service network policies cannot be enabled on the subnet {subnet.id} of a "
                    "private link service.",
                )
        body = providers.base_body(request)
        body["properties"]["ipConfigurations"] = _allocate_configurations(
            providers, request, configurations, "ipConfigurations"
        )
        body["properties"]["loadBalancerFrontendIpConfigurations"] = [{"id": item["id"]} for item in frontends]
        previous = request.existing.body["properties"] if request.existing else {}
        location = str(request.body.get("location", "")).lower().replace(" ", "")
        body["properties"]["alias"] = (
            previous.get("alias")
            or f"{request.resource_id.leaf_name}.{uuid.uuid4()}.{location}.azure.privatelinkservice"
        )
        body["properties"]["visibility"] = {
            "subscriptions": list((properties.get("visibility") or {}).get("subscriptions", []))
        }
        body["properties"]["autoApproval"] = {
            "subscriptions": list((properties.get("autoApproval") or {}).get("subscriptions", []))
        }
        body["properties"]["enableProxyProtocol"] = bool(properties.get("enableProxyProtocol", False))
        body["properties"]["fqdns"] = list(properties.get("fqdns", []))
        body["properties"].pop("privateEndpointConnections", None)
        scope = parse_resource_id(request.resource_id.id).scope
        body["properties"]["networkInterfaces"] = previous.get("networkInterfaces") or [
            {
                "id": (
                    f"{scope}/providers/Microsoft.Network/networkInterfaces/"
                    f"{request.resource_id.leaf_name}.nic.{uuid.uuid4()}"
                )
            }
        ]
        return body

    def after_put(self, providers: ResourceProviders, stored: StoredResource) -> None:
        stored.runtime["addresses"] = allocated_addresses(stored)

    def render(self, providers: ResourceProviders, stored: StoredResource) -> dict[str, Any]:
        body = copy.deepcopy(stored.body)
        body["properties"]["privateEndpointConnections"] = providers.list_children(
            stored.id, "privateEndpointConnections"
        )
        return body

    def on_delete(self, providers: ResourceProviders, stored: StoredResource) -> bool:
        _release_addresses(providers, stored)
        return True


class PrivateEndpointConnectionHandler(ResourceHandler):
    """privateLinkServices/privateEndpointConnections: consumers create them; the provider only approves or rejects."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        if request.existing is None:
            raise ResourceFailure(
                "PrivateEndpointConnectionNotFound",
                f"Private endpoint connection {request.resource_id.id} was not found; consumers create connections.",
            )
        body = copy.deepcopy(request.existing.body)
        state = request.properties.get("privateLinkServiceConnectionState") or {}
        current = body["properties"]["privateLinkServiceConnectionState"]
        status = str(state.get("status", current["status"]))
        if status not in ("Approved", "Rejected", "Pending", "Removed"):
            raise ResourceFailure("InvalidPrivateEndpointConnectionStatus", f"Status '{status}' is not valid.")
        if current["status"] == "Rejected" and status != "Rejected":
            raise ResourceFailure(
                "CannotChangeRejectedPrivateEndpointConnection",
                "A rejected private endpoint connection cannot be approved; the consumer must create a new "
                "private endpoint.",
            )
        current.update(status=status, description=state.get("description", current.get("description", "")))
        current["actionsRequired"] = state.get("actionsRequired", "None")
        body["etag"] = f'W/"{uuid.uuid4()}"'
        return body


def find_private_link_service(providers: ResourceProviders, alias_or_id: str) -> StoredResource:
    """The PLS named by alias (case-insensitive) or resource id; 404 when there is none."""
    for resource in providers.store.resources_of_type("microsoft.network/privatelinkservices"):
        if (
            resource.id.lower() == alias_or_id.lower().rstrip("/")
            or str(resource.body["properties"].get("alias", "")).lower() == alias_or_id.lower()
        ):
            return resource
    raise ArmError(404, "PrivateLinkServiceNotFound", f"Private link service '{alias_or_id}' was not found.")


def connect_private_endpoint(
    providers: ResourceProviders,
    alias_or_id: str,
    consumer_subscription_id: str | None,
    endpoint_name: str,
    request_message: str,
    source_kind: str,
    consumer_resource_group: str,
    location: str | None,
    consumer_resource_id: str | None = None,
) -> dict[str, Any]:
    """A consumer's private endpoint against a PLS: Approved when its subscription is auto-approved, else Pending.

    With `consumer_resource_id` (the factory, workspace or NCC a managed service creates the endpoint for), the
    endpoint lives in the service's own subscription and carries the service's name and message; `endpoint_name`
    is then the managed private endpoint's name as the customer gave it.
    """
    if source_kind not in ENDPOINT_SOURCE_KINDS:
        raise ArmError(
            400, "InvalidSourceKind", f"Unknown source kind '{source_kind}'; known: {', '.join(ENDPOINT_SOURCE_KINDS)}."
        )
    if consumer_resource_id is not None and source_kind in MANAGED_SUBSCRIPTIONS:
        consumer_subscription_id = MANAGED_SUBSCRIPTIONS[source_kind]
        try:
            endpoint_name, request_message = managed_endpoint(
                source_kind, consumer_resource_id, endpoint_name, request_message
            )
        except ValueError as error:
            raise ArmError(400, "InvalidConsumerResourceId", str(error)) from error
    if consumer_subscription_id is None:
        raise ArmError(400, "MissingConsumerSubscription", "A private endpoint needs the consumer's subscription.")
    with providers.store.lock:
        service = find_private_link_service(providers, alias_or_id)
        service_id = parse_resource_id(service.id)
        properties = service.body["properties"]
        visible = {item.lower() for item in properties["visibility"]["subscriptions"]}
        consumer = consumer_subscription_id.lower()
        if consumer != (service_id.subscription_id or "").lower() and "*" not in visible and consumer not in visible:
            raise ArmError(
                403,
                "PrivateLinkServiceNotVisibleToSubscription",
                f"Private link service {alias_or_id} is not visible to subscription {consumer_subscription_id}.",
            )
        auto = {item.lower() for item in properties["autoApproval"]["subscriptions"]}
        approved = consumer in auto or "*" in auto
        suffix = uuid.uuid4().hex[:12]
        group = ENDPOINT_SOURCE_KINDS[source_kind].format(resource_group=consumer_resource_group, suffix=suffix)
        endpoint_id = build_resource_id(
            f"/subscriptions/{consumer_subscription_id}/resourceGroups/{group}",
            "Microsoft.Network/privateEndpoints",
            [endpoint_name],
        )
        connection_name = f"{endpoint_name}.{uuid.uuid4()}"
        connection_id = ResourceId(
            service_id.scope, f"{service_id.type}/privateEndpointConnections", f"{service_id.name}/{connection_name}"
        )
        body = {
            "id": connection_id.id,
            "name": connection_name,
            "type": CONNECTION_TYPE,
            "etag": f'W/"{uuid.uuid4()}"',
            "properties": {
                "provisioningState": "Succeeded",
                "privateEndpoint": {"id": endpoint_id},
                "privateEndpointLocation": location or service.body.get("location", ""),
                "linkIdentifier": str(uuid.uuid4().int % 2**31),
                "privateLinkServiceConnectionState": {
                    "status": "Approved" if approved else "Pending",
                    "description": "Auto-Approved" if approved else request_message,
                    "actionsRequired": "None",
                },
                "requestMessage": request_message,
                "sourceKind": source_kind,
                "createdOn": now_timestamp(),
            },
        }
        stored = StoredResource(id=connection_id.id, body=body)
        providers.store.put_resource(stored)
        return providers.render(stored)


def register_network_handlers(providers: ResourceProviders) -> None:
    """Add the Microsoft.Network handlers to the registry."""
    providers.register("Microsoft.Network/virtualNetworks", VirtualNetworkHandler())
    providers.register("Microsoft.Network/virtualNetworks/subnets", SubnetHandler())
    providers.register("Microsoft.Network/loadBalancers", LoadBalancerHandler())
    providers.register("Microsoft.Network/privateLinkServices", PrivateLinkServiceHandler())
    providers.register(
        "Microsoft.Network/privateLinkServices/privateEndpointConnections", PrivateEndpointConnectionHandler()
    )
