"""The outbox relay: hands committed outbox rows to the broker and marks them dispatched.

Publish happens before the row is marked, in one transaction per batch: if the process dies in
between, the row is still due and is published again; consumers are idempotent on the outbox id.
A message dispatched but never completed (lost by a broker) is published again after a timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from celery import Celery

from core.db import Database
from core.outbox.models import OutboxMessage
from core.outbox.service import due_messages, mark_dispatched

logger = logging.getLogger(__name__)

Publisher = Callable[[OutboxMessage], None]


def celery_publisher(app: Celery) -> Publisher:
    """Publish an outbox row as the Celery task it names."""

    def publish(message: OutboxMessage) -> None:
        app.send_task(
            message.task_name,
            kwargs={
                "outbox_id": message.id,
                "arguments": message.arguments,
                "correlation_id": message.correlation_id,
                "traceparent": message.traceparent,
            },
            task_id=f"outbox-{message.id}-{message.dispatch_count + 1}",
            headers={"x-ms-correlationid": message.correlation_id} if message.correlation_id else None,
        )

    return publish


class OutboxRelay:
    """Polls the outbox and publishes due messages."""

    def __init__(
        self, database: Database, publish: Publisher, *, batch_size: int = 100, redispatch_after_seconds: float = 300
    ) -> None:
        self.database = database
        self.publish = publish
        self.batch_size = batch_size
        self.redispatch_after = timedelta(seconds=redispatch_after_seconds)

    def run_once(self) -> int:
        """Publish one batch of due messages; returns how many were published."""
        with self.database.session() as session:
            messages = due_messages(session, limit=self.batch_size, redispatch_after=self.redispatch_after)
            for message in messages:
                self.publish(message)
                mark_dispatched(session, message)
            return len(messages)

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
