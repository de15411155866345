"""Read-only views of the ledger for the CLI, the API and the sandbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.usage.models import UsageLedgerAdjustment, UsageLedgerEntry

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
    adjustments = int(session.exec(select(sa.func.count()).select_from(UsageLedgerAdjustment)).one())
    return {"statuses": statuses, "adjustments": adjustments}


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
