"""SaaS fulfilment API v2 under /api/saas."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from emulators.marketplace.http_conventions import (
    SUPPORTED_API_VERSION,
    PublisherAuthenticator,
    api_error,
    require_api_version,
)
from emulators.marketplace.quirks import Quirks
from emulators.marketplace.subscriptions import FulfillmentState, Operation


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object ({} when empty); 400 when it is not an object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except UnicodeDecodeError as error:
        raise api_error(400, "BadRequest", "The request body is not UTF-8 text.") from error
    except json.JSONDecodeError as error:
        raise api_error(400, "BadRequest", f"The request body is not valid JSON: {error.msg}.") from error
    if not isinstance(body, dict):
        raise api_error(400, "BadRequest", "The request body must be a JSON object.")
    return body


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise api_error(400, "BadRequest", f"{name} must be an integer.")
    return value


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise api_error(400, "BadRequest", f"{name} must be a non-empty string.")
    return value


def _accepted(request: Request, operation: Operation) -> Response:
    """202 with the Operation-Location and Operation-Id headers of an asynchronous change."""
    base = str(request.base_url).rstrip("/")
    location = (
        f"{base}/api/saas/subscriptions/{operation.subscription_id}/operations/{operation.id}"
        f"?api-version={SUPPORTED_API_VERSION}"
    )
    return Response(status_code=202, headers={"Operation-Location": location, "Operation-Id": operation.id})


def build_fulfillment_router(
    state: FulfillmentState, authenticate: PublisherAuthenticator, page_size: int, quirks: Quirks | None = None
) -> APIRouter:
    """Resolve, get/list, plans, activate, change, delete and the operations API (answers shaped by `quirks`)."""
    quirks = quirks or Quirks()
    router = APIRouter(
        prefix="/api/saas",
        dependencies=[Depends(require_api_version), Depends(authenticate)],
        tags=["fulfillment"],
        redirect_slashes=False,
    )

    @router.post("/subscriptions/resolve")
    def resolve(request: Request) -> dict[str, Any]:
        token = request.headers.get("x-ms-marketplace-token")
        # Be lenient: accept the token still URL-encoded, as some landing pages forget to decode it.
        if token and "%" in token:
            token = unquote(token)
        subscription = state.resolve(token)
        body: dict[str, Any] = {
            "id": subscription.id,
            "subscriptionName": subscription.name,
            "offerId": subscription.offer_id,
            "planId": subscription.plan_id,
            "subscription": quirks.subscription(subscription.to_json()),
        }
        if subscription.quantity is not None:
            body["quantity"] = subscription.quantity
        return body

    # The published spec names the path with a trailing slash; clients use both, so both answer (no redirect).
    @router.get("/subscriptions/", include_in_schema=False)
    @router.get("/subscriptions")
    def list_subscriptions(request: Request, continuationToken: str | None = None) -> dict[str, Any]:  # noqa: N803
        try:
            offset = int(continuationToken or 0)
        except ValueError as error:
            raise api_error(400, "BadRequest", "continuationToken is not valid.") from error
        subscriptions = state.all_subscriptions()
        page = subscriptions[offset : offset + page_size]
        body: dict[str, Any] = {"subscriptions": [quirks.subscription(subscription.to_json()) for subscription in page]}
        if offset + page_size < len(subscriptions):
            base = str(request.base_url).rstrip("/")
            body["@nextLink"] = (
                f"{base}/api/saas/subscriptions?api-version={SUPPORTED_API_VERSION}"
                f"&continuationToken={offset + page_size}"
            )
        return body

    @router.get("/subscriptions/{subscription_id}")
    def get_subscription(subscription_id: str) -> dict[str, Any]:
        return quirks.subscription(state.get(subscription_id).to_json())

    @router.get("/subscriptions/{subscription_id}/listAvailablePlans")
    def list_available_plans(subscription_id: str, planId: str | None = None) -> dict[str, Any]:  # noqa: N803
        return {"plans": state.available_plans(subscription_id, planId)}

    @router.post("/subscriptions/{subscription_id}/activate")
    async def activate(subscription_id: str, request: Request) -> Response:
        body = await _json_object(request)
        state.activate(subscription_id, _optional_str(body, "planId"), _optional_int(body, "quantity"))
        return Response(status_code=200)

    # planId and quantity together are refused (400), as the fulfilment API documentation's "Change the plan" and
    # "Change the quantity" sections say (one change per call), although the spec's UpdateOperation schema allows both.
    @router.patch("/subscriptions/{subscription_id}")
    async def change(subscription_id: str, request: Request) -> Response:
        body = await _json_object(request)
        operation = state.publisher_change(
            subscription_id, _optional_str(body, "planId"), _optional_int(body, "quantity")
        )
        return _accepted(request, operation)

    @router.delete("/subscriptions/{subscription_id}")
    def delete(subscription_id: str, request: Request) -> Response:
        return _accepted(request, state.publisher_delete(subscription_id))

    @router.get("/subscriptions/{subscription_id}/operations")
    def list_operations(subscription_id: str) -> Any:
        return quirks.operations_list([operation.to_json() for operation in state.pending_operations(subscription_id)])

    @router.get("/subscriptions/{subscription_id}/operations/{operation_id}")
    def get_operation(subscription_id: str, operation_id: str) -> dict[str, Any]:
        return quirks.operation(state.get_operation(subscription_id, operation_id).to_json())

    @router.patch("/subscriptions/{subscription_id}/operations/{operation_id}")
    async def patch_operation(subscription_id: str, operation_id: str, request: Request) -> Response:
        body = await _json_object(request)
        status = body.get("status")
        if not isinstance(status, str):
            raise api_error(400, "BadRequest", "status is required ('Success' or 'Failure').")
        operation = state.patch_operation(
            subscription_id, operation_id, status, late_success_after_seconds=quirks.late_success_patch_seconds()
        )
        return JSONResponse(quirks.operation(operation.to_json()), status_code=200)

    return router
