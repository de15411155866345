"""System tasks: the pipeline probe and the outbox backlog report."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.audit.actions import AuditAction
from core.audit.service import record_audit_event
from core.clock import utc_now
from core.messaging import TaskNames
from core.outbox.models import OutboxMessage
from core.task_payloads import PipelineProbe
from workers.celery_app import celery_app
from workers.consumer import outbox_consumer, run_in_session

logger = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=5)


@outbox_consumer(PipelineProbe)
def pipeline_probe(session: Session, payload: PipelineProbe) -> None:
    """Prove that work flows API/CLI -> outbox -> relay -> broker -> worker -> database: one audit event per probe."""
    record_audit_event(
        session,
        actor="system:worker",
        action=AuditAction.PIPELINE_PROBE_COMPLETED,
        subject_type="pipeline_probe",
        subject_id=payload.probe_id,
        details={"worker_host": socket.gethostname()},
    )


@celery_app.task(name=TaskNames.OUTBOX_BACKLOG_REPORT, ignore_result=True)  # type: ignore[untyped-decorator]
def outbox_backlog_report() -> dict[str, int]:
    """Log the outbox backlog; warn when messages wait longer than they should (relay or broker down)."""
    report: dict[str, int] = {}

    def measure(session: Session) -> None:
        pending = (
            select(sa.func.count())
            .select_from(OutboxMessage)
            .where(col(OutboxMessage.completed_at).is_(None), col(OutboxMessage.dead_lettered_at).is_(None))
        )
        stale = pending.where(OutboxMessage.created_at < utc_now() - STALE_AFTER)
        report["pending"] = int(session.exec(pending).one())
        report["stale"] = int(session.exec(stale).one())

    run_in_session(measure)
    level = logging.WARNING if report["stale"] else logging.INFO
    logger.log(level, "outbox backlog", extra=report)
    return report
