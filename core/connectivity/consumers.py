"""A consumer's identity as the customer gives it, the connection rule derived from it, and what to create.

Identifiers are parsed (ARM ids through azure-mgmt-core's parser, then checked against ARM's naming rules for the
resource type; NCC and Fabric workspace ids as UUIDs) and must be exactly their canonical form: a trailing newline,
a doubled slash or a child resource is refused before anything is recorded.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from azure.mgmt.core.tools import is_valid_resource_id, parse_resource_id
from pydantic import BaseModel

from core.connectivity.catalog import ConsumerKind
from core.errors import ValidationFailed

REQUEST_MESSAGE_PREFIX = "vast-connect"
MANAGED_ENDPOINT_PREFIX = "vast"
# The NCC's private endpoint connection names the NCC in its request message (the emulator's model of Databricks).
DATABRICKS_REQUEST_MESSAGE = "Databricks network connectivity configuration {ncc_id}"
NETWORK_API_VERSION = "2024-05-01"
DATA_FACTORY_API_VERSION = "2018-06-01"
SYNAPSE_DATA_PLANE_API_VERSION = "2020-12-01"


@dataclass(frozen=True)
class ArmType:
    namespace: str
    type: str
    name_pattern: re.Pattern[str]
    name_rule: str


# ARM's naming rules for the types a consumer is identified by (Azure resource naming rules per provider).
ARM_TYPES = {
    ConsumerKind.CUSTOMER_VNET: ArmType(
        "Microsoft.Network",
        "privateEndpoints",
        re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?"),
        "1-64 letters, digits, '_', '.', '-'; starts with a letter or digit, ends with a letter, digit or '_'",
    ),
    ConsumerKind.DATA_FACTORY: ArmType(
        "Microsoft.DataFactory",
        "factories",
        re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{1,61}[A-Za-z0-9])"),
        "3-63 letters, digits and '-'; starts and ends with a letter or digit",
    ),
    ConsumerKind.SYNAPSE: ArmType(
        "Microsoft.Synapse",
        "workspaces",
        re.compile(r"[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?"),
        "1-50 lower-case letters, digits and '-'; starts and ends with a letter or digit",
    ),
}
RESOURCE_GROUP = re.compile(r"[-\w._()]{0,89}[-\w_()]", re.UNICODE)
UUID_KINDS = {ConsumerKind.DATABRICKS_SERVERLESS: "NCC id", ConsumerKind.FABRIC: "Fabric workspace id"}


class ConsumerIdentity(BaseModel):
    """A parsed consumer identifier: its canonical form and the name its connection will carry."""

    kind: ConsumerKind
    resource_id: str
    subscription_id: str | None = None
    resource_group: str | None = None
    name: str


class ConnectionRule(BaseModel):
    """What a connection must show to match: every value set must equal the connection's."""

    endpoint_id: str | None = None
    endpoint_name: str | None = None
    request_message: str | None = None
    managed_endpoint_name: str | None = None


def _refuse(kind: ConsumerKind, message: str, value: str) -> ValidationFailed:
    return ValidationFailed(message, details={"consumer": kind.value, "resource_id": value[:200]})


def parse_consumer(kind: ConsumerKind, value: str) -> ConsumerIdentity:
    """The consumer's identity from what the admin typed; ValidationFailed for anything not exactly an id."""
    if kind in UUID_KINDS:
        try:
            parsed_uuid = uuid.UUID(value)
        except ValueError:
            raise _refuse(kind, f"{UUID_KINDS[kind]} must be a UUID", value) from None
        if str(parsed_uuid) != value.lower():
            raise _refuse(kind, f"{UUID_KINDS[kind]} must be a UUID in its 36-character form", value)
        return ConsumerIdentity(kind=kind, resource_id=str(parsed_uuid), name=str(parsed_uuid))
    arm_type = ARM_TYPES.get(kind)
    if arm_type is None:
        raise _refuse(kind, "this consumer cannot target a partner Private Link Service", value)
    if not value.isascii() or not value.isprintable() or not is_valid_resource_id(value):
        raise _refuse(kind, "not an Azure resource id", value)
    parts = {key: str(item) for key, item in parse_resource_id(value).items()}
    expected = f"{arm_type.namespace}/{arm_type.type}"
    found = f"{parts.get('namespace', '')}/{parts.get('type', '')}"
    if found.lower() != expected.lower() or parts.get("children"):
        raise _refuse(kind, f"expected the id of a {expected}, got a {found}", value)
    try:
        subscription = str(uuid.UUID(parts.get("subscription", "")))
    except ValueError:
        raise _refuse(kind, "the subscription in the id must be a UUID", value) from None
    group, name = parts.get("resource_group", ""), parts.get("name", "")
    if not RESOURCE_GROUP.fullmatch(group) or group.endswith("."):
        raise _refuse(kind, "the resource group name breaks ARM's naming rules", value)
    if not arm_type.name_pattern.fullmatch(name):
        raise _refuse(kind, f"the {arm_type.type} name breaks ARM's naming rules ({arm_type.name_rule})", value)
    canonical = f"/subscriptions/{subscription}/resourceGroups/{group}/providers/{expected}/{name}"
    if canonical.lower() != value.lower():
        raise _refuse(kind, f"not exactly a resource id; expected the form {canonical}", value)
    return ConsumerIdentity(
        kind=kind, resource_id=canonical, subscription_id=subscription, resource_group=group, name=name
    )


def connection_rule(identity: ConsumerIdentity) -> ConnectionRule:
    """The exact rule a connection from this consumer must meet, with the one-time values we issue."""
    token = secrets.token_hex(12)
    match identity.kind:
        case ConsumerKind.CUSTOMER_VNET:
            # The endpoint lives in the customer's subscription: its full id is known before it exists.
            return ConnectionRule(endpoint_id=identity.resource_id, request_message=f"{REQUEST_MESSAGE_PREFIX} {token}")
        case ConsumerKind.DATA_FACTORY | ConsumerKind.SYNAPSE:
            # No request message reaches the PLS; the endpoint is named '<factory|workspace>.<endpoint name>'.
            managed = f"{MANAGED_ENDPOINT_PREFIX}-{token}"
            return ConnectionRule(endpoint_name=f"{identity.name}.{managed}", managed_endpoint_name=managed)
        case ConsumerKind.DATABRICKS_SERVERLESS:
            return ConnectionRule(request_message=DATABRICKS_REQUEST_MESSAGE.format(ncc_id=identity.resource_id))
        case ConsumerKind.FABRIC:
            managed = f"{MANAGED_ENDPOINT_PREFIX}-{token[:12]}"
            return ConnectionRule(request_message=f"{REQUEST_MESSAGE_PREFIX} {token}", managed_endpoint_name=managed)
    raise _refuse(identity.kind, "this consumer cannot target a partner Private Link Service", identity.resource_id)


class Instructions(BaseModel):
    """What the customer creates on their side, filled in with our PLS, alias and FQDNs."""

    summary: str
    rest: dict[str, Any]
    arm_template_resource: dict[str, Any] | None
    cli: str


def instructions(
    identity: ConsumerIdentity, rule: ConnectionRule, *, pls_id: str, pls_alias: str, fqdns: list[str], region: str
) -> Instructions:
    """The REST call, ARM resource and CLI command for this consumer."""
    match identity.kind:
        case ConsumerKind.CUSTOMER_VNET:
            name = identity.name
            body = {
                "location": region,
                "properties": {
                    "subnet": {"id": "<your subnet resource id>"},
                    "manualPrivateLinkServiceConnections": [
                        {
                            "name": name,
                            "properties": {"privateLinkServiceId": pls_id, "requestMessage": rule.request_message},
                        }
                    ],
                },
            }
            return Instructions(
                summary=f"Create the private endpoint {name} in your virtual network against our Private Link "
                f"Service (alias {pls_alias}) with the request message shown; it is approved when it arrives.",
                rest={
                    "method": "PUT",
                    "url": f"https://management.azure.com{identity.resource_id}?api-version={NETWORK_API_VERSION}",
                    "body": body,
                },
                arm_template_resource={
                    "type": "Microsoft.Network/privateEndpoints",
                    "apiVersion": NETWORK_API_VERSION,
                    "name": name,
                    **body,
                },
                cli=(
                    f"az network private-endpoint create --subscription {identity.subscription_id} "
                    f"--resource-group {identity.resource_group} --name {name} --location {region} "
                    "--vnet-name <your vnet> --subnet <your subnet> "
                    f"--private-connection-resource-id {pls_id} --connection-name {name} "
                    f"--manual-request true --request-message '{rule.request_message}'"
                ),
            )
        case ConsumerKind.DATA_FACTORY:
            managed = rule.managed_endpoint_name
            properties = {"privateLinkResourceId": pls_id, "fqdns": fqdns}
            return Instructions(
                summary=f"Create the managed private endpoint {managed} in the factory's managed virtual network "
                "against our Private Link Service with these FQDNs; it is approved when it arrives.",
                rest={
                    "method": "PUT",
                    "url": f"https://management.azure.com{identity.resource_id}/managedVirtualNetworks/default/"
                    f"managedPrivateEndpoints/{managed}?api-version={DATA_FACTORY_API_VERSION}",
                    "body": {"properties": properties},
                },
                arm_template_resource={
                    "type": "Microsoft.DataFactory/factories/managedVirtualNetworks/managedPrivateEndpoints",
                    "apiVersion": DATA_FACTORY_API_VERSION,
                    "name": f"{identity.name}/default/{managed}",
                    "properties": properties,
                },
                cli=(
                    f"az datafactory managed-private-endpoint create --subscription {identity.subscription_id} "
                    f"--resource-group {identity.resource_group} --factory-name {identity.name} "
                    f"--managed-virtual-network-name default --name {managed} "
                    f"--private-link-resource-id {pls_id} --fqdns {' '.join(fqdns)}"
                ),
            )
        case ConsumerKind.SYNAPSE:
            managed = rule.managed_endpoint_name
            properties = {"privateLinkResourceId": pls_id, "fqdns": fqdns}
            return Instructions(
                summary=f"Create the managed private endpoint {managed} in the workspace's managed virtual network "
                "against our Private Link Service with these FQDNs; it is approved when it arrives.",
                rest={
                    "method": "PUT",
                    "url": f"https://{identity.name}.dev.azuresynapse.net/managedVirtualNetworks/default/"
                    f"managedPrivateEndpoints/{managed}?api-version={SYNAPSE_DATA_PLANE_API_VERSION}",
                    "body": {"properties": properties},
                },
                arm_template_resource=None,  # the workspace's data plane holds managed private endpoints
                cli=(
                    f"az synapse managed-private-endpoints create --workspace-name {identity.name} "
                    f"--pe-name {managed} --file '{json.dumps(properties)}'"
                ),
            )
        case ConsumerKind.DATABRICKS_SERVERLESS:
            rule_body = {"resource_id": pls_id, "domain_names": fqdns}
            return Instructions(
                summary="Add a private endpoint rule to your network connectivity configuration for our Private "
                "Link Service with these domain names; it is approved when it arrives (Public Preview).",
                rest={
                    "method": "POST",
                    "url": "https://accounts.azuredatabricks.net/api/2.0/accounts/<your account id>/"
                    f"network-connectivity-configs/{identity.resource_id}/private-endpoint-rules",
                    "body": rule_body,
                },
                arm_template_resource=None,  # an account-level Databricks object, not an ARM resource
                cli=(
                    "databricks account network-connectivity create-private-endpoint-rule "
                    f"{identity.resource_id} --json '{json.dumps(rule_body)}'"
                ),
            )
        case ConsumerKind.FABRIC:
            fabric_body = {
                "name": rule.managed_endpoint_name,
                "targetPrivateLinkResourceId": pls_id,
                "targetFQDNs": fqdns,
                "requestMessage": rule.request_message,
            }
            url = f"https://api.fabric.microsoft.com/v1/workspaces/{identity.resource_id}/managedPrivateEndpoints"
            return Instructions(
                summary="Create a workspace managed private endpoint against our Private Link Service with these "
                "FQDNs and this request message; it is approved when it arrives (the API is in Preview).",
                rest={"method": "POST", "url": url, "body": fabric_body},
                arm_template_resource=None,  # a Fabric workspace object, not an ARM resource
                cli=(
                    f"az rest --method post --resource https://api.fabric.microsoft.com --url {url} "
                    f"--body '{json.dumps(fabric_body)}'"
                ),
            )
    raise _refuse(identity.kind, "this consumer cannot target a partner Private Link Service", identity.resource_id)
