"""Send audit events and spooled log records to Log Analytics: batched, retried, each row exactly once.

The database is the spool: a row is pending until a `monitor_export_marks` row says Log Analytics
accepted it. A pass reads a batch of unmarked rows, uploads it, then marks it; an outage leaves the
rows unmarked for the next pass, so nothing is lost. Marks are unique per source row, and each row
carries its `RecordId`, so a pass that died between upload and mark (the only resend) is visible
and can be deduplicated in a query.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from core.audit.models import AuditEvent
from core.db import Database
from core.errors import UpstreamUnavailable
from core.monitoring.ingestion_client import LogAnalyticsIngestion
from core.monitoring.models import LogRecord, MonitorExportMark
from core.telemetry import metrics

logger = logging.getLogger(__name__)

AUDIT_SOURCE = "audit_events"
LOG_SOURCE = "log_records"


@dataclass
class ExportReport:
    """What one pass sent per stream, and the error that stopped it, if any."""

    sent: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def audit_row(event: AuditEvent) -> dict[str, Any]:
    """An audit event as a row of the audit stream (column names as the DCR declares them)."""
    return {
        "TimeGenerated": event.occurred_at.isoformat(),
        "RecordId": f"audit-{event.id}",
        "Actor": event.actor,
        "Action": event.action,
        "SubjectType": event.subject_type,
        "SubjectId": event.subject_id,
        "TenantId": event.tenant_id,
        "Outcome": event.outcome,
        "CorrelationId": event.correlation_id,
        "Details": event.details,
    }


def log_row(record: LogRecord) -> dict[str, Any]:
    """A spooled log record as a row of the log stream."""
    return {
        "TimeGenerated": record.recorded_at.isoformat(),
        "RecordId": f"log-{record.id}",
        "Level": record.level,
        "Logger": record.logger_name,
        "Message": record.message,
        "Process": record.process,
        "CorrelationId": record.correlation_id,
        "TraceId": record.trace_id,
        "Fields": record.fields,
    }


def _unmarked(session: Session, model: type[AuditEvent] | type[LogRecord], source: str, limit: int) -> list[Any]:
    marked = select(MonitorExportMark.source_id).where(MonitorExportMark.source == source)
    statement = select(model).where(col(model.id).not_in(marked)).order_by(col(model.id)).limit(limit)
    return list(session.exec(statement).all())


def pending_export_count(session: Session) -> int:
    """Audit events and log records not yet accepted by Log Analytics (the spool's depth)."""
    total = 0
    for model, source in ((AuditEvent, AUDIT_SOURCE), (LogRecord, LOG_SOURCE)):
        marked = select(MonitorExportMark.source_id).where(MonitorExportMark.source == source)
        total += len(session.exec(select(model.id).where(col(model.id).not_in(marked))).all())
    return total


def export_pending(
    database: Database,
    ingestion: LogAnalyticsIngestion,
    *,
    audit_stream: str,
    log_stream: str,
    batch_size: int,
    max_batches: int = 50,
) -> ExportReport:
    """Upload unmarked rows batch by batch until none is left, an upload fails, or `max_batches` were sent."""
    report = ExportReport()
    sources: tuple[tuple[str, str, type[AuditEvent] | type[LogRecord], Callable[[Any], dict[str, Any]]], ...] = (
        (AUDIT_SOURCE, audit_stream, AuditEvent, audit_row),
        (LOG_SOURCE, log_stream, LogRecord, log_row),
    )
    for source, stream, model, to_row in sources:
        report.sent[stream] = 0
        for _ in range(max_batches):
            # Read in one short transaction and upload outside it: no lock is held while Azure answers.
            with database.session() as session:
                batch = _unmarked(session, model, source, batch_size)
            if not batch:
                break
            try:
                ingestion.upload(stream, [to_row(item) for item in batch])
            except UpstreamUnavailable as error:
                metrics.LOG_EXPORT_ROWS.labels(stream=stream, result="failed").inc(len(batch))
                logger.warning("log analytics export failed; rows stay spooled", extra={"stream": stream})
                report.error = error.message
                return report
            with database.session() as session:
                session.add_all(MonitorExportMark(source=source, source_id=item.id, stream=stream) for item in batch)
            metrics.LOG_EXPORT_ROWS.labels(stream=stream, result="sent").inc(len(batch))
            report.sent[stream] += len(batch)
    return report
