"""The beat schedule: periodic jobs that the one scheduler process triggers."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from core.messaging import TaskNames
from core.settings import get_settings

# Billing passes run every five minutes: the façade clusters' metrics interval.
BILLING_PASS_SECONDS = 300.0


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Periodic tasks by name; later capabilities (reconciliation, metering) add theirs here."""
    settings = get_settings()
    return {
        "outbox-backlog-report": {"task": TaskNames.OUTBOX_BACKLOG_REPORT, "schedule": 60.0},
        # Operations: a pass still queued when the next is due is dropped (expires), so passes never pile up.
        "monitor-export-logs": {
            "task": TaskNames.MONITOR_EXPORT_LOGS,
            "schedule": settings.monitor_export_interval_seconds,
            "options": {"expires": settings.monitor_export_interval_seconds},
        },
        "blob-probe-sweep": {
            "task": TaskNames.BLOB_PROBE_SWEEP,
            "schedule": settings.blob_probe_interval_seconds,
            "options": {"expires": settings.blob_probe_interval_seconds},
        },
        "slo-evaluate": {"task": TaskNames.SLO_EVALUATE, "schedule": settings.slo_evaluation_interval_seconds},
        "cluster-sweep": {"task": TaskNames.CLUSTER_SWEEP, "schedule": settings.provisioning_sweep_interval_seconds},
        # Drift: the interval is cut into slices; each tick observes one slice, so ARM reads are spread over it.
        "cluster-drift-sweep": {
            "task": TaskNames.CLUSTER_DRIFT_SWEEP,
            "schedule": settings.drift_observation_interval_seconds / settings.drift_observation_slices,
            "options": {"expires": settings.drift_observation_interval_seconds / settings.drift_observation_slices},
        },
        "private-endpoint-sweep": {
            "task": TaskNames.CLUSTER_PRIVATE_ENDPOINT_SWEEP,
            "schedule": settings.private_endpoint_sync_interval_seconds,
        },
        "marketplace-reconcile": {
            "task": TaskNames.MARKETPLACE_RECONCILE_SCHEDULED,
            "schedule": get_settings().marketplace_reconcile_interval_seconds,
        },
        # Billing: each pass is short and idempotent; a pass still queued when the next is due is dropped.
        "billing-collect-usage": {
            "task": TaskNames.BILLING_COLLECT_USAGE,
            "schedule": BILLING_PASS_SECONDS,
            "options": {"expires": BILLING_PASS_SECONDS},
        },
        "billing-close-hours": {
            "task": TaskNames.BILLING_CLOSE_HOURS,
            "schedule": BILLING_PASS_SECONDS,
            "options": {"expires": BILLING_PASS_SECONDS},
        },
        "billing-submit-usage": {
            "task": TaskNames.BILLING_SUBMIT_USAGE,
            "schedule": BILLING_PASS_SECONDS,
            "options": {"expires": BILLING_PASS_SECONDS},
        },
        "billing-settle-unknown": {
            "task": TaskNames.BILLING_SETTLE_UNKNOWN,
            "schedule": 2 * BILLING_PASS_SECONDS,
            "options": {"expires": 2 * BILLING_PASS_SECONDS},
        },
        # Marketplace's retrieval lags behind submission, so the previous day is reconciled well after midnight.
        "billing-reconcile": {"task": TaskNames.BILLING_RECONCILE, "schedule": crontab(hour="3", minute="30")},
    }
