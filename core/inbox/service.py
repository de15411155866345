"""Record inbound events idempotently."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.correlation import current_correlation_id
from core.inbox.models import InboundEvent, InboundSource


def record_inbound_event(
    session: Session, source: InboundSource, natural_id: str, payload: dict[str, Any]
) -> tuple[InboundEvent, bool]:
    """Store the event unless one with the same natural id exists; returns (event, created).

    A savepoint absorbs the unique-key race when the same event arrives twice concurrently.
    """
    existing = session.exec(
        select(InboundEvent).where(InboundEvent.source == source.value, InboundEvent.natural_id == natural_id)
    ).first()
    if existing is not None:
        return existing, False
    event = InboundEvent(
        source=source.value, natural_id=natural_id, payload=payload, correlation_id=current_correlation_id()
    )
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        winner = session.exec(
            select(InboundEvent).where(InboundEvent.source == source.value, InboundEvent.natural_id == natural_id)
        ).one()
        return winner, False
    return event, True
