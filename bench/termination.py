"""Benchmarks stop what they started when they are told to stop."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (a `timeout`, a `kill`) into SystemExit, so `finally` blocks stop the servers and workers."""

    def stop(signal_number: int, frame: FrameType | None) -> None:
        sys.exit(128 + signal_number)

    signal.signal(signal.SIGTERM, stop)
