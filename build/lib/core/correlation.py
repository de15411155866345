"""The correlation id of the current request or task, carried into logs and outgoing calls."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

CORRELATION_HEADER = "x-ms-correlationid"
_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def new_correlation_id() -> str:
    """A random version-4 UUID; ids label logs and calls, they guard nothing, so no system entropy per request."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def current_correlation_id() -> str | None:
    """The id bound to this context, if any."""
    return _correlation_id.get()


def ensure_correlation_id() -> str:
    """The bound id, binding a fresh one first when there is none."""
    value = _correlation_id.get()
    if value is None:
        value = new_correlation_id()
        _correlation_id.set(value)
    return value


@contextmanager
def correlation_scope(correlation_id: str | None) -> Iterator[str]:
    """Bind `correlation_id` (or a new one) for the duration of the block."""
    value = correlation_id or new_correlation_id()
    token = _correlation_id.set(value)
    try:
        yield value
    finally:
        _correlation_id.reset(token)
