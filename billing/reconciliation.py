"""Reconciliation: our accepted ledger against Marketplace's usage retrieval, per resource, dimension, plan and day.

Every difference is classified and stored in a report: missing there (we hold accepted hours that
Marketplace does not), missing here (Marketplace holds events we never recorded as accepted),
quantity mismatch (same number of events, different quantity; Marketplace's processed quantity is
what it bills), expired (hours we never billed because they left the window).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from billing.settlement import DAY, GroupKey, day_of
from core.clock import utc_now
from core.db import Database
from core.errors import NotFound, ValidationFailed
from core.marketplace.metering_client import MeteringClient, UsageAggregate
from core.usage.models import LedgerStatus, UsageLedgerEntry
from core.usage.reconciliation_models import DifferenceKind, UsageReconciliationDifference, UsageReconciliationReport

QUANTITY_TOLERANCE = 1e-6
CSV_COLUMNS = (
    "report_id",
    "kind",
    "resource_id",
    "dimension_id",
    "plan_id",
    "usage_date",
    "ledger_quantity",
    "marketplace_quantity",
    "ledger_count",
    "marketplace_count",
    "marketplace_status",
    "ledger_entry_id",
    "detail",
)


@dataclass
class LedgerGroup:
    """Our accepted hours of one (resource, dimension, plan, day)."""

    quantity: float = 0.0
    count: int = 0


def ledger_groups(
    session: Session, start: datetime, end: datetime, resource_ids: set[str] | None = None
) -> dict[GroupKey, LedgerGroup]:
    """Accepted entries in [start, end) summed per retrieval group."""
    groups: dict[GroupKey, LedgerGroup] = defaultdict(LedgerGroup)
    statement = sa.select(
        col(UsageLedgerEntry.resource_id),
        col(UsageLedgerEntry.dimension_id),
        col(UsageLedgerEntry.plan_id),
        col(UsageLedgerEntry.hour_start),
        col(UsageLedgerEntry.billable_quantity),
    ).where(
        col(UsageLedgerEntry.status) == LedgerStatus.ACCEPTED,
        col(UsageLedgerEntry.hour_start) >= start,
        col(UsageLedgerEntry.hour_start) < end,
    )
    if resource_ids is not None:
        statement = statement.where(col(UsageLedgerEntry.resource_id).in_(sorted(resource_ids)))
    rows = session.execute(statement).all()
    for resource_id, dimension_id, plan_id, hour_start, quantity in rows:
        group = groups[(resource_id, dimension_id, plan_id, day_of(hour_start))]
        group.quantity += quantity
        group.count += 1
    return groups


def classify(
    key: GroupKey, ours: LedgerGroup | None, theirs: UsageAggregate | None
) -> UsageReconciliationDifference | None:
    """The difference for one group, or None when both sides agree."""
    resource_id, dimension_id, plan_id, usage_date = key
    difference = UsageReconciliationDifference(
        report_id=0,
        kind=DifferenceKind.MISSING_THERE.value,
        resource_id=resource_id,
        dimension_id=dimension_id,
        plan_id=plan_id,
        usage_date=usage_date,
        ledger_quantity=round(ours.quantity, 6) if ours else None,
        marketplace_quantity=theirs.processed_quantity if theirs else None,
        ledger_count=ours.count if ours else 0,
        marketplace_count=theirs.submitted_count if theirs else 0,
        marketplace_status=theirs.recon_status if theirs else None,
    )
    if ours is None or (theirs is not None and theirs.submitted_count > ours.count):
        difference.kind = DifferenceKind.MISSING_HERE.value
        difference.detail = "Marketplace holds events the ledger does not record as accepted"
        return difference
    if theirs is None or theirs.submitted_count < ours.count:
        difference.kind = DifferenceKind.MISSING_THERE.value
        difference.detail = "accepted hours Marketplace does not hold"
        return difference
    if (
        abs(theirs.processed_quantity - ours.quantity) > QUANTITY_TOLERANCE
        or abs(theirs.submitted_quantity - ours.quantity) > QUANTITY_TOLERANCE
    ):
        difference.kind = DifferenceKind.QUANTITY_MISMATCH.value
        difference.detail = (
            f"ledger {ours.quantity:.6f}, submitted {theirs.submitted_quantity:.6f}, "
            f"processed {theirs.processed_quantity:.6f}"
        )
        return difference
    return None


def reconcile(
    database: Database,
    client: MeteringClient,
    start: datetime,
    end: datetime,
    *,
    requested_by: str,
    resource_ids: set[str] | None = None,
    now: datetime | None = None,
) -> UsageReconciliationReport:
    """Compare [start, end) (whole UTC days) and store the report with every difference.

    `resource_ids` narrows both sides to some subscriptions or managed apps (an operator checking one customer).
    """
    if end <= start:
        raise ValidationFailed("the period must end after it starts", details={"start": str(start), "end": str(end)})
    # Retrieval reports whole days, so the period widens to whole UTC days.
    start = day_of(start)
    end = end if end == day_of(end) else day_of(end) + DAY
    held = {
        (row.resource_id, row.dimension, row.plan_id, day_of(row.usage_date)): row
        for row in client.usage_events(start, end)
        if resource_ids is None or row.resource_id in resource_ids
    }
    with database.session() as session:
        ours = ledger_groups(session, start, end, resource_ids)
        differences = [
            difference
            for key in sorted(set(ours) | set(held))
            if (difference := classify(key, ours.get(key), held.get(key))) is not None
        ]
        expired_query = select(UsageLedgerEntry).where(
            UsageLedgerEntry.status == LedgerStatus.EXPIRED,
            col(UsageLedgerEntry.hour_start) >= start,
            col(UsageLedgerEntry.hour_start) < end,
        )
        if resource_ids is not None:
            expired_query = expired_query.where(col(UsageLedgerEntry.resource_id).in_(sorted(resource_ids)))
        for entry in session.exec(expired_query).all():
            differences.append(
                UsageReconciliationDifference(
                    report_id=0,
                    kind=DifferenceKind.EXPIRED.value,
                    resource_id=entry.resource_id,
                    dimension_id=entry.dimension_id,
                    plan_id=entry.plan_id,
                    usage_date=day_of(entry.hour_start),
                    ledger_quantity=entry.billable_quantity,
                    ledger_count=1,
                    ledger_entry_id=entry.id,
                    detail=f"hour {entry.hour_start.isoformat()} never billed: {entry.status_reason or 'expired'}"[
                        :1024
                    ],
                )
            )
        report = UsageReconciliationReport(
            period_start=start,
            period_end=end,
            compared_groups=len(set(ours) | set(held)),
            difference_count=len(differences),
            requested_by=requested_by,
            created_at=now or utc_now(),
        )
        session.add(report)
        session.flush()
        assert report.id is not None
        for difference in differences:
            difference.report_id = report.id
            session.add(difference)
    return report


def report_with_differences(
    session: Session, report_id: int
) -> tuple[UsageReconciliationReport, list[UsageReconciliationDifference]]:
    """One report and its differences; NotFound when there is no such report."""
    report = session.get(UsageReconciliationReport, report_id)
    if report is None:
        raise NotFound(f"reconciliation report {report_id} does not exist")
    differences = session.exec(
        select(UsageReconciliationDifference)
        .where(UsageReconciliationDifference.report_id == report_id)
        .order_by(col(UsageReconciliationDifference.id))
    ).all()
    return report, list(differences)


def list_reports(session: Session, *, limit: int = 50) -> list[UsageReconciliationReport]:
    """The newest reports first."""
    return list(
        session.exec(
            select(UsageReconciliationReport).order_by(col(UsageReconciliationReport.id).desc()).limit(limit)
        ).all()
    )


def differences_csv(differences: list[UsageReconciliationDifference]) -> str:
    """The differences as CSV with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for difference in differences:
        row = difference.model_dump()
        writer.writerow(
            [row["usage_date"].date().isoformat() if name == "usage_date" else row[name] for name in CSV_COLUMNS]
        )
    return buffer.getvalue()
