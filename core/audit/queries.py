"""Read the audit trail: one tenant's events for its admins, everything for operators, or the story of some subjects."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.audit.models import AuditEvent
from core.paging import Page, PageRequest, capped_count

SEARCH_LIMIT = 200


def search_audit_events(
    session: Session,
    *,
    tenant_row_id: str | None,
    action_prefix: str | None = None,
    actor: str | None = None,
    subject_id: str | None = None,
    since: datetime | None = None,
    limit: int = SEARCH_LIMIT,
) -> list[AuditEvent]:
    """Newest first. `tenant_row_id` None searches every tenant (operators); otherwise only that tenant's events."""
    statement = select(AuditEvent)
    if tenant_row_id is not None:
        statement = statement.where(AuditEvent.tenant_id == tenant_row_id)
    if action_prefix:
        statement = statement.where(col(AuditEvent.action).startswith(action_prefix, autoescape=True))
    if actor:
        statement = statement.where(AuditEvent.actor == actor)
    if subject_id:
        statement = statement.where(AuditEvent.subject_id == subject_id)
    if since is not None:
        statement = statement.where(col(AuditEvent.occurred_at) >= since)
    statement = statement.order_by(col(AuditEvent.occurred_at).desc(), col(AuditEvent.id).desc()).limit(limit)
    return list(session.exec(statement).all())


def search_audit_page(
    session: Session,
    page: PageRequest,
    *,
    action_prefix: str | None = None,
    actor: str | None = None,
    subject_id: str | None = None,
) -> Page[AuditEvent]:
    """Every tenant's events (operators), newest first, one page at a time with the number that match (capped)."""
    statement = select(AuditEvent)
    if action_prefix:
        statement = statement.where(col(AuditEvent.action).startswith(action_prefix, autoescape=True))
    if actor:
        statement = statement.where(AuditEvent.actor == actor)
    if subject_id:
        statement = statement.where(AuditEvent.subject_id == subject_id)
    total, capped = capped_count(session, statement)
    rows = session.exec(
        statement.order_by(col(AuditEvent.occurred_at).desc(), col(AuditEvent.id).desc())
        .offset(page.offset)
        .limit(page.size)
    ).all()
    return Page(list(rows), page, total, capped)


def events_about(session: Session, subjects: list[tuple[str, str]], *, limit: int) -> list[AuditEvent]:
    """Oldest first: the events whose (subject_type, subject_id) is one of `subjects`, at most `limit`."""
    condition = sa.or_(
        *[
            sa.and_(col(AuditEvent.subject_type) == subject_type, col(AuditEvent.subject_id) == subject_id)
            for subject_type, subject_id in subjects
        ]
    )
    statement = (
        select(AuditEvent).where(condition).order_by(col(AuditEvent.occurred_at), col(AuditEvent.id)).limit(limit)
    )
    return list(session.exec(statement).all())
