"""The pipeline probe: an operator's end-to-end check that queued work reaches a worker and commits."""

from __future__ import annotations

import time
import uuid

from sqlmodel import select

from core.audit.actions import AuditAction
from core.audit.models import AuditEvent
from core.db import Database
from core.outbox.service import enqueue
from core.task_payloads import PipelineProbe


def start_probe(database: Database) -> str:
    """Enqueue one probe through the outbox; returns its id."""
    probe_id = str(uuid.uuid4())
    with database.session() as session:
        enqueue(session, PipelineProbe(probe_id=probe_id))
    return probe_id


def probe_completed(database: Database, probe_id: str) -> bool:
    with database.session() as session:
        statement = select(AuditEvent).where(
            AuditEvent.action == AuditAction.PIPELINE_PROBE_COMPLETED, AuditEvent.subject_id == probe_id
        )
        return session.exec(statement).first() is not None


def wait_for_probe(database: Database, probe_id: str, timeout_seconds: float) -> float | None:
    """Seconds until the probe's effect was visible, or None when it did not arrive in time."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_seconds:
        if probe_completed(database, probe_id):
            return time.monotonic() - started
        time.sleep(0.1)
    return None
