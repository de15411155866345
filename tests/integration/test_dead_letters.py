"""Dead letters: every outbox row has bounded attempts, then waits with its last error for an operator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery import Celery
from sqlmodel import col, select

from core.audit.models import AuditEvent
from core.clock import utc_now
from core.db import Database
from core.errors import Conflict
from core.messaging import TaskNames, celery_config
from core.outbox.dead_letters import dead_letter_count, dead_letters, dismiss_dead_letter, retry_dead_letter
from core.outbox.models import OutboxMessage
from core.outbox.pipeline_probe import start_probe, wait_for_probe
from core.outbox.service import pending_count
from core.settings import Settings
from core.telemetry.database_gauges import DatabaseGaugeCollector
from harness.processes import ProcessGroup
from tests.support.factories import create_outbox_row
from tests.support.waiting import wait_for
from workers.relay import OutboxRelay, celery_publisher

MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def bounded_worker(tmp_path_factory: pytest.TempPathFactory, base_settings: Settings) -> Iterator[ProcessGroup]:
    """A worker that gives a row three attempts."""
    environment = {**os.environ, **base_settings.as_environment(), "CP_OUTBOX_MAX_ATTEMPTS": str(MAX_ATTEMPTS)}
    group = ProcessGroup(tmp_path_factory.mktemp("dead-letter-logs"), environment)
    group.add("worker", "worker", "--concurrency=2")
    group.start_all()
    yield group
    group.stop_all()


@pytest.fixture
def publisher_app(base_settings: Settings) -> Iterator[Celery]:
    app = Celery("dead-letter-tests")
    app.conf.update(celery_config(base_settings))
    yield app
    app.close()


def _row(database: Database, message_id: int) -> OutboxMessage:
    with database.session() as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None
        return row


def _audit(database: Database, action: str, message_id: int) -> list[AuditEvent]:
    with database.session() as session:
        statement = select(AuditEvent).where(AuditEvent.action == action, AuditEvent.subject_id == str(message_id))
        return list(session.exec(statement.order_by(col(AuditEvent.id))).all())


def _gauges(database: Database) -> dict[str, float]:
    return {
        family.name: family.samples[0].value
        for family in DatabaseGaugeCollector(database).collect()
        if family.name.startswith("cp_outbox_")
    }


def _failing_row(database: Database) -> int:
    with database.session() as session:
        # A probe message its consumer refuses (an argument it does not take): it fails on every attempt.
        message = create_outbox_row(session, TaskNames.PIPELINE_PROBE, {"probe_id": "refused", "unexpected": True})
        assert message.id is not None
        return message.id


@pytest.mark.broker
def test_a_row_failing_every_attempt_is_dead_lettered_with_its_last_error_and_never_dispatched_again(
    database: Database, publisher_app: Celery, bounded_worker: ProcessGroup
) -> None:
    failing_id = _failing_row(database)
    healthy = start_probe(database)
    relay = OutboxRelay(database, celery_publisher(publisher_app), max_attempts=MAX_ATTEMPTS)
    assert relay.run_once() == 2
    assert wait_for_probe(database, healthy, timeout_seconds=60) is not None

    dead = wait_for(
        lambda: (row := _row(database, failing_id)).dead_lettered_at is not None and row,
        timeout_seconds=90,
        what="the failing row to be dead-lettered",
    )
    assert dead.attempts == MAX_ATTEMPTS
    assert dead.completed_at is None
    assert dead.last_error is not None
    # Named for what it is: arguments the task does not take (a message from another release, say).
    assert dead.last_error.startswith("MalformedTaskPayload: system.pipeline_probe cannot take")
    assert "unexpected: Extra inputs are not permitted" in dead.last_error
    [event] = _audit(database, "outbox.dead_lettered", failing_id)
    assert event.outcome == "failure"
    assert event.details["reason"] == "attempts exhausted"

    # Out of the relay's hands (even long past the redispatch delay), the backlog and the lag; counted on its own.
    with database.session() as session:
        session.get(OutboxMessage, failing_id).dispatched_at = utc_now() - timedelta(days=1)  # type: ignore[union-attr]
    assert relay.run_once() == 0
    with database.session() as session:
        assert pending_count(session) == 0
        assert dead_letter_count(session) == 1
        assert [row.id for row in dead_letters(session)] == [failing_id]
    gauges = _gauges(database)
    assert gauges["cp_outbox_dead_letters"] == 1.0
    assert gauges["cp_outbox_backlog"] == 0.0
    assert gauges["cp_outbox_lag_seconds"] == 0.0


def test_retry_gives_a_fresh_budget_and_dismiss_closes_the_row_both_audited_once(database: Database) -> None:
    failing_id = _failing_row(database)
    with database.session() as session:
        row = session.get(OutboxMessage, failing_id)
        assert row is not None
        row.attempts, row.dispatch_count, row.dispatched_at = MAX_ATTEMPTS, 2, utc_now()
        row.dead_lettered_at, row.last_error = utc_now(), "TypeError: refused"

    with database.session() as session:
        retry_dead_letter(session, failing_id, actor="operator@publisher")
    retried = _row(database, failing_id)
    assert (retried.dead_lettered_at, retried.attempts, retried.dispatch_count, retried.dispatched_at) == (
        None,
        0,
        0,
        None,
    )
    assert retried.last_error == "TypeError: refused"  # kept: the operator sees what failed before
    [retry_event] = _audit(database, "outbox.dead_letter_retried", failing_id)
    assert retry_event.actor == "operator@publisher"
    assert retry_event.before is not None
    assert retry_event.before["attempts"] == MAX_ATTEMPTS
    with pytest.raises(Conflict), database.session() as session:  # a second click does not act twice
        retry_dead_letter(session, failing_id, actor="operator@publisher")

    with database.session() as session:
        session.get(OutboxMessage, failing_id).dead_lettered_at = utc_now()  # type: ignore[union-attr]
    with database.session() as session:
        dismiss_dead_letter(session, failing_id, actor="operator@publisher")
    assert _row(database, failing_id).completed_at is not None
    with database.session() as session:
        assert dead_letter_count(session) == 0
    with pytest.raises(Conflict), database.session() as session:
        dismiss_dead_letter(session, failing_id, actor="operator@publisher")
    assert len(_audit(database, "outbox.dead_letter_dismissed", failing_id)) == 1


def test_a_row_every_worker_lost_is_dead_lettered_by_the_relay_after_its_dispatches_run_out(
    database: Database, base_settings: Settings
) -> None:
    failing_id = _failing_row(database)
    with database.session() as session:
        row = session.get(OutboxMessage, failing_id)
        assert row is not None
        # Dispatched three times, never completed and no failure recorded: each worker died holding it.
        row.dispatch_count, row.dispatched_at = MAX_ATTEMPTS, utc_now() - timedelta(hours=1)
    published: list[int] = []
    relay = OutboxRelay(
        database,
        lambda messages: published.extend(message.id or 0 for message in messages),
        redispatch_after_seconds=60,
        max_attempts=MAX_ATTEMPTS,
    )
    assert relay.run_once() == 1
    assert published == []
    dead = _row(database, failing_id)
    assert dead.dead_lettered_at is not None
    assert dead.last_error is not None
    assert "dispatched 3 times without completing" in dead.last_error
    assert [event.details["reason"] for event in _audit(database, "outbox.dead_lettered", failing_id)] == [
        "never completed"
    ]
