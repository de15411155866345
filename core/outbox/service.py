"""Enqueue work in the caller's transaction; claim and complete it from the relay and the consumers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.clock import utc_now
from core.correlation import current_correlation_id, new_correlation_id
from core.db import lock_rows
from core.outbox.models import OutboxMessage
from core.task_payloads import TaskPayload
from core.telemetry.tracing import current_traceparent


def enqueue(session: Session, payload: TaskPayload, *, delay_seconds: float = 0) -> OutboxMessage:
    """Add an outbox row for the payload's task in the current transaction: the work exists if and only if the
    change commits.

    Not flushed here: the row (and its id) reaches the database with the caller's next flush or commit, so a
    pass that records several rows pays for one flush.
    """
    message = OutboxMessage(
        task_name=payload.task_name,
        arguments=payload.arguments(),
        correlation_id=current_correlation_id() or new_correlation_id(),
        traceparent=current_traceparent(),
        available_at=utc_now() + timedelta(seconds=delay_seconds),
    )
    session.add(message)
    return message


def due_messages(
    session: Session,
    *,
    limit: int,
    redispatch_after: timedelta,
    now: datetime | None = None,
    first: frozenset[str] = frozenset(),
) -> list[OutboxMessage]:
    """Rows to dispatch now: never dispatched, or dispatched long ago and still not completed (lost on the way).

    Rows of the tasks in `first` go before any other due row (then oldest first): work with a deadline, such as
    Marketplace's verdicts, never waits behind a backlog. Locked with SKIP LOCKED on PostgreSQL so concurrent
    relays never claim the same row.
    """
    order: list[Any] = [col(OutboxMessage.id)]
    if first:
        order.insert(0, sa.case((col(OutboxMessage.task_name).in_(sorted(first)), 0), else_=1))
    now = now or utc_now()
    statement = lock_rows(
        select(OutboxMessage)
        .where(
            col(OutboxMessage.completed_at).is_(None),
            col(OutboxMessage.dead_lettered_at).is_(None),
            OutboxMessage.available_at <= now,
            sa.or_(
                col(OutboxMessage.dispatched_at).is_(None),
                col(OutboxMessage.dispatched_at) <= now - redispatch_after,
            ),
        )
        .order_by(*order)
        .limit(limit),
        skip_locked=True,
    )
    return list(session.exec(statement).all())


def mark_dispatched(session: Session, message: OutboxMessage) -> None:
    message.dispatched_at = utc_now()
    message.dispatch_count += 1
    session.add(message)


@dataclass(frozen=True)
class ClaimedMessage:
    """What a consumer checks a delivered message against: the row's task and arguments."""

    task_name: str
    arguments: dict[str, Any]


def claim_for_completion(session: Session, message_id: int) -> ClaimedMessage | None:
    """Mark the row completed in the caller's transaction, which also locks it; None when it already was.

    One statement instead of a locking read and a later update: the consumer's rollback (its handler failed,
    or the message is stale) undoes the mark, so the row is completed only together with the work's effect.
    """
    table: sa.Table = OutboxMessage.__table__  # type: ignore[attr-defined]
    statement = (
        sa.update(table)
        .where(table.c.id == message_id, table.c.completed_at.is_(None))
        .values(completed_at=utc_now())
        .returning(table.c.task_name, table.c.arguments)
    )
    row = session.execute(statement).first()
    return None if row is None else ClaimedMessage(row.task_name, row.arguments)


def pending_count(session: Session) -> int:
    """Live messages not completed yet: the backlog operators watch (dead letters are counted apart)."""
    statement = (
        select(sa.func.count())
        .select_from(OutboxMessage)
        .where(col(OutboxMessage.completed_at).is_(None), col(OutboxMessage.dead_lettered_at).is_(None))
    )
    return int(session.exec(statement).one())
