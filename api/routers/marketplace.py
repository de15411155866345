"""Marketplace's SaaS webhook: the Entra token is verified, the operation stored durably (unique on its id) and answered
200 before any slow work; a worker verifies and applies it. The purchase pages a Marketplace link opens are the
portal's (portal/routers/purchase.py)."""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from core.audit.actions import AuditAction
from core.audit.refusals import record_refusal
from core.db import Database
from core.errors import BadRequest, ControlPlaneError, Unauthenticated, ValidationFailed
from core.identity.tokens import EntraTokenVerifier, TokenRules
from core.settings import Settings
from core.subscriptions.errors import ChangeRefused
from core.subscriptions.schemas import WebhookPayload
from core.subscriptions.verdict import record_intake_refusal, refusal_at_intake
from core.subscriptions.webhook_store import record_webhook
from web.dependencies import DatabaseDep, SettingsDep
from web.errors import DATABASE_RETRY_AFTER_SECONDS, error_answer, error_body, error_response, http_status
from web.openapi_schemas import raw_json_body
from web.permissions import public_route
from web.rate_limits import peer_of

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/marketplace", tags=["marketplace"])
# Storing a webhook is mostly Python work under the GIL: a few threads overlap its database round trips, while
# one thread per in-flight request would only fight the event loop for the GIL and stretch every latency.
WEBHOOK_STORE_THREADS = anyio.CapacityLimiter(4)


def webhook_rules(settings: Settings) -> TokenRules:
    """What Marketplace's webhook token must say: audience our fulfilment app, our tenant, Marketplace's app."""
    client_id = settings.publisher_client_id
    return TokenRules(
        audiences={client_id, f"api://{client_id}"},
        tenant_ids={settings.publisher_tenant_id},
        client_app_ids={settings.marketplace_resource_app_id},
    )


@router.post(
    "/webhook",
    dependencies=[public_route("Marketplace's webhook, authenticated by its Entra token (test_token_attacks)")],
    summary="Marketplace SaaS webhook",
    responses={
        200: {"description": "Stored (or a replay of a stored operation)"},
        400: error_response(
            "Malformed JSON or mismatched subscription ids; or a ChangePlan/ChangeQuantity refused (stored, and "
            "Marketplace fails the operation): a plan outside the catalog, a quantity outside the plan, an "
            "unsubscribed subscription, or less capacity than the cluster stores"
        ),
        401: error_response("Missing or invalid Entra bearer token"),
        422: error_response("Body does not match the webhook schema (e.g. unknown action)"),
        503: {
            **error_response("Intake disabled (maintenance) or the database unavailable: Marketplace delivers again"),
            "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
        },
    },
    openapi_extra=raw_json_body(WebhookPayload, "The operation Marketplace notifies; verified before it is parsed"),
)
async def webhook(request: Request, settings: SettingsDep, database: DatabaseDep) -> JSONResponse:
    """Verify the token, validate the body, store it durably once, answer fast."""
    if not settings.marketplace_webhook_enabled:
        return JSONResponse(
            error_body("Unavailable", "webhook intake is disabled"),
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    raw = await request.body()
    verifier: EntraTokenVerifier = request.app.state.token_verifier
    authorization = request.headers.get("authorization", "")
    handle = partial(_handle_webhook, database, verifier, settings, authorization, raw, peer_of(request.scope))
    return await anyio.to_thread.run_sync(handle, limiter=WEBHOOK_STORE_THREADS)


def _handle_webhook(
    database: Database, verifier: EntraTokenVerifier, settings: Settings, authorization: str, raw: bytes, source: str
) -> JSONResponse:
    scheme, _, token = authorization.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("missing bearer token")
        verifier.verify(token.strip(), webhook_rules(settings))
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise BadRequest(f"the body is not valid JSON: {error}") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        try:
            payload = WebhookPayload.model_validate(body)
        except ValidationError as error:
            problems = [
                {"field": ".".join(str(part) for part in issue["loc"]), "message": issue["msg"]}
                for issue in error.errors()
            ]
            summary = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
            invalid = ValidationFailed(f"invalid webhook body: {summary}", details={"problems": problems})
            return _refuse(database, source, invalid, body)
        if not payload.subscription_ids_agree():
            raise BadRequest("subscriptionId does not match subscription.id of the body")
    except (Unauthenticated, BadRequest) as error:
        return _refuse(database, source, error, None)
    # One idempotent statement: no transaction to open and commit around it (and a dropped connection is retried).
    receipt = database.run_idempotent_write(lambda connection: record_webhook(connection, payload, raw_body=body))
    refusal = _refusal_at_intake(database, payload)
    if refusal is not None:
        # Marketplace takes a 4xx to a ChangePlan/ChangeQuantity as our refusal: on time, whatever the queues hold.
        return error_answer(ChangeRefused(refusal, details={"operation_id": receipt.operation_id}))
    return JSONResponse(
        {"operation_id": receipt.operation_id, "status": "accepted" if receipt.created else "duplicate"}
    )


def _refusal_at_intake(database: Database, payload: WebhookPayload) -> str | None:
    """The refusal of a stored ChangePlan/ChangeQuantity decidable now, or None (the worker decides and reports)."""
    try:
        with database.session() as db:
            reason = refusal_at_intake(
                db,
                subscription_id=payload.subscription_id,
                action=payload.action.value,
                status=payload.status,
                plan_id=payload.plan_id,
                quantity=payload.quantity,
            )
            if reason is not None:
                record_intake_refusal(db, payload.id, reason)
            return reason
    except Exception:  # the webhook is stored: the worker decides and PATCHes it instead
        logger.exception("deciding a webhook at intake failed; the worker decides it", extra={"operation": payload.id})
        return None


def _refuse(database: Database, source: str, refusal: ControlPlaneError, body: dict[str, Any] | None) -> JSONResponse:
    """Answer a refused webhook precisely and count it in the audit trail's refusal tally (nothing else changes)."""
    operation_id = str(body.get("id"))[:128] if body and body.get("id") else "unknown"
    record_refusal(
        database,
        actor="marketplace:unverified",
        action=AuditAction.MARKETPLACE_WEBHOOK_REFUSED,
        source=source,
        reason=refusal.message,
        details={
            "status": http_status(refusal),
            "code": refusal.code,
            "operation_id": operation_id,
            **refusal.details,
        },
    )
    return error_answer(refusal)
