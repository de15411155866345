"""The transactional outbox: atomic with the state change, re-dispatched after a crash, applied once."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from sqlmodel import select

from core.audit.models import AuditEvent
from core.audit.service import record_audit_event
from core.clock import utc_now
from core.db import Database
from core.messaging import TaskNames, celery_config
from core.outbox.models import OutboxMessage
from core.outbox.pipeline_probe import start_probe, wait_for_probe
from core.outbox.service import enqueue
from core.settings import Settings
from core.task_payloads import PipelineProbe
from harness.processes import ProcessGroup
from tests.support.factories import create_outbox_row
from tests.support.waiting import wait_for
from workers.relay import OutboxRelay, Publisher, celery_publisher


@pytest.fixture
def publisher_app(base_settings: Settings) -> Iterator[Celery]:
    app = Celery("outbox-tests")
    app.conf.update(celery_config(base_settings))
    yield app
    app.close()


def _messages(database: Database) -> list[OutboxMessage]:
    with database.session() as session:
        return list(session.exec(select(OutboxMessage)).all())


def _probe_effects(database: Database, probe_id: str) -> int:
    with database.session() as session:
        statement = select(AuditEvent).where(
            AuditEvent.action == "system.pipeline_probe.completed", AuditEvent.subject_id == probe_id
        )
        return len(session.exec(statement).all())


def test_state_change_and_outbox_row_commit_together(database: Database) -> None:
    with database.session() as session:
        record_audit_event(session, actor="test", action="thing.changed", subject_type="thing", subject_id="1")
        enqueue(session, PipelineProbe(probe_id="committed"))
    assert [message.arguments["probe_id"] for message in _messages(database)] == ["committed"]


def test_state_change_and_outbox_row_roll_back_together(database: Database) -> None:
    def failing_unit_of_work() -> None:
        with database.session() as session:
            record_audit_event(session, actor="test", action="thing.changed", subject_type="thing", subject_id="2")
            enqueue(session, PipelineProbe(probe_id="rolled-back"))
            raise RuntimeError("the unit of work fails after both writes")

    with pytest.raises(RuntimeError):
        failing_unit_of_work()
    assert _messages(database) == []
    with database.session() as session:
        assert session.exec(select(AuditEvent)).all() == []


@pytest.mark.broker
def test_relay_round_trip_through_the_broker(
    database: Database, publisher_app: Celery, worker_processes: ProcessGroup
) -> None:
    probe_id = start_probe(database)
    assert OutboxRelay(database, celery_publisher(publisher_app)).run_once() == 1
    assert wait_for_probe(database, probe_id, timeout_seconds=60) is not None
    [message] = _messages(database)
    assert message.dispatch_count == 1
    assert message.completed_at is not None
    assert OutboxRelay(database, celery_publisher(publisher_app)).run_once() == 0


@pytest.mark.broker
def test_message_lost_after_dispatch_is_dispatched_again(
    database: Database, publisher_app: Celery, worker_processes: ProcessGroup
) -> None:
    probe_id = start_probe(database)
    with database.session() as session:
        [message] = session.exec(select(OutboxMessage)).all()
        # As if a broker lost it: marked dispatched long ago, never completed.
        message.dispatched_at = utc_now() - timedelta(minutes=10)
        message.dispatch_count = 1
        session.add(message)
    relay = OutboxRelay(database, celery_publisher(publisher_app), redispatch_after_seconds=300)
    assert relay.run_once() == 1
    assert wait_for_probe(database, probe_id, timeout_seconds=60) is not None
    [message] = _messages(database)
    assert message.dispatch_count == 2
    assert _probe_effects(database, probe_id) == 1


@pytest.mark.broker
def test_scheduler_relays_the_outbox_to_a_worker(
    database: Database, base_settings: Settings, worker_processes: ProcessGroup, tmp_path: Path
) -> None:
    group = ProcessGroup(tmp_path, {**os.environ, **base_settings.as_environment()})
    group.add("beat", "beat")
    group.start_all()
    try:
        probe_ids = [start_probe(database) for _ in range(5)]
        for probe_id in probe_ids:
            assert wait_for_probe(database, probe_id, timeout_seconds=60) is not None
    finally:
        group.stop_all()
    assert all(message.completed_at is not None for message in _messages(database))


@pytest.mark.broker
def test_a_stale_message_for_a_reused_row_id_is_not_applied_to_the_new_row(
    database: Database, publisher_app: Celery, worker_processes: ProcessGroup
) -> None:
    probe_id = start_probe(database)
    [message] = _messages(database)
    # What a message published for an earlier row with the same id looks like: another probe's arguments.
    publisher_app.send_task(
        TaskNames.PIPELINE_PROBE,
        kwargs={"outbox_id": message.id, "arguments": {"probe_id": "an-earlier-row"}},
        task_id=f"outbox-{message.id}-stale",
    )
    relay = OutboxRelay(database, celery_publisher(publisher_app))
    # The relay skips a row the worker holds locked while it looks at the stale message: try until it is free.
    wait_for(lambda: relay.run_once() == 1, what="the relay to publish the row")
    assert wait_for_probe(database, probe_id, timeout_seconds=60) is not None
    assert _probe_effects(database, "an-earlier-row") == 0
    assert _probe_effects(database, probe_id) == 1


def _counting(publish: Publisher, sizes: list[int]) -> Publisher:
    def counted(messages: Sequence[OutboxMessage]) -> None:
        sizes.append(len(messages))
        publish(messages)

    return counted


@pytest.mark.broker
def test_rows_due_together_travel_in_shared_messages_and_each_applies_once(
    database: Database, publisher_app: Celery, worker_processes: ProcessGroup
) -> None:
    probe_ids = [start_probe(database) for _ in range(7)]
    sizes: list[int] = []
    relay = OutboxRelay(database, _counting(celery_publisher(publisher_app), sizes), delivery_batch_size=3)
    assert relay.run_once() == 7
    assert sorted(sizes) == [2, 2, 3]
    for probe_id in probe_ids:
        assert wait_for_probe(database, probe_id, timeout_seconds=60) is not None
    assert all(message.dispatch_count == 1 and message.completed_at for message in _messages(database))
    assert [_probe_effects(database, probe_id) for probe_id in probe_ids] == [1] * 7


@pytest.mark.broker
def test_a_batch_delivered_twice_applies_each_row_once(
    database: Database, publisher_app: Celery, worker_processes: ProcessGroup
) -> None:
    probe_ids = [start_probe(database) for _ in range(3)]
    messages = _messages(database)
    publish = celery_publisher(publisher_app)
    # What a broker redelivering an unacknowledged batch looks like: the same batch twice.
    publish(messages)
    publish(messages)
    for probe_id in probe_ids:
        assert wait_for_probe(database, probe_id, timeout_seconds=60) is not None
    [worker] = worker_processes.processes
    wait_for(
        lambda: worker.log_path.read_text(errors="replace").count("outbox message already completed") >= 3,
        what="the second delivery to find every row completed",
    )
    assert [_probe_effects(database, probe_id) for probe_id in probe_ids] == [1, 1, 1]


@pytest.mark.broker
def test_a_row_failing_in_a_batch_does_not_hold_back_the_others_and_is_retried_alone(
    database: Database, publisher_app: Celery, worker_processes: ProcessGroup
) -> None:
    first = start_probe(database)
    with database.session() as session:
        # A probe message its consumer refuses (an argument it does not take): it fails on every attempt.
        failing = create_outbox_row(session, TaskNames.PIPELINE_PROBE, {"probe_id": "refused", "unexpected": True})
        failing_id = failing.id
    last = start_probe(database)
    sizes: list[int] = []
    relay = OutboxRelay(database, _counting(celery_publisher(publisher_app), sizes), delivery_batch_size=8)
    assert relay.run_once() == 3
    assert sizes == [3]
    assert wait_for_probe(database, first, timeout_seconds=60) is not None
    assert wait_for_probe(database, last, timeout_seconds=60) is not None
    [worker] = worker_processes.processes
    # Its own task (named after the row) runs the consumer again, fails again and is retried by Celery.
    wait_for(
        lambda: f"[outbox-{failing_id}-alone] retry" in worker.log_path.read_text(errors="replace"),
        what="the failed row to be retried as its own task",
    )
    with database.session() as session:
        row = session.get(OutboxMessage, failing_id)
    assert row is not None
    assert row.completed_at is None
