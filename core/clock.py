"""The control plane's clock: every time it stores or compares is timezone-aware UTC.

A module of its own (not part of the database module) because table models, services and routers all read
the clock, and none of them should need the engine and session helpers to do so.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
