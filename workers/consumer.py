"""Outbox consumers: a delivered message is applied once, whatever the broker redelivers.

The consumer marks the outbox row completed first, in the transaction that applies its effect (the update
also locks the row), and returns early when it already was completed, or when the message is not the row's
(a stale message for a reused id; that mark is rolled back). A crash before commit leaves the row to run
again, and a crash after commit makes the next delivery a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task
from sqlmodel import Session

from core.correlation import correlation_scope
from core.db import get_database
from core.outbox.service import claim_for_completion
from core.telemetry.tracing import continued_trace, tracer
from workers.celery_app import celery_app

logger = logging.getLogger(__name__)

OutboxHandler = Callable[..., None]


def outbox_consumer(name: str, *, max_retries: int = 8) -> Callable[[OutboxHandler], Task]:
    """Register `handler(session, **arguments)` as the consumer of outbox messages named `name`.

    Exceptions retry with exponential backoff and jitter up to `max_retries`; after that the
    message stays uncompleted and the relay dispatches it again later.
    """

    def register(handler: OutboxHandler) -> Task:
        @celery_app.task(  # type: ignore[untyped-decorator]
            name=name,
            bind=True,
            acks_late=True,
            autoretry_for=(Exception,),
            retry_backoff=2,
            retry_backoff_max=300,
            retry_jitter=True,
            max_retries=max_retries,
        )
        def consume(
            task: Task,
            outbox_id: int,
            arguments: dict[str, Any],
            correlation_id: str | None = None,
            traceparent: str | None = None,
        ) -> str:
            # The span continues the trace of the request that enqueued the message (its traceparent on the row).
            with (
                correlation_scope(correlation_id),
                continued_trace(traceparent),
                tracer(__name__).start_as_current_span(f"outbox.consume {name}", attributes={"outbox.id": outbox_id}),
            ):
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
                    handler(session, **arguments)
                logger.info("outbox message completed", extra={"outbox_id": outbox_id, "task": name})
                return "completed"

        return consume

    return register


def run_in_session(handler: Callable[[Session], None]) -> None:
    """Run `handler` in one unit of work (used by periodic tasks that are not outbox consumers)."""
    with get_database().session() as session:
        handler(session)
