"""Record inbound events idempotently."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.clock import utc_now
from core.correlation import current_correlation_id
from core.db import insert_unless_conflicting
from core.inbox.models import InboundEvent, InboundSource


def record_inbound_event(
    session: Session, source: InboundSource, natural_id: str, payload: dict[str, Any]
) -> tuple[InboundEvent, bool]:
    """Store the event unless one with the same natural id exists; returns (event, created).

    One INSERT ... ON CONFLICT DO NOTHING RETURNING: the unique key decides, so a concurrent twin
    waits for the first transaction and then inserts nothing (no pre-check, no savepoint).
    """
    statement = insert_unless_conflicting(session, InboundEvent, ("source", "natural_id"), returning_rows=True)
    row = {
        "source": source.value,
        "natural_id": natural_id,
        "payload": payload,
        "correlation_id": current_correlation_id(),
    }
    created = session.exec(statement, params=row).scalars().first()
    if created is not None:
        return created, True
    existing = session.exec(
        select(InboundEvent).where(InboundEvent.source == source.value, InboundEvent.natural_id == natural_id)
    ).one()
    return existing, False


def mark_processed(session: Session, source: InboundSource, natural_id: str) -> None:
    """Record when the event's work was taken up (applied, or refused as stale); the first time is kept."""
    session.execute(
        sa.update(InboundEvent)
        .where(
            col(InboundEvent.source) == source.value,
            col(InboundEvent.natural_id) == natural_id,
            col(InboundEvent.processed_at).is_(None),
        )
        .values(processed_at=utc_now())
    )
