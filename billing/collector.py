"""Usage collection: read each running cluster's metrics endpoint and store raw samples.

Each successful read moves the cluster's mark (usage_collection_marks) to the end of the period it read, in
the transaction that stores the samples; the close bills only hours the mark has passed. A failed read moves
nothing, so the cluster's hours wait for the next successful read instead of closing without their samples.

A sample is stored once (the unique key makes replays and duplicates no-ops). Late and
out-of-order samples are stored like any other: the ledger bills them while their hour is open
and records an adjustment if they arrive after it closed. Samples dated after the collector's
clock, negative ones, and those outside the cluster's billable window (billing.window: before it
was first ready or activated, after unsubscribe, while suspended if the offer waives that) are
refused and kept, with the reason, in rejected_usage_samples.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import sqlalchemy as sa
from sqlmodel import Session, col, select

from billing.sql_inserts import insert_rows_ignoring_conflicts, table_of
from billing.window import BillableWindow, billable_windows, usage_stopped_at, waiving_offer_ids
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.columns import UTCDateTime
from core.db import Database, insert_ignoring_conflicts
from core.errors import UpstreamUnavailable
from core.settings import Settings
from core.subscriptions.models import MarketplaceSubscription
from core.usage.models import RejectedUsageSample, UsageCollectionMark, UsageSample

logger = logging.getLogger(__name__)

# Clusters that serve Blob API traffic, so they have usage to bill (a failed change leaves the cluster serving).
COLLECTED_STATUSES = (ClusterStatus.READY, ClusterStatus.UPDATING, ClusterStatus.FAILED)
# Clusters stopped or on their way to or from it: read only until their mark passes the end of their usage.
STOPPED_STATUSES = (
    ClusterStatus.SUSPENDING,
    ClusterStatus.SUSPENDED,
    ClusterStatus.RESUMING,
    ClusterStatus.DEPROVISIONING,
)
# The longest span one read asks for (the façade's metrics endpoint answers at most a week).
MAX_READ_SPAN = timedelta(days=6)
# How a cluster's metrics become the catalog's dimensions.
DIMENSION_MEASURES: dict[str, Callable[[dict[str, Any]], float]] = {
    "capacity_tib": lambda point: float(point["capacity_tib"]),
    "data_transfer_gib": lambda point: float(point["data_read_gib"]) + float(point["data_written_gib"]),
    "api_requests_10k": lambda point: float(point["api_requests"]) / 10_000.0,
}


@dataclass(frozen=True)
class MeasuredSample:
    """One dimension's value at one instant, as a cluster reported it."""

    dimension_id: str
    sampled_at: datetime
    value: float


@dataclass(frozen=True)
class ClusterTarget:
    """What a usage source needs to know about a cluster."""

    cluster_id: str
    cluster_name: str
    endpoint_fqdn: str | None


class UsageSource(Protocol):
    """Where samples come from."""

    def read(self, cluster: ClusterTarget, start: datetime, end: datetime) -> list[MeasuredSample]:
        """Samples measured in (start, end] (a source may add late or bad ones; the collector sorts them out)."""


@dataclass
class CollectionSummary:
    """What one collection run did."""

    clusters: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed_clusters: int = 0


class ClusterMetricsSource:
    """Reads the façade cluster's own metrics endpoint (the URL comes from a settings template)."""

    def __init__(self, url_template: str, *, verify: str | bool, timeout_seconds: float) -> None:
        self.url_template = url_template
        self._client = httpx.Client(verify=verify, timeout=httpx.Timeout(timeout_seconds))

    @classmethod
    def from_settings(cls, settings: Settings) -> ClusterMetricsSource:
        """The source configured by CP_CLUSTER_METRICS_URL_TEMPLATE."""
        return cls(
            settings.cluster_metrics_url_template,
            verify=settings.tls_verify,
            timeout_seconds=settings.http_timeout_seconds,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def url_for(self, cluster: ClusterTarget) -> str:
        """The metrics URL of one cluster."""
        return self.url_template.format(
            endpoint_fqdn=cluster.endpoint_fqdn or "", cluster_name=cluster.cluster_name, cluster_id=cluster.cluster_id
        )

    def read(self, cluster: ClusterTarget, start: datetime, end: datetime) -> list[MeasuredSample]:
        """GET the samples in (start, end]; UpstreamUnavailable when the cluster does not answer well."""
        try:
            response = self._client.get(
                self.url_for(cluster), params={"start": start.isoformat(), "end": end.isoformat()}
            )
            response.raise_for_status()
            points = response.json()["samples"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            raise UpstreamUnavailable(
                f"metrics of cluster {cluster.cluster_name} unavailable: {type(error).__name__}: {error}",
                details={"cluster_id": cluster.cluster_id},
            ) from error
        samples: list[MeasuredSample] = []
        for point in points:
            sampled_at = datetime.fromisoformat(str(point["timestamp"]).replace("Z", "+00:00"))
            for dimension_id, measure in DIMENSION_MEASURES.items():
                samples.append(MeasuredSample(dimension_id, sampled_at, measure(point)))
        return samples


def collection_targets(
    session: Session, settings: Settings, now: datetime, waiving_offers: frozenset[str] = frozenset()
) -> list[tuple[ClusterTarget, datetime]]:
    """Clusters to read and where each read starts: after its newest sample, else its mark, else the lookback.

    Serving clusters are read every run. A cluster that stopped serving (suspended, stopped for retention)
    is read on until its mark passes the instant its usage stopped counting, so its last partial hour is
    read to the end before it closes.
    """
    newest = (
        select(UsageSample.cluster_id, sa.func.max(UsageSample.sampled_at).label("newest"))
        .group_by(col(UsageSample.cluster_id))
        .subquery()
    )
    marks = table_of(UsageCollectionMark)
    subscriptions = table_of(MarketplaceSubscription)
    open_suspensions, stopped_at = usage_stopped_at(waiving_offers)
    owes_final_read = sa.and_(
        col(Cluster.status).in_(STOPPED_STATUSES),
        stopped_at.is_not(None),
        sa.or_(marks.c.collected_through.is_(None), marks.c.collected_through < stopped_at),
    )
    rows = session.execute(
        sa.select(
            col(Cluster.id), col(Cluster.name), col(Cluster.endpoint_fqdn), newest.c.newest, marks.c.collected_through
        )
        .outerjoin(newest, newest.c.cluster_id == Cluster.id)
        .outerjoin(marks, marks.c.cluster_id == Cluster.id)
        .outerjoin(subscriptions, subscriptions.c.id == Cluster.subscription_id)
        .outerjoin(open_suspensions, open_suspensions.c.subscription_id == Cluster.subscription_id)
        .where(
            col(Cluster.first_ready_at).is_not(None),
            sa.or_(col(Cluster.status).in_(COLLECTED_STATUSES), owes_final_read),
        )
        .order_by(col(Cluster.id))
    ).all()
    lookback_start = now - timedelta(hours=settings.billing_collection_lookback_hours)
    targets = []
    for cluster_id, name, fqdn, newest_sampled_at, collected_through in rows:
        # A cluster read before continues after its newest sample however long ago (starting at the lookback
        # would close the hours in between without their samples); from the newest sample rather than the mark,
        # so points a cluster publishes late are still read. SQLite hands the aggregate back as text.
        if newest_sampled_at is not None:
            start = _as_datetime(newest_sampled_at)
        elif collected_through is not None:
            start = _as_datetime(collected_through)
        else:
            start = lookback_start
        targets.append((ClusterTarget(cluster_id, name, fqdn), start))
    return targets


def record_collected(session: Session, cluster_id: str, through: datetime, now: datetime) -> None:
    """Move the cluster's mark to `through` (never back) and clear its failures, beside the read's samples."""
    marks = table_of(UsageCollectionMark)
    session.execute(
        insert_ignoring_conflicts(session, marks).values(
            cluster_id=cluster_id, consecutive_failures=0, last_attempt_at=now
        )
    )
    complete_before = through.replace(minute=0, second=0, microsecond=0)
    behind = sa.or_(marks.c.collected_through.is_(None), marks.c.collected_through < through)
    session.execute(
        sa.update(marks)
        .where(marks.c.cluster_id == cluster_id)
        .values(
            collected_through=sa.case((behind, sa.literal(through, UTCDateTime())), else_=marks.c.collected_through),
            complete_hours_before=sa.case(
                (behind, sa.literal(complete_before, UTCDateTime())), else_=marks.c.complete_hours_before
            ),
            failing_since=None,
            consecutive_failures=0,
            last_error=None,
            last_attempt_at=now,
        )
    )


def record_failed(session: Session, cluster_id: str, error: str, now: datetime) -> None:
    """Count a failed read: the mark stays, so the cluster's hours stay open and it shows on the lag list."""
    marks = table_of(UsageCollectionMark)
    session.execute(
        insert_ignoring_conflicts(session, marks).values(
            cluster_id=cluster_id, consecutive_failures=0, last_attempt_at=now
        )
    )
    session.execute(
        sa.update(marks)
        .where(marks.c.cluster_id == cluster_id)
        .values(
            failing_since=sa.func.coalesce(marks.c.failing_since, sa.literal(now, UTCDateTime())),
            consecutive_failures=marks.c.consecutive_failures + 1,
            last_error=error[:512],
            last_attempt_at=now,
        )
    )


def store_samples(
    session: Session,
    cluster_id: str,
    samples: Sequence[MeasuredSample],
    now: datetime,
    window: BillableWindow | None = None,
) -> tuple[int, int]:
    """Store billable samples, keep the refused ones with their reason; returns (stored, rejected), duplicates excluded.

    Without a window (a cluster row gone meanwhile) every sample is refused: nothing is billed unproven.
    """
    accepted: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for sample in samples:
        outside = window.refusal(sample.sampled_at) if window is not None else "no billable window: cluster unknown"
        if sample.sampled_at > now:
            refused.append(
                {
                    "cluster_id": cluster_id,
                    "dimension_id": sample.dimension_id,
                    "sampled_at": sample.sampled_at,
                    "value": sample.value,
                    "reason": f"dated in the future: sampled at {sample.sampled_at.isoformat()}, "
                    f"collector clock {now.isoformat()}",
                    "received_at": now,
                }
            )
            continue
        if sample.value < 0:
            refused.append(
                {
                    "cluster_id": cluster_id,
                    "dimension_id": sample.dimension_id,
                    "sampled_at": sample.sampled_at,
                    "value": sample.value,
                    "reason": "negative value",
                    "received_at": now,
                }
            )
            continue
        if outside is not None:
            refused.append(
                {
                    "cluster_id": cluster_id,
                    "dimension_id": sample.dimension_id,
                    "sampled_at": sample.sampled_at,
                    "value": sample.value,
                    "reason": outside[:512],
                    "received_at": now,
                }
            )
            continue
        accepted.append(
            {
                "cluster_id": cluster_id,
                "dimension_id": sample.dimension_id,
                "sampled_at": sample.sampled_at,
                "hour_start": sample.sampled_at.replace(minute=0, second=0, microsecond=0),
                "value": sample.value,
                "received_at": now,
            }
        )
    stored = insert_rows_ignoring_conflicts(session, table_of(UsageSample), accepted)
    rejected = insert_rows_ignoring_conflicts(session, table_of(RejectedUsageSample), refused)
    if refused:
        logger.warning(
            "usage samples refused",
            extra={"cluster_id": cluster_id, "refused": len(refused), "reason": refused[0]["reason"]},
        )
    return stored, rejected


def collect_usage(
    database: Database, source: UsageSource, settings: Settings, *, now: datetime | None = None
) -> CollectionSummary:
    """Read every running cluster once and store its samples (one unit of work per cluster)."""
    now = now or utc_now()
    summary = CollectionSummary()
    waiving_offers = waiving_offer_ids(settings)
    with database.session() as session:
        targets = collection_targets(session, settings, now, waiving_offers)
    for target, start in targets:
        summary.clusters += 1
        if start >= now:
            continue
        # Bounded like the metrics endpoint's reads; a cluster far behind catches up over several runs.
        end = min(now, start + MAX_READ_SPAN)
        try:
            samples = source.read(target, start, end)
        except UpstreamUnavailable as error:
            # One silent cluster must not stop the others. Its mark stays, so its hours stay open (the close
            # would bill them without these samples) and it is read next run from the same start.
            summary.failed_clusters += 1
            logger.warning("usage collection failed", extra={"cluster_id": target.cluster_id, "error": error.message})
            with database.session() as session:
                record_failed(session, target.cluster_id, error.message, now)
            continue
        with database.session() as session:
            # Read just before the insert, so a change of term since the read of the targets is seen.
            window = billable_windows(session, [target.cluster_id], waiving_offers).get(target.cluster_id)
            stored, rejected = store_samples(session, target.cluster_id, samples, now, window)
            # In the samples' transaction: a crash leaves both or neither.
            record_collected(session, target.cluster_id, end, now)
        summary.stored += stored
        summary.rejected += rejected
        summary.duplicates += len(samples) - stored - rejected
    return summary


def _as_datetime(value: datetime | str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
