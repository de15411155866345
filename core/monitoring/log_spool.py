"""Control-plane log records kept in the database until they are exported to Log Analytics.

A logging handler buffers records in memory and a background thread inserts them in their own
transactions, so logging never waits on (or deadlocks with) the transaction the caller holds.
A crash loses at most the last flush interval of records; everything inserted survives outages.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any

from core.correlation import current_correlation_id
from core.db import Database
from core.monitoring.models import LogRecord
from core.telemetry.tracing import current_trace_ids

FLUSH_INTERVAL_SECONDS = 1.0
MAX_BUFFERED_RECORDS = 10_000
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class DatabaseLogSpoolHandler(logging.Handler):
    """Spools log records at or above `level` into `log_records`; the export task sends them on."""

    def __init__(self, database: Database, level: str, process_name: str) -> None:
        super().__init__(level)
        self.database = database
        self.process_name = process_name
        self._buffer: queue.Queue[LogRecord] = queue.Queue(MAX_BUFFERED_RECORDS)
        self._pending: list[LogRecord] = []
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-spool", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record; drop it (never block) when the buffer is full."""
        if record.name.startswith(("sqlalchemy", __name__)):
            return  # the spool's own inserts must not log themselves into the spool
        trace_ids = current_trace_ids()
        fields: dict[str, Any] = {
            key: value if isinstance(value, str | int | float | bool | None) else str(value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
        }
        row = LogRecord(
            level=record.levelname.lower(),
            logger_name=record.name[:256],
            message=record.getMessage()[:8192],
            process=f"{self.process_name}-{os.getpid()}"[:64],
            correlation_id=current_correlation_id(),
            trace_id=trace_ids[0] if trace_ids else None,
            fields=fields,
        )
        try:
            self._buffer.put_nowait(row)
        except queue.Full:
            self.handleError(record)

    def flush(self) -> None:
        """Insert everything buffered so far; on a database error the records stay pending for the next flush."""
        with self._flush_lock:
            while len(self._pending) < MAX_BUFFERED_RECORDS:
                try:
                    self._pending.append(self._buffer.get_nowait())
                except queue.Empty:
                    break
            if not self._pending:
                return
            with self.database.session() as session:
                # Copies, so a failed commit leaves the pending rows untouched for the next attempt.
                session.add_all([row.model_copy() for row in self._pending])
            self._pending.clear()

    def close(self) -> None:
        """Stop the flusher and write what is left."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
        super().close()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_SECONDS):
            try:
                self.flush()
            except Exception:  # noqa: S112  # the database may be briefly unavailable: the next pass retries
                continue


def install_log_spool(database: Database, level: str, process_name: str) -> DatabaseLogSpoolHandler | None:
    """Attach a spool handler to the root logger; None when one is attached already (one per process)."""
    root = logging.getLogger()
    if any(isinstance(handler, DatabaseLogSpoolHandler) for handler in root.handlers):
        return None
    handler = DatabaseLogSpoolHandler(database, level, process_name)
    root.addHandler(handler)
    return handler


def remove_log_spool(handler: DatabaseLogSpoolHandler) -> None:
    """Detach the handler and write what it still holds."""
    logging.getLogger().removeHandler(handler)
    handler.close()
