"""Waiting on work other processes do: poll a check until it holds, or fail naming what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

ResultT = TypeVar("ResultT")


def wait_for(
    check: Callable[[], ResultT | None], *, timeout_seconds: float = 30, what: str, interval: float = 0.1
) -> ResultT:
    """Poll `check` until it returns something truthy and return that; fail naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds:.0f} s waiting for {what}")
        time.sleep(interval)
