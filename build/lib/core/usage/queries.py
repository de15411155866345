"""Usage of one cluster per dimension and hour, from the ledger: what was measured, included and billed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core.usage.models import UsageLedgerEntry


@dataclass(frozen=True)
class HourlyUsage:
    """One ledger hour of one dimension."""

    hour_start: datetime
    measured: float
    included: float
    billed: float
    status: str


def usage_by_dimension(session: Session, cluster_id: str, *, since: datetime) -> dict[str, list[HourlyUsage]]:
    """Ledger hours from `since` on, grouped by dimension id, oldest hour first."""
    entries = session.exec(
        select(UsageLedgerEntry)
        .where(UsageLedgerEntry.cluster_id == cluster_id, col(UsageLedgerEntry.hour_start) >= since)
        .order_by(col(UsageLedgerEntry.dimension_id), col(UsageLedgerEntry.hour_start))
    ).all()
    series: dict[str, list[HourlyUsage]] = {}
    for entry in entries:
        series.setdefault(entry.dimension_id, []).append(
            HourlyUsage(
                hour_start=entry.hour_start,
                measured=entry.measured_quantity,
                included=entry.included_quantity,
                billed=entry.billable_quantity,
                status=entry.status,
            )
        )
    return series
