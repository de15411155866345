"""Azure services connecting to clusters, as the scenario (and the tests) play them.

A consumer's service reads only the filled-in REST call "connect a service" answered with, and the ARM emulator
creates the connection the way that service does (`/_emulator/private-endpoints`).
"""

from __future__ import annotations

import uuid
from typing import Any

# The kinds that can target a partner Private Link Service (the others get the documented alternative instead).
CONNECTABLE = (
    "customer-vnet",
    "data-factory-managed-vnet",
    "synapse-managed-vnet",
    "databricks-serverless",
    "fabric-managed-vnet",
)


def consumer_resource_id(consumer: str, subscription_id: str, label: str) -> str:
    """An identifier of the customer's resource of this kind, in their subscription."""
    group = f"/subscriptions/{subscription_id}/resourceGroups/analytics-{label}"
    return {
        "customer-vnet": f"{group}/providers/Microsoft.Network/privateEndpoints/pe-{label}",
        "data-factory-managed-vnet": f"{group}/providers/Microsoft.DataFactory/factories/adf-{label}",
        "synapse-managed-vnet": f"{group}/providers/Microsoft.Synapse/workspaces/syn-{label}",
        "databricks-serverless": str(uuid.uuid5(uuid.NAMESPACE_URL, f"ncc/{label}")),
        "fabric-managed-vnet": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fabric/{label}")),
    }[consumer]


def endpoint_request(consumer: str, resource_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The emulator's private endpoint request that does what the answer's REST call asks of the service."""
    rest = answer["instructions"]["rest"]
    body = rest["body"]
    request: dict[str, Any] = {"source_kind": consumer}
    if consumer == "customer-vnet":
        connection = body["properties"]["manualPrivateLinkServiceConnections"][0]["properties"]
        parts = resource_id.split("/")
        return request | {
            "target": connection["privateLinkServiceId"],
            "request_message": connection["requestMessage"],
            "consumer_subscription_id": parts[2],
            "consumer_resource_group": parts[4],
            "name": parts[-1],
        }
    if consumer in ("data-factory-managed-vnet", "synapse-managed-vnet"):
        return request | {
            "target": body["properties"]["privateLinkResourceId"],
            "consumer_resource_id": resource_id,
            "name": rest["url"].split("?")[0].rsplit("/", 1)[-1],
        }
    if consumer == "databricks-serverless":
        return request | {"target": body["resource_id"], "consumer_resource_id": resource_id, "name": "rule"}
    return request | {
        "target": body["targetPrivateLinkResourceId"],
        "consumer_resource_id": resource_id,
        "name": body["name"],
        "request_message": body["requestMessage"],
    }
