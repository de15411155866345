"""Marketplace verdicts never wait behind provisioning: their rows leave the outbox first, on their own queue.

Marketplace accepts a ChangePlan/ChangeQuantity on its own 10 s after the webhook, so the task that decides it
must not queue behind a backlog of controller passes, neither in the outbox nor in the broker.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from celery import Celery

from core.db import Database
from core.messaging import DEFAULT_QUEUE, VERDICT_QUEUE, TaskNames, celery_config
from core.outbox.models import OutboxMessage
from core.settings import Settings
from tests.support.factories import create_outbox_row
from workers.relay import OutboxRelay, celery_publisher


def _enqueue(database: Database, task_name: str, count: int) -> list[int]:
    with database.session() as session:
        rows = [create_outbox_row(session, task_name, {"index": index}) for index in range(count)]
        session.flush()
        return [row.id for row in rows if row.id is not None]


def test_the_relay_publishes_verdict_rows_before_an_older_provisioning_backlog(database: Database) -> None:
    backlog = _enqueue(database, TaskNames.CLUSTER_RECONCILE, 5)
    verdicts = _enqueue(database, TaskNames.MARKETPLACE_PROCESS_OPERATION, 2)
    published: list[list[int]] = []

    def record(messages: Sequence[OutboxMessage]) -> None:
        published.append([message.id for message in messages if message.id is not None])

    relay = OutboxRelay(database, record, batch_size=3, delivery_batch_size=8)
    assert relay.run_once() == 3
    # The verdicts first although they are the newest rows; the oldest provisioning row fills the pass.
    assert published == [[verdicts[0]], [verdicts[1]], backlog[:1]]
    assert relay.run_once() == 3
    assert relay.run_once() == 1
    assert sorted(id_ for batch in published for id_ in batch) == sorted(backlog + verdicts)


@pytest.fixture
def private_broker_app(base_settings: Settings, tmp_path: Path) -> Iterator[Celery]:
    """A Celery app on a broker of its own: nothing consumes it, so the queues can be counted."""
    settings = base_settings.model_copy(update={"broker_url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"})
    app = Celery("verdict-queue-tests")
    app.conf.update(celery_config(settings))
    yield app
    app.close()


def _depth(app: Celery, queue: str) -> int:
    with app.connection_for_write() as connection:
        _, messages, _ = connection.default_channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        return int(messages)


def test_verdict_messages_travel_on_their_own_queue_alone_or_in_batches(
    database: Database, private_broker_app: Celery
) -> None:
    _enqueue(database, TaskNames.MARKETPLACE_PROCESS_OPERATION, 3)
    _enqueue(database, TaskNames.CLUSTER_RECONCILE, 1)
    _enqueue(database, TaskNames.PIPELINE_PROBE, 2)
    relay = OutboxRelay(database, celery_publisher(private_broker_app), delivery_batch_size=2)
    assert relay.run_once() == 6
    # 3 verdict rows: 3 broker messages (none waits behind another); reconcile: 1; probes: 1 batch of 2.
    assert _depth(private_broker_app, VERDICT_QUEUE) == 3
    assert _depth(private_broker_app, DEFAULT_QUEUE) == 2
    # A row retried on its own after failing in a batch, or forwarded, is routed by its task name.
    route = private_broker_app.amqp.router.route({}, TaskNames.MARKETPLACE_PROCESS_OPERATION)
    assert route["queue"].name == VERDICT_QUEUE
    assert private_broker_app.amqp.router.route({}, TaskNames.CLUSTER_RECONCILE)["queue"].name == DEFAULT_QUEUE
