"""The one Celery app; `controlplane worker` and `controlplane beat` run it."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from celery import Celery, signals
from celery.platforms import EX_FAILURE
from sqlalchemy.exc import IntegrityError, OperationalError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

import core.models  # noqa: F401  # workers, beat and relay start here: every table known before the first flush
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
logger = logging.getLogger(__name__)
# A worker that stops on its own sooner than this after starting is failing to start: exit, do not loop.
RESTART_AFTER_RUNNING_SECONDS = 10.0


@retry(
    retry=retry_if_exception_type((IntegrityError, OperationalError)),
    stop=stop_after_attempt(5),
    wait=wait_random(0, 0.2),
    reraise=True,
)
def declare_task_queues(queues: list[str]) -> None:
    """Create the worker's task queues on the SQLite broker where they are missing.

    Two workers starting together on the SQLite broker race to create the broker's tables ("table kombu_queue
    already exists", an OperationalError) and to insert a queue's row (an IntegrityError). Inside Celery the
    loser's error ends that worker ("Unrecoverable error"); here a retry simply finds the table and the row.
    """
    if not str(celery_app.conf.broker_url).startswith("sqla+"):
        return  # Redis and RabbitMQ declare idempotently; connecting here would only duplicate Celery's retries
    with celery_app.connection_for_write() as connection:
        for queue in queues:
            connection.default_channel.queue_declare(queue=queue, durable=True, auto_delete=False)


def run_worker(arguments: list[str], queues: list[str]) -> None:
    """Run `celery worker` on `queues` (also named in `arguments`); if it gives up on its own, start it afresh.

    Celery stops with an "Unrecoverable error" on some broker failures (kombu raising while it tidies up
    after a restarted Redis went away mid-acknowledgement); the worker must come back, as a supervisor would
    bring it back, rather than leave the deployment without consumers. Unacknowledged work is redelivered.
    A shutdown by signal or by remote control is respected.
    """
    told_to_stop = threading.Event()
    exit_codes: list[int | str | None] = []
    signals.worker_shutting_down.connect(lambda **_: told_to_stop.set(), weak=False)
    signals.worker_shutdown.connect(lambda sender, **_: exit_codes.append(sender.exitcode), weak=False)
    declare_task_queues(queues)
    started = time.monotonic()
    celery_app.worker_main(arguments)
    ran_for = time.monotonic() - started
    gave_up = bool(exit_codes) and exit_codes[-1] == EX_FAILURE and not told_to_stop.is_set()
    if not gave_up or ran_for < RESTART_AFTER_RUNNING_SECONDS:
        return
    logger.error("the worker stopped by itself after %.0f s; starting it afresh", ran_for)
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # noqa: S606  # our own command line again


def _carry_correlation_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # The correlation id travels in the message headers, so the task's logs share the request's id.
    if headers is not None and CORRELATION_HEADER not in headers:
        correlation_id = current_correlation_id()
        if correlation_id:
            headers[CORRELATION_HEADER] = correlation_id


# Connected by call rather than as decorators: Celery is unannotated, and a decorator would leave the handler untyped.
signals.before_task_publish.connect(_carry_correlation_id)


def _fresh_connections_per_child(**_: Any) -> None:
    reset_databases()


signals.worker_process_init.connect(_fresh_connections_per_child)


def _worker_telemetry(**_: Any) -> None:
    # Traces, Celery spans and the log spool for Log Analytics, once per worker process before tasks run.
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from core.db import get_database
    from core.monitoring.log_spool import install_log_spool
    from core.telemetry.tracing import configure_tracing, spans_exported

    settings = get_settings()
    configure_tracing(settings, "worker")
    if spans_exported(settings):
        CeleryInstrumentor().instrument()  # type: ignore[no-untyped-call]  # the instrumentation ships no annotations
    if settings.monitor_ingestion_endpoint:
        install_log_spool(get_database(), settings.monitor_log_spool_level, "worker")


signals.worker_init.connect(_worker_telemetry)
