"""Audit refused requests in their own unit of work, so the refusal is kept when the request rolls back."""

from __future__ import annotations

from typing import Any

from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.db import Database


def record_refusal(
    database: Database, *, actor: str, action: str, subject_type: str, subject_id: str, reason: str, **details: Any
) -> None:
    """Append a refused-outcome audit event and commit it at once."""
    with database.session() as session:
        record_audit_event(
            session,
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            outcome=AuditOutcome.REFUSED,
            details={"reason": reason, **details},
        )
