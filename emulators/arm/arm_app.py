"""The ARM HTTP surface: authentication, subscription access, throttling, and routing of ARM paths.

ARM paths are matched case-insensitively (the SDKs send `resourcegroups`), so one catch-all route hands
every request to `ArmDispatcher`, which runs in a worker thread because providers may start vault servers.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from emulators.arm.compute_resources import SCALE_SET_TYPE, check_quota, scale_set_action, scale_set_instance_view
from emulators.arm.control_api import build_control_router
from emulators.arm.errors import ArmError, ResourceFailure, not_found
from emulators.arm.keyvault_resources import public_deleted_vault, purge_deleted_vault
from emulators.arm.locations import check_resource_group_location, check_resource_group_name, list_locations
from emulators.arm.resource_ids import ResourceId, parse_resource_id, resource_group_scope
from emulators.arm.store import ResourceGroup, Subscription
from emulators.common.faults import FaultInjectionMiddleware, fault_control_router
from emulators.entra import InvalidTokenError

if TYPE_CHECKING:
    from emulators.arm.emulator import ArmEmulator

ARM_AUDIENCES = {"https://management.azure.com", "https://management.core.windows.net"}
READ_METHODS = {"GET", "HEAD"}
# Failures of a direct PUT that ARM reports with a status other than 400.
FAILURE_STATUSES = {
    "VaultAlreadyExists": 409,
    "ConflictError": 409,
    "RoleAssignmentExists": 409,
    "QuotaExceeded": 409,
    "ResourceNotFound": 404,
    "ParentResourceNotFound": 404,
    "PrivateEndpointConnectionNotFound": 404,
}
# Resource types deleted before the others when a resource group goes, because they hold references to others.
DELETE_FIRST = [
    "microsoft.network/privatelinkservices",
    "microsoft.compute/virtualmachinescalesets",
    "microsoft.network/loadbalancers",
]
TAG_OPERATIONS = {"merge", "replace", "delete"}


@dataclass
class ArmRequest:
    """What the dispatcher needs from an HTTP request."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    base_url: str

    @property
    def segments(self) -> list[str]:
        """The path split on '/' without empty parts."""
        return [segment for segment in self.path.split("/") if segment]


@dataclass
class ArmResponse:
    """A status, an optional JSON body and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _action_name(request: ArmRequest) -> str:
    try:
        resource_type = parse_resource_id(request.path).type
    except ValueError:
        resource_type = "Microsoft.Resources/subscriptions/resourceGroups"
    verb = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(
        request.method, "action"
    )
    return f"{resource_type}/{verb}"


class ArmDispatcher:
    """Routes one request; every method returns an ArmResponse or raises ArmError."""

    def __init__(self, emulator: ArmEmulator) -> None:
        self.emulator = emulator
        self.store = emulator.store
        self.providers = emulator.providers
        self.deployments = emulator.deployments

    # Entry -------------------------------------------------------------------------------------------------------
    def handle(self, request: ArmRequest) -> ArmResponse:
        """Authenticate, authorise, throttle, route; adds ARM's request and rate-limit headers."""
        self.deployments.advance()
        correlation_id = request.headers.get("x-ms-correlation-request-id") or str(uuid.uuid4())
        common = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-correlation-request-id": correlation_id}
        try:
            response = self._handle(request, correlation_id, common)
        except ArmError as error:
            response = ArmResponse(error.status, error.body(), dict(error.headers))
        except ResourceFailure as error:
            response = ArmResponse(
                FAILURE_STATUSES.get(error.code, 400), {"error": {"code": error.code, "message": error.message}}
            )
        response.headers.update(common)
        return response

    def _handle(self, request: ArmRequest, correlation_id: str, common: dict[str, str]) -> ArmResponse:
        segments = request.segments
        lower = [segment.lower() for segment in segments]
        if not segments or lower[0] != "subscriptions":
            raise ArmError(
                404, "InvalidResourceType", f"The resource type could not be found for path '{request.path}'."
            )
        if "api-version" not in request.query:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        claims = self._authenticate(request)
        app_id = str(claims.get("appid") or claims.get("azp") or "")
        if len(segments) == 1:
            return self._list_subscriptions(claims, app_id)
        subscription = self.store.subscription(segments[1])
        if subscription is None:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{segments[1]}' could not be found.")
        permission = "read" if request.method in READ_METHODS else "write"
        if not self._authorized(subscription, claims, app_id, permission):
            client = claims.get("upn") if _is_delegated(claims) else app_id
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{client}' with object id '{claims.get('oid', '')}' does not have authorization to "
                f"perform action '{_action_name(request)}' over scope '{request.path.rstrip('/')}' or the scope is "
                "invalid. If access was "
                "recently granted, please refresh your credentials.",
            )
        self._throttle(subscription, "reads" if request.method in READ_METHODS else "writes", common)
        return self._route(request, subscription, app_id, correlation_id, segments, lower)

    def _authenticate(self, request: ArmRequest) -> dict[str, Any]:
        challenge = (
            f'Bearer authorization_uri="{self.emulator.authority_url()}", error="invalid_token", '
            "error_description=\"The authentication failed because of missing 'Authorization' header.\""
        )
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                headers={"WWW-Authenticate": challenge},
            )
        try:
            return self.emulator.verify_token(header[7:].strip(), ARM_AUDIENCES)
        except InvalidTokenError as error:
            expired = "expired" in str(error).lower()
            code = "ExpiredAuthenticationToken" if expired else "InvalidAuthenticationToken"
            now = datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S")
            message = (
                f"The access token expiry UTC time is earlier than current UTC time '{now}'."
                if expired
                else f"The access token is invalid: {error}."
            )
            description = "The access token has expired." if expired else "The access token is invalid."
            header_value = (
                f'Bearer authorization_uri="{self.emulator.authority_url()}", error="invalid_token", '
                f'error_description="{description}"'
            )
            raise ArmError(401, code, message, headers={"WWW-Authenticate": header_value}) from None

    def _throttle(self, subscription: Subscription, kind: str, headers: dict[str, str]) -> None:
        allowed, remaining, wait = self.emulator.rate_limiter.take(subscription.id, kind)
        headers[f"x-ms-ratelimit-remaining-subscription-{kind}"] = str(remaining)
        if not allowed:
            retry_after = max(1, int(wait + 0.999))
            raise ArmError(
                429,
                "SubscriptionRequestsThrottled",
                f"Number of '{kind}' requests for subscription '{subscription.id}' actor exceeded. "
                "Please try again after "
                f"'{retry_after}' seconds after the last request.",
                headers={"Retry-After": str(retry_after), f"x-ms-ratelimit-remaining-subscription-{kind}": "0"},
            )

    @staticmethod
    def _authorized(subscription: Subscription, claims: dict[str, Any], app_id: str, permission: str) -> bool:
        """A person's token (delegated) acts with the person's access, an app's token with the app's."""
        tenant_id = str(claims.get("tid", ""))
        if _is_delegated(claims):
            return subscription.authorizes_member(tenant_id, permission)
        return subscription.authorizes(tenant_id, app_id, permission)

    def _list_subscriptions(self, claims: dict[str, Any], app_id: str) -> ArmResponse:
        visible = [
            subscription.as_arm()
            for subscription in self.store.subscriptions.values()
            if self._authorized(subscription, claims, app_id, "read")
        ]
        return ArmResponse(200, {"value": visible})

    # Routing -----------------------------------------------------------------------------------------------------
    def _route(
        self,
        request: ArmRequest,
        subscription: Subscription,
        app_id: str,
        correlation_id: str,
        segments: list[str],
        lower: list[str],
    ) -> ArmResponse:
        if len(segments) == 2:
            self._require(request, {"GET"})
            return ArmResponse(200, subscription.as_arm())
        if lower[2] == "locations" and len(segments) == 3:
            self._require(request, {"GET"})
            return ArmResponse(200, list_locations(subscription.id))
        if lower[2] == "resourcegroups":
            if len(segments) == 3:
                self._require(request, {"GET"})
                groups = [
                    group.as_arm()
                    for (sub, _), group in self.store.resource_groups.items()
                    if sub == subscription.id.lower()
                ]
                return ArmResponse(200, {"value": groups})
            if len(segments) == 4:
                return self._resource_group(request, subscription, segments[3])
            group = self._existing_group(subscription, segments[3])
            if len(segments) == 5 and lower[4] == "resources":
                self._require(request, {"GET"})
                return ArmResponse(
                    200,
                    {"value": self._list_resources(resource_group_scope(subscription.id, group.name), request.query)},
                )
            if lower[4:] == ["providers", "microsoft.resources", "tags", "default"]:
                return self._group_tags(request, group)
            if lower[4] == "providers" and len(segments) >= 7 and lower[5:7] == ["microsoft.resources", "deployments"]:
                return self._deployment_route(request, subscription, group, app_id, correlation_id, segments[7:])
            if lower[4] == "deployments":
                # Deployment operations are also addressed without the provider segment.
                return self._deployment_route(request, subscription, group, app_id, correlation_id, segments[5:])
            if lower[4] == "providers":
                return self._resource_route(request, subscription, app_id)
        if lower[2] == "resources" and len(segments) == 3:
            self._require(request, {"GET"})
            return ArmResponse(200, {"value": self._list_resources(f"/subscriptions/{subscription.id}", request.query)})
        if lower[2] == "operationresults" and len(segments) == 4:
            return ArmResponse(200)
        if lower[2] == "providers" and len(segments) >= 5:
            if lower[3] == "microsoft.keyvault" and "deletedvaults" in lower:
                return self._deleted_vaults(request, subscription, segments, lower)
            if lower[3:5] == ["microsoft.resources", "operationresults"]:
                return ArmResponse(204)
            return self._resource_route(request, subscription, app_id)
        raise ArmError(404, "InvalidResourceType", f"The resource type could not be found for path '{request.path}'.")

    @staticmethod
    def _require(request: ArmRequest, methods: set[str]) -> None:
        if request.method not in methods:
            raise ArmError(
                405, "MethodNotAllowed", f"The requested method '{request.method}' is not allowed on '{request.path}'."
            )

    def _existing_group(self, subscription: Subscription, name: str) -> ResourceGroup:
        group = self.store.resource_group(subscription.id, name)
        if group is None:
            raise not_found("resourceGroup", name)
        return group

    # Resource groups -------------------------------------------------------------------------------------------
    def _resource_group(self, request: ArmRequest, subscription: Subscription, name: str) -> ArmResponse:
        with self.store.lock:
            group = self.store.resource_group(subscription.id, name)
            if request.method == "HEAD":
                return ArmResponse(204 if group else 404)
            if request.method == "GET":
                if group is None:
                    raise not_found("resourceGroup", name)
                return ArmResponse(200, group.as_arm())
            if request.method == "PUT":
                return self._put_resource_group(request, subscription, name, group)
            if request.method == "PATCH":
                if group is None:
                    raise not_found("resourceGroup", name)
                if isinstance(request.body, dict) and isinstance(request.body.get("tags"), dict):
                    group.tags = dict(request.body["tags"])
                return ArmResponse(200, group.as_arm())
            if request.method == "DELETE":
                if group is None:
                    return ArmResponse(204)
                self._delete_resource_group(subscription, group)
                operation = (
                    f"{request.base_url}/subscriptions/{subscription.id}/operationresults/{uuid.uuid4().hex}"
                    f"?api-version={request.query['api-version']}"
                )
                return ArmResponse(202, None, {"Location": operation, "Retry-After": "0"})
        raise ArmError(405, "MethodNotAllowed", f"The requested method '{request.method}' is not allowed.")

    def _put_resource_group(
        self, request: ArmRequest, subscription: Subscription, name: str, group: ResourceGroup | None
    ) -> ArmResponse:
        body = request.body if isinstance(request.body, dict) else {}
        check_resource_group_name(name)
        location = str(body.get("location") or "")
        if not location:
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        if group is None:
            check_resource_group_location(location)
        if group is not None:
            if group.location.lower() != location.lower().replace(" ", ""):
                raise ArmError(
                    409,
                    "InvalidResourceGroupLocation",
                    f"Invalid resource group location '{location}'. The Resource group already exists in location "
                    f"'{group.location}'.",
                )
            group.tags = dict(body.get("tags") or {})
            return ArmResponse(200, group.as_arm())
        group = ResourceGroup(
            subscription.id,
            name,
            location.lower().replace(" ", ""),
            dict(body.get("tags") or {}),
            body.get("managedBy"),
        )
        self.store.resource_groups[(subscription.id.lower(), name.lower())] = group
        return ArmResponse(201, group.as_arm())

    def _group_tags(self, request: ArmRequest, group: ResourceGroup) -> ArmResponse:
        """Tags - Get/Create Or Update/Update/Delete At Scope, for a resource group scope."""
        with self.store.lock:
            if request.method == "PATCH":
                body = self._body(request)
                operation = str(body.get("operation") or "")
                tags = (body.get("properties") or {}).get("tags")
                if operation.lower() not in TAG_OPERATIONS or not isinstance(tags, dict):
                    raise ArmError(
                        400,
                        "InvalidRequestContent",
                        "The request content was invalid: 'operation' must be Merge, Replace or Delete and "
                        "'properties.tags' an object.",
                    )
                if operation.lower() == "merge":
                    group.tags = {**group.tags, **{str(key): str(value) for key, value in tags.items()}}
                elif operation.lower() == "replace":
                    group.tags = {str(key): str(value) for key, value in tags.items()}
                else:
                    # Delete removes the named tags whose value matches (or any value when the given one is empty).
                    group.tags = {
                        key: value
                        for key, value in group.tags.items()
                        if key not in tags or (tags[key] not in ("", None) and tags[key] != value)
                    }
            elif request.method == "PUT":
                tags = (self._body(request).get("properties") or {}).get("tags")
                group.tags = {str(key): str(value) for key, value in (tags or {}).items()}
            elif request.method == "DELETE":
                group.tags = {}
                return ArmResponse(200)
            else:
                self._require(request, {"GET", "PATCH", "PUT", "DELETE"})
            return ArmResponse(
                200,
                {
                    "id": f"{group.id}/providers/Microsoft.Resources/tags/default",
                    "name": "default",
                    "type": "Microsoft.Resources/tags",
                    "properties": {"tags": dict(group.tags)},
                },
            )

    def _delete_resource_group(self, subscription: Subscription, group: ResourceGroup) -> None:
        scope = resource_group_scope(subscription.id, group.name)
        # Consumers of other resources go first (a PLS holds its load balancer), then parents before children.
        members = sorted(
            self.store.resources_under(scope),
            key=lambda item: (
                DELETE_FIRST.index(item.type.lower()) if item.type.lower() in DELETE_FIRST else len(DELETE_FIRST),
                len(item.id),
            ),
        )
        for resource in members:
            if self.store.resource(resource.id) is not None:
                self.providers.delete(resource.id)
        self.deployments.delete_resource_group(subscription.id, group.name)
        del self.store.resource_groups[(subscription.id.lower(), group.name.lower())]

    def _list_resources(self, scope: str, query: dict[str, str]) -> list[dict[str, Any]]:
        wanted_type = None
        match = re.search(r"resourceType\s+eq\s+'([^']+)'", query.get("$filter", ""), re.IGNORECASE)
        if match:
            wanted_type = match.group(1).lower()
        results = []
        for resource in self.store.resources_under(scope):
            parsed = parse_resource_id(resource.id)
            # Only tracked top-level resources, like ARM's list (no children, no extension resources).
            if "/" in parsed.name or "/providers/" in parsed.scope.lower():
                continue
            if wanted_type and parsed.type.lower() != wanted_type:
                continue
            body = resource.body
            item = {"id": resource.id, "name": parsed.name, "type": parsed.type}
            for key in ("location", "tags", "sku", "kind", "identity", "managedBy"):
                if key in body:
                    item[key] = body[key]
            results.append(item)
        return sorted(results, key=lambda item: item["id"].lower())

    # Deployments -----------------------------------------------------------------------------------------------
    def _deployment_route(
        self,
        request: ArmRequest,
        subscription: Subscription,
        group: ResourceGroup,
        app_id: str,
        correlation_id: str,
        rest: list[str],
    ) -> ArmResponse:
        lowered = [item.lower() for item in rest]
        with self.store.lock:
            if not rest:
                self._require(request, {"GET"})
                return ArmResponse(
                    200,
                    {
                        "value": [
                            self.deployments.render(item) for item in self.deployments.list(subscription.id, group.name)
                        ]
                    },
                )
            name = rest[0]
            if len(rest) == 1:
                if request.method == "PUT":
                    return self._put_deployment(request, subscription, group, name, app_id, correlation_id)
                if request.method == "HEAD":
                    try:
                        self.deployments.get(subscription.id, group.name, name)
                    except ArmError:
                        return ArmResponse(404)
                    return ArmResponse(204)
                deployment = self.deployments.get(subscription.id, group.name, name)
                if request.method == "GET":
                    return ArmResponse(200, self.deployments.render(deployment))
                if request.method == "DELETE":
                    self.deployments.delete(deployment)
                    location = (
                        f"{request.base_url}/subscriptions/{subscription.id}/providers/Microsoft.Resources/"
                        f"operationResults/{uuid.uuid4().hex}?api-version={request.query['api-version']}"
                    )
                    return ArmResponse(202, None, {"Location": location, "Retry-After": "0"})
                self._require(request, {"GET", "PUT", "DELETE", "HEAD"})
            action = lowered[1]
            if action == "validate" and len(rest) == 2:
                self._require(request, {"POST"})
                return ArmResponse(200, self.deployments.validate(subscription, group.name, name, self._body(request)))
            deployment = self.deployments.get(subscription.id, group.name, name)
            if action == "cancel" and len(rest) == 2:
                self._require(request, {"POST"})
                self.deployments.cancel(deployment)
                return ArmResponse(204)
            if action == "exporttemplate" and len(rest) == 2:
                self._require(request, {"POST"})
                return ArmResponse(200, {"template": deployment.template})
            if action == "operations":
                self._require(request, {"GET"})
                if len(rest) == 2:
                    return ArmResponse(200, {"value": deployment.operations})
                for operation in deployment.operations:
                    if operation["operationId"].lower() == lowered[2]:
                        return ArmResponse(200, operation)
                raise ArmError(
                    404, "DeploymentOperationNotFound", f"Deployment operation '{rest[2]}' could not be found."
                )
            if action == "operationstatuses" and len(rest) == 3:
                self._require(request, {"GET"})
                status = self.deployments.run_status(deployment, rest[2])
                headers = self._poll_headers(deployment.deadline) if status["status"] == "Running" else {}
                return ArmResponse(200, status, headers)
        raise ArmError(404, "InvalidResourceType", f"The deployment operation '{'/'.join(rest[1:])}' is not supported.")

    def _put_deployment(
        self,
        request: ArmRequest,
        subscription: Subscription,
        group: ResourceGroup,
        name: str,
        app_id: str,
        correlation_id: str,
    ) -> ArmResponse:
        deployment, created = self.deployments.submit(
            subscription, group.name, name, self._body(request), app_id, correlation_id
        )
        status_url = (
            f"{request.base_url}{deployment.id}/operationStatuses/{deployment.run_id}"
            f"?api-version={request.query['api-version']}"
        )
        headers = {"Azure-AsyncOperation": status_url, **self._poll_headers(deployment.deadline)}
        state = "Accepted" if deployment.state == "Running" else None
        return ArmResponse(
            201 if created or deployment.state == "Running" else 200,
            self.deployments.render(deployment, state),
            headers,
        )

    @staticmethod
    def _poll_headers(deadline: float) -> dict[str, str]:
        # At most a second: a canceled or shortened run is noticed quickly by a waiting poller.
        remaining = min(1.0, max(0.0, deadline - time.time()))
        milliseconds = str(max(50, int(remaining * 1000) + 20))
        if remaining < 1:
            # Retry-After is whole seconds; under a second only the millisecond form azure-core also reads.
            return {"retry-after-ms": milliseconds}
        return {"Retry-After": str(int(remaining + 0.999)), "retry-after-ms": milliseconds}

    @staticmethod
    def _body(request: ArmRequest) -> dict[str, Any]:
        if not isinstance(request.body, dict):
            raise ArmError(
                400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
            )
        return request.body

    # Provider resources ------------------------------------------------------------------------------------------
    def _resource_route(self, request: ArmRequest, subscription: Subscription, app_id: str) -> ArmResponse:
        segments = request.segments
        provider_positions = [index for index, segment in enumerate(segments) if segment.lower() == "providers"]
        rest = segments[provider_positions[-1] + 1 :]
        if len(rest) % 2 == 0:
            return self._collection_or_action(request, subscription, segments, provider_positions[-1], rest)
        resource_id = parse_resource_id(request.path)
        self._check_scope_exists(subscription, resource_id)
        with self.store.lock:
            if request.method in ("GET", "HEAD"):
                body = self.providers.get(resource_id.id)
                if body is None:
                    if request.method == "HEAD":
                        return ArmResponse(404)
                    raise ArmError(
                        404,
                        "ResourceNotFound",
                        f"The Resource '{resource_id.type}/{resource_id.name}' under resource group "
                        f"'{resource_id.resource_group}' "
                        "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                    )
                return ArmResponse(200 if request.method == "GET" else 204, body if request.method == "GET" else None)
            if request.method == "PUT":
                existed = self.store.resource(resource_id.id) is not None
                stored = self.providers.put(resource_id, self._body(request), subscription, app_id)
                created_status = self.providers.handler(resource_id.type).created_status
                return ArmResponse(200 if existed else created_status, self.providers.render(stored))
            if request.method == "PATCH":
                return self._patch_resource(request, subscription, resource_id, app_id)
            if request.method == "DELETE":
                body = self.providers.get(resource_id.id)
                if body is None:
                    return ArmResponse(204)
                self.providers.delete(resource_id.id)
                return ArmResponse(200, body)
        raise ArmError(405, "MethodNotAllowed", f"The requested method '{request.method}' is not allowed.")

    def _check_scope_exists(self, subscription: Subscription, resource_id: ResourceId) -> None:
        group_name = resource_id.resource_group
        if group_name and self.store.resource_group(subscription.id, group_name) is None:
            raise not_found("resourceGroup", group_name)

    def _patch_resource(
        self, request: ArmRequest, subscription: Subscription, resource_id: ResourceId, app_id: str
    ) -> ArmResponse:
        stored = self.store.resource(resource_id.id)
        if stored is None:
            raise not_found("resource", f"{resource_id.type}/{resource_id.name}")
        patch = self._body(request)
        merged = _merge(self.providers.render(stored), patch)
        if resource_id.type.lower() == SCALE_SET_TYPE:
            check_quota(
                self.providers, subscription, resource_id.id, str(merged.get("location", "")), merged.get("sku") or {}
            )
        updated = self.providers.put(resource_id, merged, subscription, app_id)
        return ArmResponse(200, self.providers.render(updated))

    def _collection_or_action(
        self, request: ArmRequest, subscription: Subscription, segments: list[str], provider_index: int, rest: list[str]
    ) -> ArmResponse:
        scope = "/" + "/".join(segments[:provider_index])
        if len(rest) >= 4:
            # .../{type}/{name}/{something}: a child collection, or an action/view on the resource.
            target = parse_resource_id("/".join(["", *segments[:-1]]))
            last = segments[-1]
            with self.store.lock:
                stored = self.store.resource(target.id)
                if target.type.lower() == SCALE_SET_TYPE and stored is not None:
                    if last.lower() == "instanceview" and request.method == "GET":
                        return ArmResponse(200, scale_set_instance_view(stored))
                    if request.method == "POST":
                        scale_set_action(stored, last)
                        return ArmResponse(200)
                if request.method == "GET":
                    if stored is None:
                        raise not_found("resource", f"{target.type}/{target.name}")
                    if target.type.lower() == "microsoft.network/privatednszones" and last.lower() in (
                        "all",
                        "recordsets",
                    ):
                        return ArmResponse(200, {"value": self._record_sets(target.id)})
                    return ArmResponse(200, {"value": self.providers.list_children(target.id, last)})
            raise ArmError(
                400, "InvalidResourceOperation", f"The operation '{last}' is not supported on '{target.type}'."
            )
        self._require(request, {"GET"})
        resource_type = "/".join(rest)
        self._check_scope_exists(subscription, parse_resource_id(f"{scope}/providers/{resource_type}/placeholder"))
        with self.store.lock:
            values = []
            for resource in self.store.resources_under(scope):
                if resource.type.lower() != resource_type.lower():
                    continue
                parsed = parse_resource_id(resource.id)
                if "/" in parsed.name:
                    continue
                in_scope = parsed.scope.lower() == scope.lower() or (
                    # Listing at a subscription returns the resources of every group in it.
                    len(segments[:provider_index]) == 2 and parsed.scope.lower().startswith(scope.lower() + "/")
                )
                if in_scope:
                    values.append(self.providers.render(resource))
        return ArmResponse(200, {"value": values})

    def _record_sets(self, zone_id: str) -> list[dict[str, Any]]:
        """Every record set of a private DNS zone (all record types, not the virtual network links)."""
        return [
            self.providers.render(resource)
            for resource in self.store.resources_under(zone_id)
            if resource.type.lower() != "microsoft.network/privatednszones/virtualnetworklinks"
        ]

    # Deleted vaults --------------------------------------------------------------------------------------------
    def _deleted_vaults(
        self, request: ArmRequest, subscription: Subscription, segments: list[str], lower: list[str]
    ) -> ArmResponse:
        entries = {
            name: entry for (sub, name), entry in self.store.deleted_vaults.items() if sub == subscription.id.lower()
        }
        if lower[-1] == "deletedvaults":
            self._require(request, {"GET"})
            return ArmResponse(200, {"value": [public_deleted_vault(entry) for entry in entries.values()]})
        if lower[-1] == "purge":
            self._require(request, {"POST"})
            purge_deleted_vault(self.providers, self.emulator.key_vaults, subscription.id, segments[-2])
            return ArmResponse(200)
        self._require(request, {"GET"})
        entry = entries.get(segments[-1].lower())
        if entry is None:
            raise ArmError(404, "ResourceNotFound", f"The deleted vault '{segments[-1]}' was not found.")
        return ArmResponse(200, public_deleted_vault(entry))


def _is_delegated(claims: dict[str, Any]) -> bool:
    """A token an app holds for a signed-in person: it carries the person's delegated scopes (`scp`)."""
    return bool(claims.get("scp"))


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "tags":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _header_value(value: str) -> str:
    """HTTP headers carry latin-1 only: URLs naming a group in another script are percent-encoded, as ARM does."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return quote(value, safe=":/?&=%;,+-._~()")
    return value


def build_arm_app(emulator: ArmEmulator) -> Any:
    """The ASGI app: control API, fault control, and every ARM path through the dispatcher."""
    app = FastAPI(title="Azure Resource Manager emulator", openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(fault_control_router(emulator.faults))
    app.include_router(build_control_router(emulator))
    dispatcher = ArmDispatcher(emulator)

    @app.api_route("/{path:path}", methods=["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"], include_in_schema=False)
    async def arm(path: str, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return JSONResponse(
                {
                    "error": {
                        "code": "InvalidRequestContent",
                        "message": "The request content was invalid and could not be deserialized.",
                    }
                },
                status_code=400,
            )
        arm_request = ArmRequest(
            method=request.method,
            path="/" + path,
            query={key.lower(): value for key, value in request.query_params.items()},
            headers={key.lower(): value for key, value in request.headers.items()},
            body=body,
            base_url=str(request.base_url).rstrip("/"),
        )
        # Handled on the event loop: the dispatcher is CPU work under the store's one lock and never waits on this
        # loop (a new vault's port is served by its own server thread), so a hop to a worker thread only added cost.
        result = dispatcher.handle(arm_request)
        headers = {key: _header_value(value) for key, value in result.headers.items()}
        if result.body is None:
            return Response(status_code=result.status, headers=headers)
        return JSONResponse(result.body, status_code=result.status, headers=headers)

    return FaultInjectionMiddleware(app, emulator.faults)
