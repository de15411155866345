"""The one Celery app; `controlplane worker` and `controlplane beat` run it."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from core.correlation import CORRELATION_HEADER, current_correlation_id
from core.db import reset_databases
from core.messaging import celery_config
from core.settings import get_settings


def create_celery_app() -> Celery:
    """Build the app from settings and register every task module."""
    app = Celery("controlplane")
    app.conf.update(celery_config(get_settings()))
    app.conf.imports = ["workers.tasks"]
    from workers.schedule import beat_schedule

    app.conf.beat_schedule = beat_schedule()
    return app


celery_app = create_celery_app()


@signals.before_task_publish.connect
def _carry_correlation_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # The correlation id travels in the message headers, so the task's logs share the request's id.
    if headers is not None and CORRELATION_HEADER not in headers:
        correlation_id = current_correlation_id()
        if correlation_id:
            headers[CORRELATION_HEADER] = correlation_id


@signals.worker_process_init.connect
def _fresh_connections_per_child(**_: Any) -> None:
    reset_databases()


@signals.worker_init.connect
def _worker_telemetry(**_: Any) -> None:
    # Traces, Celery spans and the log spool for Log Analytics, once per worker process before tasks run.
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from core.db import get_database
    from core.monitoring.log_spool import install_log_spool
    from core.telemetry.tracing import configure_tracing

    settings = get_settings()
    configure_tracing(settings, "worker")
    CeleryInstrumentor().instrument()
    if settings.monitor_ingestion_endpoint:
        install_log_spool(get_database(), settings.monitor_log_spool_level, "worker")
