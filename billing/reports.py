"""Read-only views of the ledger for the CLI, the API and the sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.catalog.models import MeteredDimension
from core.clusters.models import Cluster
from core.usage.models import RejectedUsageSample, UsageCollectionMark, UsageLedgerAdjustment, UsageLedgerEntry

ENTRY_COLUMNS = (
    "id",
    "resource_kind",
    "resource_id",
    "cluster_id",
    "dimension_id",
    "plan_id",
    "hour_start",
    "measured_quantity",
    "included_quantity",
    "billable_quantity",
    "status",
    "marketplace_usage_event_id",
    "status_reason",
)


def status_counts(session: Session, start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    """Entries and billable quantity per status (optionally for hours in [start, end)), plus open adjustments."""
    statement = select(
        UsageLedgerEntry.status, sa.func.count(), sa.func.coalesce(sa.func.sum(UsageLedgerEntry.billable_quantity), 0.0)
    ).group_by(col(UsageLedgerEntry.status))
    if start is not None:
        statement = statement.where(col(UsageLedgerEntry.hour_start) >= start)
    if end is not None:
        statement = statement.where(col(UsageLedgerEntry.hour_start) < end)
    statuses = {
        status: {"entries": int(count), "billable_quantity": round(float(quantity), 6)}
        for status, count, quantity in session.exec(statement).all()
    }
    return {"statuses": statuses, "adjustments": adjustment_count(session)}


def adjustment_count(session: Session) -> int:
    """How many adjustments (late samples after their hour closed) the ledger holds."""
    return int(session.exec(select(sa.func.count()).select_from(UsageLedgerAdjustment)).one())


@dataclass(frozen=True)
class DimensionTotal:
    """Ledger entries of one status and one metered dimension, with the dimension's unit: quantities of
    different dimensions (TiB, GiB, requests) are never added together."""

    status: str
    dimension_id: str
    display_name: str
    unit: str
    entries: int
    billable_quantity: float


def status_by_dimension(session: Session) -> list[DimensionTotal]:
    """Entries and billable quantity per (status, dimension), ordered by status then dimension."""
    grouped = session.exec(
        select(
            UsageLedgerEntry.status,
            UsageLedgerEntry.dimension_id,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(UsageLedgerEntry.billable_quantity), 0.0),
        )
        .group_by(col(UsageLedgerEntry.status), col(UsageLedgerEntry.dimension_id))
        .order_by(col(UsageLedgerEntry.status), col(UsageLedgerEntry.dimension_id))
    ).all()
    # A dimension id names the same meter (and unit) in every offer of the catalog.
    named = {row.dimension_id: row for row in session.exec(select(MeteredDimension)).all()}
    totals = []
    for status, dimension_id, count, quantity in grouped:
        dimension = named.get(dimension_id)
        totals.append(
            DimensionTotal(
                status=status,
                dimension_id=dimension_id,
                display_name=dimension.display_name if dimension is not None else dimension_id,
                unit=dimension.unit if dimension is not None else "unknown unit",
                entries=int(count),
                billable_quantity=round(float(quantity), 6),
            )
        )
    return totals


def ledger_entries(session: Session, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The entries of hours in [start, end), oldest first, as plain values."""
    entries = session.exec(
        select(UsageLedgerEntry)
        .where(col(UsageLedgerEntry.hour_start) >= start, col(UsageLedgerEntry.hour_start) < end)
        .order_by(
            col(UsageLedgerEntry.hour_start), col(UsageLedgerEntry.resource_id), col(UsageLedgerEntry.dimension_id)
        )
    ).all()
    rows = []
    for entry in entries:
        row = {name: getattr(entry, name) for name in ENTRY_COLUMNS}
        row["hour_start"] = entry.hour_start.isoformat()
        rows.append(row)
    return rows


def rejected_samples(session: Session, *, cluster_id: str | None, limit: int) -> list[dict[str, Any]]:
    """Samples the collector refused, newest measurement first, with the cluster's name and the reason."""
    statement = (
        select(RejectedUsageSample, Cluster.name)
        .join(Cluster, col(Cluster.id) == col(RejectedUsageSample.cluster_id))
        .order_by(col(RejectedUsageSample.sampled_at).desc(), col(RejectedUsageSample.id).desc())
        .limit(limit)
    )
    if cluster_id is not None:
        statement = statement.where(RejectedUsageSample.cluster_id == cluster_id)
    return [
        {
            "cluster_id": sample.cluster_id,
            "cluster_name": name,
            "dimension_id": sample.dimension_id,
            "sampled_at": sample.sampled_at,
            "value": sample.value,
            "reason": sample.reason,
            "received_at": sample.received_at,
        }
        for sample, name in session.exec(statement).all()
    ]


def collection_lag(session: Session, now: datetime, *, grace: timedelta, window: timedelta) -> list[dict[str, Any]]:
    """Clusters whose usage reads fail, longest failing first: their hours wait unbilled until a read succeeds.

    `waiting_hours` counts the hours past their close time that the cluster's mark holds open; those starting
    before `now - window` are past Marketplace's acceptance window (usage older than 24 hours is Expired), so
    they can no longer be billed through metering and need an operator.
    """
    newest_closable = now - grace - timedelta(hours=1)
    oldest_accepted = now - window
    rows = session.exec(
        select(UsageCollectionMark, Cluster.name)
        .join(Cluster, col(Cluster.id) == col(UsageCollectionMark.cluster_id))
        .where(col(UsageCollectionMark.failing_since).is_not(None))
        .order_by(col(UsageCollectionMark.failing_since), col(UsageCollectionMark.cluster_id))
    ).all()
    lagging = []
    for mark, name in rows:
        waiting_from = mark.complete_hours_before
        waiting = expired = 0
        if waiting_from is not None and waiting_from <= newest_closable:
            waiting = int((newest_closable - waiting_from) // timedelta(hours=1)) + 1
            if waiting_from < oldest_accepted:
                expired = int((oldest_accepted - waiting_from - timedelta(microseconds=1)) // timedelta(hours=1)) + 1
        lagging.append(
            {
                "cluster_id": mark.cluster_id,
                "cluster_name": name,
                "collected_through": mark.collected_through,
                "failing_since": mark.failing_since,
                "consecutive_failures": mark.consecutive_failures,
                "last_error": mark.last_error,
                "waiting_hours": waiting,
                "hours_past_marketplace_window": min(expired, waiting),
            }
        )
    return lagging
