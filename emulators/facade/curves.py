"""Usage curves of emulated façade clusters, computed from (seed, cluster name, time), never stored.

Every sample lies on a fixed grid (`interval_seconds` after the epoch), so two reads of the same
period return the same samples. The curve derives from the cluster's size (emulators.facade.sizing:
plan and quantity), so a bill looks like one a customer would recognise: the cluster starts 30-55 %
full and fills towards 80 % of its usable capacity over weeks, with a small wobble; transfer and
Blob API requests follow a daily pattern with a peak hour of the cluster's own, between a quarter
of the plan's included volume at night and a little above it at the peak, and about one hour in
sixteen carries a burst of requests two to three times the included volume. An override replaces
a cluster's curve with constants, so a test can compute exactly what the ledger must hold.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from emulators.facade.sizing import ClusterSize

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


# Fill of the usable capacity: where a new cluster starts and what it tends to.
START_FILL = (0.30, 0.55)
FULL_FILL = 0.80
# Share of the hours that carry a request burst, and the burst over the included volume.
BURST_SHARE = 1.0 / 16.0
BURST_FACTOR = (2.0, 3.0)


@dataclass(frozen=True)
class ClusterCurve:
    """The shape of one cluster's usage, drawn once from seed and name, scaled to its size."""

    seed: int
    cluster_name: str
    interval_seconds: int
    size: ClusterSize
    start_fill: float
    fill_days: float
    wobble_share: float
    transfer_peak_share: float
    requests_peak_share: float
    peak_hour: float
    read_share: float

    @classmethod
    def for_cluster(cls, seed: int, cluster_name: str, interval_seconds: int, size: ClusterSize) -> ClusterCurve:
        """Parameters in realistic ranges for a cluster of this plan and quantity."""

        def draw(name: str, low: float, high: float) -> float:
            return low + (high - low) * _unit_hash(seed, cluster_name, name)

        return cls(
            seed=seed,
            cluster_name=cluster_name,
            interval_seconds=interval_seconds,
            size=size,
            start_fill=draw("capacity", *START_FILL),
            fill_days=draw("growth", 30.0, 120.0),
            wobble_share=draw("wobble", 0.002, 0.01),
            transfer_peak_share=draw("transfer", 0.9, 1.3),
            requests_peak_share=draw("requests", 0.8, 1.2),
            peak_hour=draw("peak", 9.0, 17.0),
            read_share=draw("read-share", 0.55, 0.85),
        )

    def fill(self, timestamp: datetime) -> float:
        """Share of the usable capacity in use: from the start fill towards FULL_FILL, never above it."""
        since = self.size.serving_since or ANCHOR
        days = max((timestamp - since).total_seconds() / 86400.0, 0.0)
        return self.start_fill + (FULL_FILL - self.start_fill) * (1.0 - math.exp(-days / self.fill_days))

    def burst(self, timestamp: datetime) -> float:
        """The request multiplier of the timestamp's hour: 1, or a burst in BURST_FACTOR."""
        hour = int(timestamp.timestamp() // SECONDS_PER_HOUR)
        if _unit_hash(self.seed, self.cluster_name, "burst", hour) >= BURST_SHARE:
            return 1.0
        low, high = BURST_FACTOR
        return low + (high - low) * _unit_hash(self.seed, self.cluster_name, "burst-size", hour)

    def point(self, timestamp: datetime) -> UsagePoint:
        """The sample for the interval ending at `timestamp` (a grid instant)."""
        days = (timestamp - ANCHOR).total_seconds() / 86400.0
        noise = _unit_hash(self.seed, self.cluster_name, "noise", int(timestamp.timestamp())) * 2.0 - 1.0
        usable = self.size.usable_tib
        wobble = self.wobble_share * (math.sin(2.0 * math.pi * days * 4.0) + 0.1 * noise)
        capacity = usable * min(self.fill(timestamp) * (1.0 + wobble), FULL_FILL)
        hour_of_day = timestamp.hour + timestamp.minute / 60.0
        daily = 0.5 + 0.5 * math.cos(2.0 * math.pi * (hour_of_day - self.peak_hour) / 24.0)
        # A quarter of the included volume at night, the drawn peak share of it at the busiest hour.
        level = 0.25 + 0.75 * daily
        interval_hours = self.interval_seconds / SECONDS_PER_HOUR
        transfer = (
            self.size.included_transfer_gib_per_hour
            * self.transfer_peak_share
            * level
            * interval_hours
            * (1.0 + 0.1 * noise)
        )
        requests = (
            self.size.included_requests_per_hour
            * self.requests_peak_share
            * level
            * self.burst(timestamp)
            * interval_hours
            * (1.0 - 0.1 * noise)
        )
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
