"""The beat schedule: periodic jobs that the one scheduler process triggers."""

from __future__ import annotations

from typing import Any

from core.messaging import TaskNames


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Periodic tasks by name; later capabilities (reconciliation, metering) add theirs here."""
    return {
        "outbox-backlog-report": {"task": TaskNames.OUTBOX_BACKLOG_REPORT, "schedule": 60.0},
    }
