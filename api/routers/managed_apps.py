"""The managed-application notification endpoint: Azure POSTs lifecycle events to `{endpoint}/resource`."""

from __future__ import annotations

import hmac
import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError

from core.audit.actions import AuditAction
from core.audit.refusals import record_refusal
from core.clock import utc_now
from core.errors import BadRequest, NotFound, Unauthenticated, ValidationFailed
from core.managed_apps.schemas import ManagedAppNotification
from core.managed_apps.service import check_event_time, record_notification
from web.dependencies import DatabaseDep, SessionDep, SettingsDep
from web.errors import error_response
from web.openapi_schemas import raw_json_body
from web.permissions import public_route
from web.rate_limits import peer_of

router = APIRouter(prefix="/managedapp", tags=["managed applications"])
MAX_BODY_BYTES = 64 * 1024
ACTOR = "azure:managed-applications"


@router.post(
    "/resource",
    dependencies=[public_route("Azure's managed-application notifications, authenticated by the shared `sig`")],
    summary="Managed-application lifecycle notification",
    responses={
        400: error_response("Body is not JSON or is too large"),
        401: error_response("Missing or wrong `sig` query parameter"),
        404: error_response("This deployment does not take managed-application notifications"),
        422: error_response("Body is not a notification this offer accepts"),
    },
    openapi_extra=raw_json_body(ManagedAppNotification, "The notification; read only once `sig` is verified"),
)
async def managed_app_notification(
    request: Request,
    session: SessionDep,
    database: DatabaseDep,
    settings: SettingsDep,
    sig: Annotated[str, Query(description="The shared secret of the offer's notification endpoint URL")] = "",
) -> dict[str, str]:
    """Store the notification durably (once per application, event type, state and time) and answer 200."""
    secret = settings.managed_app_notification_secret
    if secret is None:
        # Not configured means the endpoint does not exist here; a 5xx would tell Azure to retry for nothing.
        raise NotFound("managed-application notifications are not enabled on this deployment")
    if not hmac.compare_digest(sig.encode(), secret.get_secret_value().encode()):
        _refuse(database, request, "missing or wrong signature parameter")
        raise Unauthenticated("missing or wrong signature parameter")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        _refuse(database, request, "body too large", size=len(body))
        raise BadRequest(f"notification body larger than {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        _refuse(database, request, "malformed JSON")
        raise BadRequest(f"body is not valid JSON: {error}") from None
    try:
        notification = ManagedAppNotification.model_validate(payload)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'body'}: {issue['msg']}" for issue in error.errors()
        )
        _refuse(database, request, "invalid notification", problems=problems)
        raise ValidationFailed(f"invalid notification: {problems}") from None
    try:
        check_event_time(
            notification,
            now=utc_now(),
            max_skew_seconds=settings.managed_app_notification_max_skew_seconds,
            max_age_seconds=settings.managed_app_notification_max_age_seconds,
        )
        result = record_notification(session, notification)
    except ValidationFailed as error:
        session.rollback()  # release the request's transaction before the refusal's own unit of work
        _refuse(database, request, error.message, application_id=notification.application_id)
        raise
    return {"status": result.outcome.value, "managed_application_id": result.managed_application.id}


def _refuse(database: DatabaseDep, request: Request, reason: str, **details: object) -> None:
    record_refusal(
        database,
        actor=ACTOR,
        action=AuditAction.MANAGED_APP_NOTIFICATION_REFUSED,
        source=peer_of(request.scope),
        reason=reason,
        details=details,
    )
