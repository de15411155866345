"""Record audit events in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from core.audit.actions import AuditAction
from core.audit.models import AuditEvent, AuditOutcome
from core.correlation import current_correlation_id
from core.redaction import redact_value


def record_audit_event(
    session: Session,
    *,
    actor: str,
    action: AuditAction,
    subject_type: str,
    subject_id: str,
    tenant_id: str | None = None,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event, committed with the change it describes.

    Not flushed here: it goes to the database with the caller's next flush or commit, so a request
    that records several rows pays for one flush.
    """
    event = AuditEvent(
        actor=actor,
        action=str(action),  # the row holds the plain value
        subject_type=subject_type,
        subject_id=subject_id,
        tenant_id=tenant_id,
        outcome=outcome,
        # Details quote requests and errors: a token, code or secret in them is replaced before it is stored.
        before=redact_value(before) if before else before,
        after=redact_value(after) if after else after,
        details=redact_value(details) if details else {},
        correlation_id=current_correlation_id(),
    )
    session.add(event)
    return event
