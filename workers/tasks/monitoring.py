"""Operations tasks: Log Analytics export, the Blob API probe of ready clusters, SLO burn-rate evaluation."""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session

from core.azure.credentials import CredentialFactory
from core.db import get_database
from core.errors import NotFound
from core.messaging import TaskNames
from core.monitoring.export_service import export_pending
from core.monitoring.ingestion_client import LogAnalyticsIngestion
from core.outbox.service import enqueue
from core.probes.service import probe_cluster, ready_cluster_ids
from core.settings import get_settings
from core.slo.service import evaluate_burn_rate_alerts
from core.task_payloads import ProbeClusterBlob
from workers.celery_app import celery_app
from workers.consumer import outbox_consumer, run_in_session

logger = logging.getLogger(__name__)


@celery_app.task(name=TaskNames.MONITOR_EXPORT_LOGS, ignore_result=True)  # type: ignore[untyped-decorator]
def export_logs() -> dict[str, Any]:
    """Send unexported audit events and spooled logs to Log Analytics; what fails stays for the next pass."""
    settings = get_settings()
    if not settings.monitor_ingestion_endpoint or not settings.monitor_dcr_immutable_id:
        return {"skipped": "no data collection endpoint configured"}
    ingestion = LogAnalyticsIngestion(settings, CredentialFactory(settings).publisher)
    try:
        report = export_pending(
            get_database(),
            ingestion,
            audit_stream=settings.monitor_audit_stream,
            log_stream=settings.monitor_log_stream,
            batch_size=settings.monitor_export_batch_size,
        )
    finally:
        ingestion.close()
    logger.info("log analytics export pass", extra={"sent": report.sent, "error": report.error})
    return {"sent": report.sent, "error": report.error}


@celery_app.task(name=TaskNames.BLOB_PROBE_SWEEP, ignore_result=True)  # type: ignore[untyped-decorator]
def blob_probe_sweep() -> int:
    """Enqueue one probe per ready cluster (each its own outbox message, task and trace)."""
    enqueued: list[str] = []

    def enqueue_probes(session: Session) -> None:
        for cluster_id in ready_cluster_ids(session):
            enqueue(session, ProbeClusterBlob(cluster_id=cluster_id))
            enqueued.append(cluster_id)

    run_in_session(enqueue_probes)
    return len(enqueued)


@outbox_consumer(ProbeClusterBlob, max_retries=0)
def blob_probe_cluster(session: Session, payload: ProbeClusterBlob) -> None:
    """Probe one cluster; a failing check is a recorded result, not a task failure."""
    cluster_id = payload.cluster_id
    settings = get_settings()
    try:
        probe_cluster(session, settings, CredentialFactory(settings), cluster_id)
    except NotFound:
        # The cluster stopped being ready (or was deleted) since the probe was queued: nothing to probe.
        logger.info("blob probe skipped: cluster not ready", extra={"cluster_id": cluster_id})


@celery_app.task(name=TaskNames.SLO_EVALUATE, ignore_result=True)  # type: ignore[untyped-decorator]
def slo_evaluate() -> int:
    """Record burn-rate alerts that fire now."""
    fired: list[dict[str, Any]] = []
    run_in_session(lambda session: fired.extend(evaluate_burn_rate_alerts(session, get_settings())))
    return len(fired)
