"""Outbox consumers: a delivered message is applied once, whatever the broker redelivers.

The consumer marks the outbox row completed first, in the transaction that applies its effect (the update
also locks the row), and returns early when it already was completed, or when the message is not the row's
(a stale message for a reused id; that mark is rolled back). A crash before commit leaves the row to run
again, and a crash after commit makes the next delivery a no-op.

The relay may carry several rows in one broker message (`deliver_outbox_batch`). Each row is still applied
in its own transaction, so a batch redelivered after a crash repeats only the rows it had not committed, and
a row that fails leaves the batch to go on and is retried as its own task.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task
from celery.utils.time import get_exponential_backoff_interval
from sqlmodel import Session

from core.correlation import correlation_scope
from core.db import get_database
from core.messaging import TaskNames
from core.outbox.dead_letters import GiveUp, describe_error, record_failure
from core.outbox.service import claim_for_completion
from core.settings import get_settings
from core.task_payloads import TaskPayload, read_payload
from core.telemetry.tracing import continued_trace, tracer
from workers.celery_app import celery_app

logger = logging.getLogger(__name__)

# Applies one row's arguments in the given session (the consumer's payload type reads them first).
OutboxHandler = Callable[[Session, dict[str, Any]], None]
PayloadT = TypeVar("PayloadT", bound=TaskPayload)
# Retries of a consumer task: exponential backoff with full jitter, from 2 s up to 5 min.
RETRY_BACKOFF_FACTOR = 2
RETRY_BACKOFF_MAX_SECONDS = 300
# What every outbox task shares: late acknowledgement, and automatic retries on that backoff.
RETRYING_TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (Exception,),
    "retry_backoff": RETRY_BACKOFF_FACTOR,
    "retry_backoff_max": RETRY_BACKOFF_MAX_SECONDS,
    "retry_jitter": True,
}

# Outbox consumers of this process by task name, for the batches that carry their messages.
_consumers: dict[str, tuple[OutboxHandler, Task]] = {}


def apply_outbox_message(
    name: str,
    handler: OutboxHandler,
    outbox_id: int,
    arguments: dict[str, Any],
    correlation_id: str | None = None,
    traceparent: str | None = None,
) -> str:
    """Apply one outbox row's message in its own transaction: "completed", "duplicate", "stale", "dead_lettered" or
    "settled".

    A handler that raises has its transaction rolled back; the failed attempt is then counted on the row in a
    transaction of its own. The error is raised again (the task retries) unless the row is now dead-lettered:
    its attempts are exhausted, or the handler raised GiveUp.
    """
    # The span continues the trace of the request that enqueued the message (its traceparent on the row).
    with (
        correlation_scope(correlation_id),
        continued_trace(traceparent),
        tracer(__name__).start_as_current_span(f"outbox.consume {name}", attributes={"outbox.id": outbox_id}),
    ):
        try:
            with get_database().session() as session:
                message = claim_for_completion(session, outbox_id)
                if message is None:
                    logger.info("outbox message already completed", extra={"outbox_id": outbox_id, "task": name})
                    return "duplicate"
                if message.task_name != name or message.arguments != arguments:
                    # A message for a row since deleted whose id was reused (SQLite reuses the highest rowid):
                    # applying it would complete the new row with another row's work.
                    logger.warning("outbox message does not match its row", extra={"outbox_id": outbox_id})
                    session.rollback()
                    return "stale"
                handler(session, arguments)
        except Exception as error:
            settled = _count_failure(name, outbox_id, error)
            if settled is not None:
                return settled
            raise
        logger.info("outbox message completed", extra={"outbox_id": outbox_id, "task": name})
        return "completed"


def _count_failure(name: str, outbox_id: int, error: Exception) -> str | None:
    """Record a failed attempt on the row: "dead_lettered" (stop retrying), "settled" (another delivery completed
    or dead-lettered it meanwhile: nothing is left to retry), or None (retry)."""
    give_up = isinstance(error, GiveUp)
    with get_database().session() as session:
        outcome = record_failure(
            session, outbox_id, describe_error(error), max_attempts=get_settings().outbox_max_attempts, give_up=give_up
        )
    if outcome is None:
        return "settled"
    if not outcome.dead_lettered:
        return None
    logger.error(
        "outbox message dead-lettered",
        extra={"outbox_id": outbox_id, "task": name, "attempts": outcome.attempts, "error": describe_error(error)},
    )
    return "dead_lettered"


def outbox_consumer(
    payload_type: type[PayloadT], *, max_retries: int = 8
) -> Callable[[Callable[[Session, PayloadT], None]], Task]:
    """Register `handler(session, payload)` as the consumer of the payload type's task.

    The row's arguments are read as the payload first; arguments the task does not take raise
    MalformedTaskPayload, which retries like any failure (during a rolling upgrade a newer worker may take it).

    Exceptions retry with exponential backoff and jitter up to `max_retries`; after that the
    message stays uncompleted and the relay dispatches it again later, until the row's failed attempts reach
    CP_OUTBOX_MAX_ATTEMPTS and it is dead-lettered (see core.outbox.dead_letters).
    """

    name = payload_type.task_name

    def register(handler: Callable[[Session, PayloadT], None]) -> Task:
        def apply(session: Session, arguments: dict[str, Any]) -> None:
            handler(session, read_payload(payload_type, arguments))

        @celery_app.task(  # type: ignore[untyped-decorator]
            name=name, bind=True, max_retries=max_retries, **RETRYING_TASK_OPTIONS
        )
        def consume(
            task: Task,
            outbox_id: int,
            arguments: dict[str, Any],
            correlation_id: str | None = None,
            traceparent: str | None = None,
        ) -> str:
            return apply_outbox_message(name, apply, outbox_id, arguments, correlation_id, traceparent)

        _consumers[name] = (apply, consume)
        return consume

    return register


@celery_app.task(name=TaskNames.OUTBOX_DELIVER_BATCH, max_retries=8, **RETRYING_TASK_OPTIONS)  # type: ignore[untyped-decorator]
def deliver_outbox_batch(messages: list[dict[str, Any]]) -> dict[str, int]:
    """Apply several outbox rows' messages one after the other, each in its own transaction.

    `messages` holds `{"task_name", "kwargs"}` items, `kwargs` being what the row's own task takes. A row
    whose handler raises is published again as its own task after a backoff, so it retries as a single
    message would and does not hold back the rows after it. Only a failure to publish fails the batch; its
    redelivery finds the committed rows completed.
    """
    outcomes: Counter[str] = Counter()
    for message in messages:
        name, kwargs = message["task_name"], message["kwargs"]
        consumer = _consumers.get(name)
        if consumer is None:
            # Not a consumer this process registers: hand it to whichever worker does.
            celery_app.send_task(name, kwargs=kwargs)
            outcomes["forwarded"] += 1
            continue
        handler, single_task = consumer
        try:
            outcomes[apply_outbox_message(name, handler, **kwargs)] += 1
        except Exception:
            outbox_id = kwargs.get("outbox_id")
            logger.warning(
                "outbox message failed in a batch; retrying it on its own",
                exc_info=True,
                extra={"outbox_id": outbox_id, "task": name},
            )
            countdown = get_exponential_backoff_interval(
                RETRY_BACKOFF_FACTOR, 0, RETRY_BACKOFF_MAX_SECONDS, full_jitter=True
            )
            single_task.apply_async(kwargs=kwargs, countdown=countdown, retries=1, task_id=f"outbox-{outbox_id}-alone")
            outcomes["retrying"] += 1
    return dict(outcomes)


def run_in_session(handler: Callable[[Session], None]) -> None:
    """Run `handler` in one unit of work (used by periodic tasks that are not outbox consumers)."""
    with get_database().session() as session:
        handler(session)
