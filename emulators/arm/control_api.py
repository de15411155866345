"""The ARM emulator's control API under /_emulator: what tests and the local stack set up around ARM."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from emulators.arm.deployments import DurationRule
from emulators.arm.errors import ArmError, ResourceFailure
from emulators.arm.network_resources import ENDPOINT_SOURCE_KINDS, connect_private_endpoint
from emulators.arm.out_of_band import build_out_of_band_router
from emulators.arm.resource_ids import parse_resource_id
from emulators.arm.store import Subscription

if TYPE_CHECKING:
    from emulators.arm.emulator import ArmEmulator

Role = Literal["Owner", "Contributor", "Reader"]


class SubscriptionRequest(BaseModel):
    """A subscription to create; the id is generated when omitted."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    tenant_id: str
    display_name: str = "Emulated subscription"
    access: dict[str, Role] = Field(default_factory=dict, description="app (client) id -> role")
    deployment_seconds: float | None = Field(default=None, ge=0)


class AccessRequest(BaseModel):
    """A role for an app on a subscription; `cross_tenant` grants it to the app signed in to its home tenant."""

    model_config = ConfigDict(extra="forbid")
    role: Role = "Contributor"
    cross_tenant: bool = Field(
        default=False, description="honour tokens of the app's home tenant (a managed-app publisher authorization)"
    )


class QuotaRequest(BaseModel):
    """A regional quota: `cores` (vCPUs of scale sets) or `vmssCapacity` (scale set instances)."""

    model_config = ConfigDict(extra="forbid")
    region: str
    name: Literal["cores", "vmssCapacity"]
    limit: int = Field(ge=0)


class DurationRequest(BaseModel):
    """How long matching deployments run before they are applied."""

    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=3600)
    subscription_id: str | None = None
    deployment_name: str | None = None
    count: int | None = Field(default=None, ge=1, description="apply to this many submissions only")


class HoldRequest(BaseModel):
    """Whether the subscription's running deployments wait (past their duration) until released."""

    model_config = ConfigDict(extra="forbid")
    held: bool


class PrivateEndpointRequest(BaseModel):
    """A consumer's private endpoint against a Private Link Service alias or resource id."""

    model_config = ConfigDict(extra="forbid")
    target: str = Field(description="PLS alias or resource id")
    consumer_subscription_id: str | None = Field(
        default=None, description="the consumer's subscription (with consumer_resource_id, the service's own)"
    )
    name: str
    request_message: str = ""
    source_kind: str = Field(default="customer-vnet", description=f"one of {', '.join(ENDPOINT_SOURCE_KINDS)}")
    consumer_resource_group: str = "consumer-network"
    location: str | None = None
    consumer_resource_id: str | None = Field(
        default=None,
        description="a managed service's consumer (factory or workspace ARM id, NCC id, Fabric workspace id): the "
        "service creates the endpoint in its own subscription with its naming and message; `name` is then the "
        "managed private endpoint's name",
    )


class ForeignResourceRequest(BaseModel):
    """A resource someone else (the customer, another tool) creates in a resource group, outside our deployments."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="full resource id: /subscriptions/{s}/resourceGroups/{g}/providers/{type}/{name}")
    location: str = "westeurope"
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    created_by: str = Field(default="customer", description="who made it (kept as the resource's creator)")


def subscription_summary(subscription: Subscription) -> dict[str, Any]:
    """The control API's view of a subscription."""
    return {
        "id": subscription.id,
        "tenant_id": subscription.tenant_id,
        "display_name": subscription.display_name,
        "access": dict(subscription.access),
        "cross_tenant_access": {
            app_id: {"role": role, "home_tenant_id": home_tenant_id}
            for app_id, (role, home_tenant_id) in subscription.cross_tenant_access.items()
        },
        "deployment_seconds": subscription.deployment_seconds,
        "deployments_held": subscription.deployments_held,
        "quotas": [
            {"region": region, "name": name, "limit": limit} for (region, name), limit in subscription.quotas.items()
        ],
    }


def build_control_router(emulator: ArmEmulator) -> APIRouter:
    """Endpoints: subscriptions and access, quotas, deployment durations, private endpoints, resource listing."""
    router = APIRouter(prefix="/_emulator", tags=["emulator control"])
    store = emulator.store

    def subscription_or_404(subscription_id: str) -> Subscription:
        subscription = store.subscription(subscription_id)
        if subscription is None:
            raise HTTPException(404, f"subscription {subscription_id} not found")
        return subscription

    @router.get("/subscriptions")
    def list_subscriptions() -> list[dict[str, Any]]:
        with store.lock:
            return [subscription_summary(item) for item in store.subscriptions.values()]

    @router.post("/subscriptions", status_code=201)
    def create_subscription(request: SubscriptionRequest) -> dict[str, Any]:
        subscription = emulator.add_subscription(
            request.id or str(uuid.uuid4()),
            request.tenant_id,
            request.display_name,
            dict(request.access),
            request.deployment_seconds,
        )
        return subscription_summary(subscription)

    @router.put("/subscriptions/{subscription_id}/access/{app_id}")
    def grant_access(subscription_id: str, app_id: str, request: AccessRequest) -> dict[str, Any]:
        with store.lock:
            subscription = subscription_or_404(subscription_id)
            if not request.cross_tenant:
                subscription.access[app_id.lower()] = request.role
                return subscription_summary(subscription)
            app = next(
                (item for item in emulator.entra.directory.apps.values() if item.app_id.lower() == app_id.lower()), None
            )
            if app is None:
                raise HTTPException(404, f"app {app_id} is not registered in the directory")
            subscription.cross_tenant_access[app_id.lower()] = (request.role, app.home_tenant_id)
            return subscription_summary(subscription)

    @router.delete("/subscriptions/{subscription_id}/access/{app_id}")
    def revoke_access(subscription_id: str, app_id: str) -> dict[str, Any]:
        with store.lock:
            subscription = subscription_or_404(subscription_id)
            subscription.access.pop(app_id.lower(), None)
            subscription.cross_tenant_access.pop(app_id.lower(), None)
            return subscription_summary(subscription)

    @router.put("/subscriptions/{subscription_id}/quotas")
    def set_quota(subscription_id: str, request: QuotaRequest) -> dict[str, Any]:
        with store.lock:
            subscription = subscription_or_404(subscription_id)
            subscription.quotas[(request.region.lower().replace(" ", ""), request.name.lower())] = request.limit
            return subscription_summary(subscription)

    @router.delete("/subscriptions/{subscription_id}/quotas")
    def clear_quotas(subscription_id: str) -> dict[str, Any]:
        with store.lock:
            subscription = subscription_or_404(subscription_id)
            subscription.quotas.clear()
            return subscription_summary(subscription)

    @router.put("/subscriptions/{subscription_id}/deployment-seconds")
    def set_subscription_duration(subscription_id: str, request: DurationRequest) -> dict[str, Any]:
        with store.lock:
            subscription = subscription_or_404(subscription_id)
            subscription.deployment_seconds = request.seconds
            return subscription_summary(subscription)

    @router.put("/subscriptions/{subscription_id}/deployments-held")
    def hold_deployments(subscription_id: str, request: HoldRequest) -> dict[str, Any]:
        with store.lock:
            subscription = subscription_or_404(subscription_id)
            subscription.deployments_held = request.held
            return subscription_summary(subscription)

    @router.post("/deployment-durations", status_code=201)
    def add_duration_rule(request: DurationRequest) -> dict[str, Any]:
        with store.lock:
            emulator.deployments.duration_rules.append(
                DurationRule(request.seconds, request.subscription_id, request.deployment_name, request.count)
            )
            return request.model_dump()

    @router.delete("/deployment-durations", status_code=204)
    def clear_duration_rules() -> None:
        with store.lock:
            emulator.deployments.duration_rules.clear()

    @router.post("/private-endpoints", status_code=201, response_model=None)
    def add_private_endpoint(request: PrivateEndpointRequest) -> dict[str, Any] | JSONResponse:
        try:
            return connect_private_endpoint(
                emulator.providers,
                request.target,
                request.consumer_subscription_id,
                request.name,
                request.request_message,
                request.source_kind,
                request.consumer_resource_group,
                request.location,
                request.consumer_resource_id,
            )
        except ArmError as error:
            return JSONResponse(error.body(), status_code=error.status)

    @router.get("/resources")
    def list_all_resources(
        subscription_id: str | None = None, resource_type: str | None = None
    ) -> list[dict[str, Any]]:
        with store.lock:
            emulator.deployments.advance()
            results = []
            for resource in store.resources.values():
                if subscription_id and not resource.id.lower().startswith(f"/subscriptions/{subscription_id.lower()}/"):
                    continue
                if resource_type and resource.type.lower() != resource_type.lower():
                    continue
                results.append(
                    {
                        "id": resource.id,
                        "type": resource.type,
                        "created_by_app": resource.created_by_app,
                        "body": emulator.providers.render(resource),
                    }
                )
            return sorted(results, key=lambda item: item["id"].lower())

    @router.put("/resources", status_code=201, response_model=None)
    def add_foreign_resource(request: ForeignResourceRequest) -> dict[str, Any] | JSONResponse:
        try:
            resource_id = parse_resource_id(request.id)
        except ValueError as error:
            raise HTTPException(400, f"not a resource id: {error}") from None
        with store.lock:
            subscription = subscription_or_404(resource_id.subscription_id or "")
            group = resource_id.resource_group
            if group is None or store.resource_group(subscription.id, group) is None:
                raise HTTPException(404, f"resource group {group} not found")
            body = {"location": request.location, "tags": request.tags, "properties": request.properties}
            try:
                stored = emulator.providers.put(resource_id, body, subscription, request.created_by)
            except ResourceFailure as error:
                return JSONResponse({"error": {"code": error.code, "message": error.message}}, status_code=400)
            return {"id": stored.id, "body": emulator.providers.render(stored)}

    @router.get("/resource-groups")
    def list_all_resource_groups() -> list[dict[str, Any]]:
        with store.lock:
            return [group.as_arm() for group in store.resource_groups.values()]

    router.include_router(build_out_of_band_router(emulator))
    return router
