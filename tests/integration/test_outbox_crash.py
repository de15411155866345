"""A relay killed between publishing and marking leads to a second dispatch; the work applies once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from sqlmodel import select

from core.audit.models import AuditEvent
from core.db import Database
from core.messaging import celery_config
from core.outbox.models import OutboxMessage
from core.outbox.pipeline_probe import start_probe, wait_for_probe
from core.settings import Settings
from harness.processes import ProcessGroup
from workers.relay import OutboxRelay, celery_publisher


@pytest.mark.broker
def test_relay_killed_between_publish_and_mark(database: Database, base_settings: Settings, tmp_path: Path) -> None:
    environment = {**os.environ, **base_settings.as_environment()}
    probe_id = start_probe(database)

    crashed = subprocess.run(
        [sys.executable, "-m", "tests.support.relay_crash"],
        env=environment,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]
    with database.session() as session:
        [message] = session.exec(select(OutboxMessage)).all()
    assert message.dispatched_at is None, "the crash came before the row was marked dispatched"

    # No worker runs yet, so the row is still due: the next relay pass publishes it again.
    publisher_app = Celery("crash-test")
    publisher_app.conf.update(celery_config(base_settings))
    assert OutboxRelay(database, celery_publisher(publisher_app)).run_once() == 1
    publisher_app.close()

    group = ProcessGroup(tmp_path, environment)
    worker = group.add("worker", "worker", "--concurrency=1")
    group.start_all()
    try:
        # The wait includes the worker's start, which takes most of a minute on a loaded 2-core machine.
        assert wait_for_probe(database, probe_id, timeout_seconds=150) is not None
        _wait_for_log_line(worker.log_path, "outbox message already completed", timeout_seconds=60)
    finally:
        group.stop_all()

    with database.session() as session:
        effects = session.exec(select(AuditEvent).where(AuditEvent.subject_id == probe_id)).all()
        [message] = session.exec(select(OutboxMessage)).all()
    assert len(effects) == 1
    assert message.completed_at is not None
    assert message.dispatch_count == 1


def _wait_for_log_line(path: Path, text: str, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in {path}")
