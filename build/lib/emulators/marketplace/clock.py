"""The Marketplace emulator's clock: real time plus an offset tests set through the control API.

Windows such as the 24 hours of metering and the operation timeout are checked against this
clock, so a test moves time instead of sleeping.
"""

from __future__ import annotations

import datetime
import threading


class EmulatorClock:
    """UTC now, shifted by a settable offset."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = datetime.timedelta()

    def now(self) -> datetime.datetime:
        """The emulated current time (timezone-aware UTC)."""
        with self._lock:
            return datetime.datetime.now(datetime.UTC) + self._offset

    @property
    def offset_seconds(self) -> float:
        """How far the clock is ahead of real time."""
        with self._lock:
            return self._offset.total_seconds()

    def set_offset(self, seconds: float) -> None:
        """Put the clock `seconds` ahead of real time (negative: behind)."""
        with self._lock:
            self._offset = datetime.timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        with self._lock:
            self._offset += datetime.timedelta(seconds=seconds)


def isoformat(moment: datetime.datetime) -> str:
    """ISO 8601 in UTC with a Z suffix, as Marketplace writes timestamps."""
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def parse_timestamp(value: str) -> datetime.datetime:
    """Parse an ISO 8601 timestamp; naive values are taken as UTC."""
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC)
