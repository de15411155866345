"""A crash of our own redis-server: it comes back on the same port, and a running worker consumes again.

The second crash comes with a task in flight (its outbox row locked by the test), so the worker cannot
acknowledge it: the worker must reconnect, not exit, and the work must still apply once.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlmodel import select

from core.audit.models import AuditEvent
from core.db import Database
from core.messaging import celery_config
from core.outbox.models import OutboxMessage
from core.outbox.pipeline_probe import start_probe, wait_for_probe
from core.settings import Settings
from harness.processes import ManagedProcess, ProcessGroup
from harness.scenario.private_redis import PrivateRedis
from workers.relay import OutboxRelay, celery_publisher

pytestmark = [
    pytest.mark.timeout(150),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]
# Worker start-up alone can take tens of seconds on a loaded 2-core machine.
WAIT_SECONDS = 60


@dataclass
class PrivateBrokerWorker:
    """A worker on our own redis-server, and an outbox relay publishing to it from the test."""

    broker: PrivateRedis
    worker: ManagedProcess
    relay: OutboxRelay

    def probe(self, database: Database) -> str:
        """Enqueue a pipeline probe and publish it; returns its id."""
        probe_id = start_probe(database)
        assert self.relay.run_once() == 1
        return probe_id


@pytest.fixture
def private_broker_worker(database: Database, base_settings: Settings, tmp_path: Path) -> Iterator[PrivateBrokerWorker]:
    broker = PrivateRedis(tmp_path / "redis")
    broker.start()
    settings = base_settings.model_copy(update={"broker_url": broker.url})
    group = ProcessGroup(tmp_path / "logs", {**os.environ, **settings.as_environment()})
    worker = group.add("worker", "worker", "--concurrency=1")
    publisher_app = Celery("broker-restart-test")
    publisher_app.conf.update(celery_config(settings))
    try:
        group.start_all()
        yield PrivateBrokerWorker(broker, worker, OutboxRelay(database, celery_publisher(publisher_app)))
    finally:
        publisher_app.close()
        group.stop_all()
        broker.stop()
    assert not broker.alive()


def test_a_worker_rides_out_broker_crashes_idle_and_with_a_task_in_flight(
    private_broker_worker: PrivateBrokerWorker, database: Database
) -> None:
    run = private_broker_worker
    assert wait_for_probe(database, run.probe(database), WAIT_SECONDS) is not None, "no probe before the crash"
    port = run.broker.port

    run.broker.restart(crash=True, downtime_seconds=1.0)

    assert run.broker.port == port
    assert redis.Redis.from_url(run.broker.url).ping()
    assert wait_for_probe(database, run.probe(database), WAIT_SECONDS) is not None, "the worker did not reconnect"
    assert run.worker.alive(), "the worker must ride out a broker crash, not exit"

    with database.session() as blocker:
        probe_id = run.probe(database)
        outbox_id = max(blocker.exec(select(OutboxMessage.id)).all())
        # The row lock keeps the worker's task waiting inside claim_for_completion: received, not acknowledged.
        blocker.exec(select(OutboxMessage).where(OutboxMessage.id == outbox_id).with_for_update()).one()
        _wait_for_log_line(run.worker.log_path, f"[outbox-{outbox_id}-1] received")
        run.broker.kill()
    # The task finishes while the broker is down, so its acknowledgement cannot be sent.
    _wait_for_log_line(run.worker.log_path, f"[outbox-{outbox_id}-1] succeeded")
    run.broker.start()

    assert wait_for_probe(database, run.probe(database), WAIT_SECONDS) is not None, "the worker did not reconnect"
    assert run.worker.alive(), "the worker must ride out a broker crash, not exit"
    with database.session() as session:
        effects = session.exec(select(AuditEvent).where(AuditEvent.subject_id == probe_id)).all()
    assert len(effects) == 1


def _wait_for_log_line(path: Path, text: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in {path}")
