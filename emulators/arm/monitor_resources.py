"""Azure Monitor's Logs Ingestion path: data collection endpoints, data collection rules, workspace tables.

A rule is refused, as Azure Monitor refuses it, when its endpoint or destination workspace does not exist, a
data flow reads a stream the rule does not declare or writes to an unknown destination, or its custom output
stream has no table in the workspace. Endpoints and rules get their immutable ids and ingestion URLs.
"""

from __future__ import annotations

import hashlib
from typing import Any

from emulators.arm.errors import ResourceFailure
from emulators.arm.resource_providers import PutRequest, ResourceHandler, ResourceProviders

WORKSPACE_TYPE = "microsoft.operationalinsights/workspaces"


def _hex_id(resource_id: str) -> str:
    return hashlib.sha256(resource_id.lower().encode()).hexdigest()[:32]


class DataCollectionEndpointHandler(ResourceHandler):
    """dataCollectionEndpoints: logs ingestion and configuration access URLs in the endpoint's region."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        body = providers.base_body(request)
        name = request.resource_id.leaf_name.lower()
        location = str(request.body.get("location", "")).replace(" ", "").lower()
        host = f"{name}-{_hex_id(request.resource_id.id)[:4]}.{location}-1"
        properties = body["properties"]
        properties["immutableId"] = f"dce-{_hex_id(request.resource_id.id)}"
        properties["logsIngestion"] = {"endpoint": f"https://{host}.ingest.monitor.azure.com"}
        properties["configurationAccess"] = {"endpoint": f"https://{host}.handler.control.monitor.azure.com"}
        properties.setdefault("networkAcls", {"publicNetworkAccess": "Enabled"})
        return body


class DataCollectionRuleHandler(ResourceHandler):
    """dataCollectionRules: streams, destinations and flows checked against each other and the workspace."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        properties = request.properties
        endpoint_id = properties.get("dataCollectionEndpointId")
        if endpoint_id and providers.store.resource(str(endpoint_id)) is None:
            raise ResourceFailure("InvalidPayload", f"The data collection endpoint '{endpoint_id}' was not found.")
        declared = set((properties.get("streamDeclarations") or {}).keys())
        for stream in declared:
            if not stream.startswith("Custom-"):
                raise ResourceFailure("InvalidPayload", f"Declared stream '{stream}' must start with 'Custom-'.")
        workspaces: dict[str, str] = {}
        for destination in ((properties.get("destinations") or {}).get("logAnalytics")) or []:
            workspace_id = str(destination.get("workspaceResourceId", ""))
            if providers.store.resource(workspace_id) is None:
                raise ResourceFailure("InvalidPayload", f"The destination workspace '{workspace_id}' was not found.")
            workspaces[str(destination.get("name"))] = workspace_id
        for flow in properties.get("dataFlows") or []:
            for stream in flow.get("streams") or []:
                if stream.startswith("Custom-") and stream not in declared:
                    raise ResourceFailure("InvalidPayload", f"Data flow stream '{stream}' is not declared.")
            for destination in flow.get("destinations") or []:
                if destination not in workspaces:
                    raise ResourceFailure("InvalidPayload", f"Data flow destination '{destination}' is not defined.")
                output = str(flow.get("outputStream") or (flow.get("streams") or [""])[0])
                if output.startswith("Custom-"):
                    table = f"{workspaces[destination]}/tables/{output.removeprefix('Custom-')}"
                    if providers.store.resource(table) is None:
                        raise ResourceFailure(
                            "InvalidOutputTable",
                            f"Table for output stream '{output}' is not available for destination.",
                        )
        body = providers.base_body(request)
        body["properties"]["immutableId"] = f"dcr-{_hex_id(request.resource_id.id)}"
        return body


class WorkspaceTableHandler(ResourceHandler):
    """workspaces/tables: a custom table's name ends in _CL and its schema has a TimeGenerated datetime column."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        name = request.resource_id.leaf_name
        schema = request.properties.get("schema") or {}
        if name.endswith("_CL"):
            columns = {column.get("name"): column.get("type") for column in schema.get("columns") or []}
            if columns.get("TimeGenerated") != "datetime":
                raise ResourceFailure(
                    "InvalidParameter", f"The custom table '{name}' needs a 'TimeGenerated' column of type datetime."
                )
        body = providers.base_body(request)
        body.pop("location", None)
        body["properties"].setdefault("retentionInDays", 30)
        body["properties"].setdefault("plan", "Analytics")
        return body


def register_monitor_handlers(providers: ResourceProviders) -> None:
    """Add the data collection and workspace table handlers to the registry."""
    providers.register("Microsoft.Insights/dataCollectionEndpoints", DataCollectionEndpointHandler())
    providers.register("Microsoft.Insights/dataCollectionRules", DataCollectionRuleHandler())
    providers.register("Microsoft.OperationalInsights/workspaces/tables", WorkspaceTableHandler())
