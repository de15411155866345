"""Usage curves of emulated façade clusters, computed from (seed, cluster name, time), never stored.

Every sample lies on a fixed grid (`interval_seconds` after the epoch), so two reads of the same
period return the same samples. Capacity grows slowly and wobbles; transfer and Blob API requests
follow a daily pattern with a peak hour of the cluster's own. An override replaces a cluster's
curve with constants, so a test can compute exactly what the ledger must hold.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class UsagePoint:
    """What a cluster reports for one interval ending at `timestamp`."""

    timestamp: datetime
    capacity_tib: float
    data_read_gib: float
    data_written_gib: float
    api_requests: int

    def to_json(self) -> dict[str, object]:
        """The metrics API representation."""
        return {
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "capacity_tib": self.capacity_tib,
            "data_read_gib": self.data_read_gib,
            "data_written_gib": self.data_written_gib,
            "api_requests": self.api_requests,
        }


@dataclass(frozen=True)
class CurveOverride:
    """Constant usage for a cluster: capacity in TiB, transfer and requests per hour."""

    capacity_tib: float
    data_read_gib_per_hour: float
    data_written_gib_per_hour: float
    api_requests_per_hour: int


def _unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.blake2b("\x1f".join(str(part) for part in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class ClusterCurve:
    """The shape of one cluster's usage, drawn once from seed and name."""

    seed: int
    cluster_name: str
    interval_seconds: int
    base_capacity_tib: float
    growth_per_day: float
    wobble_tib: float
    transfer_gib_per_hour: float
    requests_per_hour: float
    peak_hour: float
    read_share: float

    @classmethod
    def for_cluster(cls, seed: int, cluster_name: str, interval_seconds: int) -> ClusterCurve:
        """Parameters in realistic ranges for a façade cluster of a few units."""

        def draw(name: str, low: float, high: float) -> float:
            return low + (high - low) * _unit_hash(seed, cluster_name, name)

        return cls(
            seed=seed,
            cluster_name=cluster_name,
            interval_seconds=interval_seconds,
            base_capacity_tib=draw("capacity", 20.0, 80.0),
            growth_per_day=draw("growth", 0.002, 0.02),
            wobble_tib=draw("wobble", 0.2, 2.0),
            transfer_gib_per_hour=draw("transfer", 150.0, 900.0),
            requests_per_hour=draw("requests", 2.0e6, 2.0e7),
            peak_hour=draw("peak", 9.0, 17.0),
            read_share=draw("read-share", 0.55, 0.85),
        )

    def point(self, timestamp: datetime) -> UsagePoint:
        """The sample for the interval ending at `timestamp` (a grid instant)."""
        days = (timestamp - ANCHOR).total_seconds() / 86400.0
        noise = _unit_hash(self.seed, self.cluster_name, "noise", int(timestamp.timestamp())) * 2.0 - 1.0
        capacity = self.base_capacity_tib * (1.0 + self.growth_per_day * max(days, 0.0))
        capacity += self.wobble_tib * math.sin(2.0 * math.pi * days * 4.0) + 0.1 * self.wobble_tib * noise
        hour_of_day = timestamp.hour + timestamp.minute / 60.0
        daily = 0.35 + 0.65 * (0.5 + 0.5 * math.cos(2.0 * math.pi * (hour_of_day - self.peak_hour) / 24.0))
        interval_hours = self.interval_seconds / SECONDS_PER_HOUR
        transfer = self.transfer_gib_per_hour * interval_hours * daily * (1.0 + 0.2 * noise)
        requests = self.requests_per_hour * interval_hours * daily * (1.0 - 0.15 * noise)
        return UsagePoint(
            timestamp=timestamp,
            capacity_tib=round(max(capacity, 0.0), 6),
            data_read_gib=round(transfer * self.read_share, 6),
            data_written_gib=round(transfer * (1.0 - self.read_share), 6),
            api_requests=max(int(requests), 0),
        )


def constant_point(override: CurveOverride, timestamp: datetime, interval_seconds: int) -> UsagePoint:
    """The sample an overridden cluster reports: its constants spread evenly over the intervals."""
    share = interval_seconds / SECONDS_PER_HOUR
    return UsagePoint(
        timestamp=timestamp,
        capacity_tib=override.capacity_tib,
        data_read_gib=round(override.data_read_gib_per_hour * share, 6),
        data_written_gib=round(override.data_written_gib_per_hour * share, 6),
        api_requests=round(override.api_requests_per_hour * share),
    )


def grid_instants(start: datetime, end: datetime, interval_seconds: int) -> list[datetime]:
    """Grid instants t with start < t <= end."""
    step = timedelta(seconds=interval_seconds)
    offset = (start - ANCHOR).total_seconds()
    first = ANCHOR + step * (math.floor(offset / interval_seconds) + 1)
    instants = []
    moment = first
    while moment <= end:
        instants.append(moment)
        moment += step
    return instants
