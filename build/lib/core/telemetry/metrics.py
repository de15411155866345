"""Named Prometheus metrics that any module increments, and the `/metrics` exposition.

Counters and histograms live in the process that observes the event; import the object and call it:

    from core.telemetry import metrics
    metrics.WEBHOOKS_RECEIVED.labels(source="marketplace").inc()
    metrics.WEBHOOKS_REJECTED.labels(source="marketplace", reason="invalid_token").inc()
    metrics.OPERATIONS.labels(action="ChangePlan", result="Success").inc()
    with metrics.CONTROLLER_STEP_SECONDS.labels(step="cluster").time(): ...
    metrics.CONTROLLER_STEPS.labels(step="cluster", outcome="succeeded").inc()
    metrics.ARM_CALLS.labels(operation="deployments.begin_create_or_update", status="201").inc()

With several uvicorn workers, set PROMETHEUS_MULTIPROC_DIR (an empty folder, before the processes
start) and the exposition merges every process's values. Facts that live in the database (queue
depth, outbox lag, ledger and operation states) are not counted in memory at all: they are read
from the tables at scrape time (core/telemetry/database_gauges.py), so every process answers alike.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

WEBHOOKS_RECEIVED = Counter(
    "cp_webhooks_received", "Inbound webhooks and notifications accepted and stored", ["source"]
)
WEBHOOKS_REJECTED = Counter(
    "cp_webhooks_rejected",
    "Inbound webhooks and notifications refused (bad token, bad body, disabled)",
    ["source", "reason"],
)
OPERATIONS = Counter("cp_operations", "Marketplace operations finished, by action and result", ["action", "result"])
CONTROLLER_STEPS = Counter("cp_controller_steps", "Provisioning controller steps taken", ["step", "outcome"])
CONTROLLER_STEP_SECONDS = Histogram(
    "cp_controller_step_seconds",
    "Duration of one provisioning controller step",
    ["step"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
ARM_CALLS = Counter(
    "cp_arm_calls", "Azure Resource Manager calls by operation and HTTP status", ["operation", "status"]
)
BLOB_PROBE_CHECKS = Counter(
    "cp_blob_probe_checks", "Blob API probe checks run, by check and result", ["check", "result"]
)
LOG_EXPORT_ROWS = Counter(
    "cp_log_export_rows", "Rows sent to Log Analytics, by stream and result", ["stream", "result"]
)
# Labels are fixed words (never a client id), so a flood of clients cannot grow the exposition.
REQUESTS_THROTTLED = Counter(
    "cp_requests_throttled",
    "Requests answered 429, by surface (api, portal, webhook) and reason (client_limit, backlog)",
    ["surface", "reason"],
)


def render_metrics(*extra_collectors: Collector) -> bytes:
    """The text exposition of this process's metrics (or every process's, in multiprocess mode) plus extras."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        exposition = generate_latest(registry)
    else:
        exposition = generate_latest(REGISTRY)
    extra = CollectorRegistry(auto_describe=False)
    for collector in extra_collectors:
        extra.register(collector)
    return exposition + generate_latest(extra)
