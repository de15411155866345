"""Per-subscription token buckets behind the `x-ms-ratelimit-remaining-subscription-*` headers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class SubscriptionRateLimiter:
    """Separate read and write buckets per subscription; a request takes one token or is refused."""

    def __init__(
        self, read_capacity: int, read_refill_per_second: float, write_capacity: int, write_refill_per_second: float
    ) -> None:
        self._limits = {
            "reads": (float(read_capacity), read_refill_per_second),
            "writes": (float(write_capacity), write_refill_per_second),
        }
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, subscription_id: str, kind: str) -> tuple[bool, int, float]:
        """(allowed, remaining tokens, seconds until a token is available) for one request of `kind`."""
        capacity, refill = self._limits[kind]
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.setdefault((subscription_id.lower(), kind), _Bucket(capacity, now))
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * refill)
            bucket.updated = now
            if bucket.tokens < 1:
                return False, 0, (1 - bucket.tokens) / refill if refill > 0 else 60.0
            bucket.tokens -= 1
            return True, int(bucket.tokens), 0.0
