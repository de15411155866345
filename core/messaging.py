"""Celery configuration shared by every process, and the names of the tasks work is enqueued under.

The API enqueues by task name through the outbox and never imports `workers`; the workers register
the consumers under these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kombu.connection import Connection

from core.settings import Settings


class TaskNames:
    """Every task name in one place, so producers and consumers cannot drift apart."""

    PIPELINE_PROBE = "system.pipeline_probe"
    OUTBOX_BACKLOG_REPORT = "system.outbox_backlog_report"
    # Several outbox rows in one broker message, each applied by its own consumer:
    # {"messages": [{"task_name": str, "kwargs": {...}}]}.
    OUTBOX_DELIVER_BATCH = "outbox.deliver_batch"
    # Converge one cluster towards its desired spec: {"cluster_id": str}.
    CLUSTER_RECONCILE = "clusters.reconcile"
    # A cluster reached (or failed to reach) a desired generation:
    # {"cluster_id": str, "generation": int, "outcome": "converged" | "failed", "reason": str | None}.
    CLUSTER_CONVERGED = "subscriptions.cluster_converged"
    # Rotate a cluster's customer-managed key: {"rotation_id": str}.
    CLUSTER_ROTATE_KEY = "clusters.rotate_key"
    # List a cluster's private endpoint connections, apply its policy, push decisions to ARM: {"cluster_id": str}.
    CLUSTER_SYNC_PRIVATE_ENDPOINTS = "clusters.sync_private_endpoints"
    # Beat: re-enqueue clusters whose next check is overdue, rotate keys due by policy, sync connections.
    CLUSTER_SWEEP = "clusters.sweep"
    CLUSTER_PRIVATE_ENDPOINT_SWEEP = "clusters.private_endpoint_sweep"
    # Drift: beat observes one slice of the ready and suspended clusters per tick (no arguments); one cluster
    # compared with ARM: {"cluster_id": str}.
    CLUSTER_DRIFT_SWEEP = "clusters.drift_sweep"
    CLUSTER_OBSERVE_DRIFT = "clusters.observe_drift"
    # Verify a Marketplace operation by reading it back, apply it, report it: {"operation_id", "subscription_id"}.
    MARKETPLACE_PROCESS_OPERATION = "subscriptions.process_operation"
    # Activate a Marketplace subscription (start billing): {"subscription_id": str}.
    MARKETPLACE_ACTIVATE = "subscriptions.activate"
    # Reconcile with Marketplace: {"report_id": int} (forced) or no arguments (scheduled).
    MARKETPLACE_RECONCILE = "subscriptions.reconcile"
    MARKETPLACE_RECONCILE_SCHEDULED = "subscriptions.reconcile_scheduled"
    # Operations (beat): export audit events and spooled logs to Log Analytics; probe every ready cluster's
    # Blob endpoint; evaluate SLO burn rates. BLOB_PROBE_CLUSTER probes one cluster now: {"cluster_id": str}.
    MONITOR_EXPORT_LOGS = "operations.export_logs"
    BLOB_PROBE_SWEEP = "operations.blob_probe_sweep"
    BLOB_PROBE_CLUSTER = "operations.blob_probe_cluster"
    # Billing (beat, no arguments): read cluster usage, close hours into the ledger, send closed hours to
    # Marketplace metering, settle entries whose answer was lost, reconcile the previous day.
    BILLING_COLLECT_USAGE = "billing.collect_usage"
    BILLING_CLOSE_HOURS = "billing.close_hours"
    BILLING_SUBMIT_USAGE = "billing.submit_usage"
    BILLING_SETTLE_UNKNOWN = "billing.settle_unknown"
    BILLING_RECONCILE = "billing.reconcile"
    SLO_EVALUATE = "operations.slo_evaluate"
    # Read a managed application back from ARM and link it: {"managed_application_id": str, "attempt"?: int}.
    MANAGED_APP_OBSERVE = "managed_apps.observe"
    # Give a failed cluster another try at a change Marketplace already accepted (and bills):
    # {"cluster_id": str, "generation": int}.
    CLUSTER_RETRY_ACCEPTED_CHANGE = "clusters.retry_accepted_change"


# Celery's own default queue: provisioning, billing, operations.
DEFAULT_QUEUE = "celery"
# Marketplace's verdicts: ChangePlan/ChangeQuantity are accepted by Marketplace 10 s after the webhook unless
# refused by then, so deciding them must never wait behind a provisioning backlog. Their own queue lets workers
# (or a dedicated worker, `controlplane worker --queues marketplace-verdicts`) take them with their own concurrency.
VERDICT_QUEUE = "marketplace-verdicts"
VERDICT_TASKS = frozenset({TaskNames.MARKETPLACE_PROCESS_OPERATION})
ALL_QUEUES = (VERDICT_QUEUE, DEFAULT_QUEUE)


def queue_for(task_name: str) -> str:
    """The broker queue a task's messages travel on."""
    return VERDICT_QUEUE if task_name in VERDICT_TASKS else DEFAULT_QUEUE


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings: late acks, one message in flight per worker process, JSON only."""
    broker_url = settings.resolved_broker_url
    data_dir = Path(settings.data_dir).resolve()
    config: dict[str, Any] = {
        "broker_url": broker_url,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        "beat_schedule_filename": str(data_dir / "celerybeat-schedule"),
        "timezone": "UTC",
        "enable_utc": True,
        "task_default_queue": DEFAULT_QUEUE,
        "task_routes": {name: {"queue": VERDICT_QUEUE} for name in sorted(VERDICT_TASKS)},
    }
    if broker_url.startswith(("redis://", "rediss://")):
        # Unacknowledged messages come back after this long (longest task plus margin).
        config["broker_transport_options"] = {"visibility_timeout": 3600}
    return config


def ping_broker(broker_url: str, timeout_seconds: float = 3.0) -> None:
    """Raise when the broker cannot be reached."""
    with Connection(broker_url, connect_timeout=timeout_seconds) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1, timeout=timeout_seconds)
