"""Dead letters: outbox rows that gave up, kept with their last error until an operator retries or dismisses them.

A row is dead-lettered when its consumer failed `CP_OUTBOX_MAX_ATTEMPTS` times; when it was dispatched that many
times more than it failed (each worker that took it was lost before recording anything); or at once when the
consumer raises `GiveUp` (a failure no retry can fix, such as Marketplace not knowing the operation). A dead-lettered
row is never dispatched again by itself; it stays out of the backlog and lag figures and is counted on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.audit.actions import AuditAction
from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.clock import utc_now
from core.db import lock_rows
from core.errors import Conflict, ControlPlaneError, NotFound
from core.outbox.models import OutboxMessage

ERROR_MAX_LENGTH = 2048
SUBJECT_TYPE = "outbox_message"
WORKER_ACTOR = "system:worker"


class NotADeadLetter(Conflict):
    """The message was retried or dismissed already (a second click, or another operator was first)."""

    code = "NotADeadLetter"


class GiveUp(ControlPlaneError):
    """Raised by a consumer for a failure that repeating cannot fix: the row is dead-lettered at once."""

    code = "GiveUp"


@dataclass(frozen=True)
class FailureOutcome:
    """What a recorded failure did to the row."""

    attempts: int
    dead_lettered: bool


def describe_error(error: BaseException) -> str:
    """The error as operators read it: its class and message, within the column's length."""
    message = error.message if isinstance(error, ControlPlaneError) else str(error)
    return f"{type(error).__name__}: {message}"[:ERROR_MAX_LENGTH]


def record_failure(
    session: Session, message_id: int, error: str, *, max_attempts: int, give_up: bool = False
) -> FailureOutcome | None:
    """Count one failed attempt of a row (in its own transaction, after the handler's was rolled back).

    Dead-letters the row when its attempts reach `max_attempts`, or at once with `give_up`. None when the row is
    gone, already completed, or already dead-lettered (a concurrent delivery settled it).
    """
    message = session.exec(
        lock_rows(
            select(OutboxMessage).where(
                OutboxMessage.id == message_id,
                col(OutboxMessage.completed_at).is_(None),
                col(OutboxMessage.dead_lettered_at).is_(None),
            )
        )
    ).first()
    if message is None:
        return None
    message.attempts += 1
    message.last_error = error[:ERROR_MAX_LENGTH]
    dead = give_up or message.attempts >= max_attempts
    if dead:
        _dead_letter(session, message, reason="gave up at once" if give_up else "attempts exhausted")
    session.add(message)
    session.flush()
    return FailureOutcome(message.attempts, dead)


def dead_letter_undeliverable(session: Session, message: OutboxMessage, *, max_attempts: int) -> bool:
    """Dead-letter a due row dispatched `max_attempts` times more than it recorded a failure: the workers that took
    it were lost before they could even record one (a crash, an out-of-memory kill). True when it did.

    A row whose deliveries fail is bounded by its recorded attempts instead; counting only the dispatches no failure
    accounts for keeps a row in its retry backoff (redispatched meanwhile) from being dead-lettered early.
    """
    if message.dispatch_count - message.attempts < max_attempts:
        return False
    message.last_error = (
        f"dispatched {message.dispatch_count} times without completing; the worker that took it was lost each time"
        + (f" (last error: {message.last_error})" if message.last_error else "")
    )[:ERROR_MAX_LENGTH]
    _dead_letter(session, message, reason="never completed")
    session.add(message)
    return True


def _dead_letter(session: Session, message: OutboxMessage, *, reason: str) -> None:
    message.dead_lettered_at = utc_now()
    # The audit trail is what alerts operators (and what Log Analytics exports); the page shows the rest.
    record_audit_event(
        session,
        actor=WORKER_ACTOR,
        action=AuditAction.OUTBOX_DEAD_LETTERED,
        subject_type=SUBJECT_TYPE,
        subject_id=str(message.id),
        outcome=AuditOutcome.FAILURE,
        details={
            "task": message.task_name,
            "reason": reason,
            "attempts": message.attempts,
            "dispatch_count": message.dispatch_count,
            "error": message.last_error,
        },
    )


def dead_letters(session: Session, *, limit: int = 200) -> list[OutboxMessage]:
    """Dead-lettered rows neither retried nor dismissed yet, newest first."""
    statement = (
        select(OutboxMessage)
        .where(col(OutboxMessage.dead_lettered_at).is_not(None), col(OutboxMessage.completed_at).is_(None))
        .order_by(col(OutboxMessage.dead_lettered_at).desc(), col(OutboxMessage.id).desc())
        .limit(limit)
    )
    return list(session.exec(statement).all())


def dead_letter_count(session: Session) -> int:
    """Dead letters waiting for an operator."""
    statement = (
        select(sa.func.count())
        .select_from(OutboxMessage)
        .where(col(OutboxMessage.dead_lettered_at).is_not(None), col(OutboxMessage.completed_at).is_(None))
    )
    return int(session.exec(statement).one())


def retry_dead_letter(session: Session, message_id: int, *, actor: str) -> OutboxMessage:
    """Give a dead letter a fresh attempt budget: the relay dispatches it again at once. Audited."""

    def retry(message: OutboxMessage) -> None:
        message.dead_lettered_at = None
        message.attempts = 0
        message.dispatch_count = 0
        message.dispatched_at = None
        message.available_at = utc_now()

    return _settle_dead_letter(
        session, message_id, actor=actor, action=AuditAction.OUTBOX_DEAD_LETTER_RETRIED, change=retry
    )


def dismiss_dead_letter(session: Session, message_id: int, *, actor: str) -> OutboxMessage:
    """Close a dead letter without running it (the operator handled it otherwise). Audited; the row stays."""

    def dismiss(message: OutboxMessage) -> None:
        message.completed_at = utc_now()

    return _settle_dead_letter(
        session, message_id, actor=actor, action=AuditAction.OUTBOX_DEAD_LETTER_DISMISSED, change=dismiss
    )


def _settle_dead_letter(
    session: Session, message_id: int, *, actor: str, action: AuditAction, change: Callable[[OutboxMessage], None]
) -> OutboxMessage:
    """An operator's decision on one dead letter: lock it, change it, audit before and after."""
    message = _open_dead_letter(session, message_id)
    before = _state(message)
    change(message)
    session.add(message)
    record_audit_event(
        session,
        actor=actor,
        action=action,
        subject_type=SUBJECT_TYPE,
        subject_id=str(message_id),
        before=before,
        after=_state(message),
        details={"task": message.task_name},
    )
    session.flush()
    return message


def _open_dead_letter(session: Session, message_id: int) -> OutboxMessage:
    message = session.exec(lock_rows(select(OutboxMessage).where(OutboxMessage.id == message_id))).first()
    if message is None:
        raise NotFound("outbox message not found", details={"outbox_id": message_id})
    if message.dead_lettered_at is None or message.completed_at is not None:
        # A second click, or another operator was first: say so rather than act twice.
        raise NotADeadLetter(
            "this message is not a dead letter (already retried or dismissed)", details={"outbox_id": message_id}
        )
    return message


def _state(message: OutboxMessage) -> dict[str, Any]:
    return {
        "dead_lettered_at": _iso(message.dead_lettered_at),
        "completed_at": _iso(message.completed_at),
        "attempts": message.attempts,
        "last_error": message.last_error,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
