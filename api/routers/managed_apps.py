"""The managed-application notification endpoint: Azure POSTs lifecycle events to `{endpoint}/resource`."""

from __future__ import annotations

import hmac
import json

from fastapi import APIRouter, Request
from pydantic import ValidationError

from api.dependencies import DatabaseDep, SessionDep, SettingsDep
from core.audit.refusals import record_refusal
from core.errors import BadRequest, Unauthenticated, UpstreamUnavailable, ValidationFailed
from core.managed_apps.schemas import ManagedAppNotification
from core.managed_apps.service import record_notification

router = APIRouter(prefix="/managedapp", tags=["managed applications"])
MAX_BODY_BYTES = 64 * 1024
ACTOR = "azure:managed-applications"


@router.post(
    "/resource",
    summary="Managed-application lifecycle notification",
    responses={
        400: {"description": "Body is not JSON or is too large"},
        401: {"description": "Missing or wrong `sig` query parameter"},
        422: {"description": "Body is not a notification this offer accepts"},
    },
)
async def managed_app_notification(
    request: Request, session: SessionDep, database: DatabaseDep, settings: SettingsDep
) -> dict[str, str]:
    """Store the notification durably (once per application, event type, state and time) and answer 200."""
    secret = settings.managed_app_notification_secret
    if secret is None:
        raise UpstreamUnavailable("managed-application notifications are not configured on this deployment")
    supplied = request.query_params.get("sig", "")
    if not hmac.compare_digest(supplied.encode(), secret.get_secret_value().encode()):
        _refuse(database, "missing or wrong signature parameter")
        raise Unauthenticated("missing or wrong signature parameter")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        _refuse(database, "body too large", size=len(body))
        raise BadRequest(f"notification body larger than {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        _refuse(database, "malformed JSON")
        raise BadRequest(f"body is not valid JSON: {error}") from None
    try:
        notification = ManagedAppNotification.model_validate(payload)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'body'}: {issue['msg']}" for issue in error.errors()
        )
        _refuse(database, "invalid notification", problems=problems)
        raise ValidationFailed(f"invalid notification: {problems}") from None
    try:
        result = record_notification(session, notification)
    except ValidationFailed as error:
        session.rollback()  # release the request's transaction before the refusal's own unit of work
        _refuse(database, error.message, application_id=notification.application_id)
        raise
    return {"status": result.outcome.value, "managed_application_id": result.managed_application.id}


def _refuse(database: DatabaseDep, reason: str, **details: object) -> None:
    record_refusal(
        database,
        actor=ACTOR,
        action="managed_app.notification_refused",
        subject_type="managed_application_notification",
        subject_id="-",
        reason=reason,
        **details,
    )
