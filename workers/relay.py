"""The outbox relay: hands committed outbox rows to the broker and marks them dispatched.

Publish happens before the row is marked, in one transaction per batch: if the process dies in
between, the row is still due and is published again; consumers are idempotent on the outbox id.
A message dispatched but never completed (lost by a broker) is published again after a timeout.

Rows of the same task due together travel in shared broker messages of up to `delivery_batch_size` rows,
which spares the broker and the workers a message's overhead per row; each row is still applied in its own
transaction (see workers.consumer).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from celery import Celery

from core.db import Database
from core.messaging import VERDICT_TASKS, TaskNames, queue_for
from core.outbox.dead_letters import dead_letter_undeliverable
from core.outbox.models import OutboxMessage
from core.outbox.service import due_messages, mark_dispatched

logger = logging.getLogger(__name__)

# Publishes rows as one broker message (one row: the row's own task).
Publisher = Callable[[Sequence[OutboxMessage]], None]


def _task_kwargs(message: OutboxMessage) -> dict[str, Any]:
    """What the consumer task of an outbox row takes."""
    return {
        "outbox_id": message.id,
        "arguments": message.arguments,
        "correlation_id": message.correlation_id,
        "traceparent": message.traceparent,
    }


def celery_publisher(app: Celery) -> Publisher:
    """Publish one row as the Celery task it names, several as one `outbox.deliver_batch` task."""

    def publish(messages: Sequence[OutboxMessage]) -> None:
        first = messages[0]
        task_id = f"outbox-{first.id}-{first.dispatch_count + 1}"
        if len(messages) == 1:
            app.send_task(
                first.task_name,
                kwargs=_task_kwargs(first),
                task_id=task_id,
                headers={"x-ms-correlationid": first.correlation_id} if first.correlation_id else None,
            )
            return
        # A batch holds rows of one task: it travels on that task's queue (a verdict never waits behind provisioning).
        app.send_task(
            TaskNames.OUTBOX_DELIVER_BATCH,
            kwargs={"messages": [{"task_name": item.task_name, "kwargs": _task_kwargs(item)} for item in messages]},
            task_id=f"{task_id}-batch{len(messages)}",
            queue=queue_for(first.task_name),
        )

    return publish


def delivery_batches(
    messages: Sequence[OutboxMessage], batch_size: int, *, alone: frozenset[str] = frozenset()
) -> list[list[OutboxMessage]]:
    """Split due rows into broker messages: rows of one task together, in id order, at most `batch_size` each.

    A task's rows are spread evenly over as few messages as the size allows (10 rows at size 8 make 5 + 5, not
    8 + 2), so the workers that take them get similar shares. Rows of the tasks in `alone` each travel in a
    message of their own: in a shared message the last row would wait for every row before it, one after the
    other, which a verdict due within Marketplace's 10 s cannot afford.
    """
    by_task: dict[str, list[OutboxMessage]] = {}
    for message in messages:
        by_task.setdefault(message.task_name, []).append(message)
    batches: list[list[OutboxMessage]] = []
    for task_name, rows in by_task.items():
        count = len(rows) if task_name in alone else math.ceil(len(rows) / batch_size)
        batches.extend(rows[index::count] for index in range(count))
    return batches


class OutboxRelay:
    """Polls the outbox and publishes due messages."""

    def __init__(
        self,
        database: Database,
        publish: Publisher,
        *,
        batch_size: int = 100,
        delivery_batch_size: int = 1,
        redispatch_after_seconds: float = 300,
        max_attempts: int = 10,
    ) -> None:
        self.database = database
        self.publish = publish
        self.batch_size = batch_size
        self.delivery_batch_size = delivery_batch_size
        self.redispatch_after = timedelta(seconds=redispatch_after_seconds)
        self.max_attempts = max_attempts

    def run_once(self) -> int:
        """Publish one batch of due messages; returns how many were published."""
        with self.database.session() as session:
            due = due_messages(
                session, limit=self.batch_size, redispatch_after=self.redispatch_after, first=VERDICT_TASKS
            )
            # A row every worker lost before it could even record a failure must not be handed out forever.
            messages = [
                message
                for message in due
                if not dead_letter_undeliverable(session, message, max_attempts=self.max_attempts)
            ]
            for batch in delivery_batches(messages, self.delivery_batch_size, alone=VERDICT_TASKS):
                self.publish(batch)
                for message in batch:
                    mark_dispatched(session, message)
            return len(due)

    def run_forever(self, stop: threading.Event, poll_interval_seconds: float) -> None:
        """Relay until `stop` is set; drains without waiting while there is a backlog."""
        while not stop.is_set():
            try:
                published = self.run_once()
            except Exception:
                logger.exception("outbox relay pass failed; retrying")
                published = 0
            if published < self.batch_size:
                stop.wait(poll_interval_seconds)
