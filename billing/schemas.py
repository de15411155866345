"""API shapes of billing reports."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from core.usage.reconciliation_models import UsageReconciliationDifference, UsageReconciliationReport


class DifferenceView(BaseModel):
    """One classified difference between our ledger and Marketplace."""

    kind: str
    resource_id: str
    dimension_id: str
    plan_id: str
    usage_date: datetime
    ledger_quantity: float | None
    marketplace_quantity: float | None
    ledger_count: int
    marketplace_count: int
    marketplace_status: str | None
    ledger_entry_id: int | None
    detail: str

    @classmethod
    def of(cls, difference: UsageReconciliationDifference) -> DifferenceView:
        """The view of a stored difference."""
        return cls.model_validate(difference.model_dump())


class ReportSummaryView(BaseModel):
    """A reconciliation run without its differences."""

    id: int
    period_start: datetime
    period_end: datetime
    compared_groups: int
    difference_count: int
    requested_by: str
    created_at: datetime

    @classmethod
    def of(cls, report: UsageReconciliationReport) -> ReportSummaryView:
        """The view of a stored report."""
        return cls.model_validate(report.model_dump())


class ReportView(ReportSummaryView):
    """A reconciliation run with every difference it found."""

    differences: list[DifferenceView]


class StatusBucket(BaseModel):
    """Entries and billable quantity in one ledger status."""

    entries: int
    billable_quantity: float


class LedgerStatusView(BaseModel):
    """The ledger by status, and how many adjustments wait for an operator."""

    statuses: dict[str, StatusBucket]
    adjustments: int


class RejectedSampleView(BaseModel):
    """A sample the collector refused and why (e.g. outside the billable window, dated in the future)."""

    cluster_id: str
    cluster_name: str
    dimension_id: str
    sampled_at: datetime
    value: float
    reason: str
    received_at: datetime


class CollectionLagView(BaseModel):
    """A cluster whose usage reads fail: its hours wait, unbilled, until a read succeeds."""

    cluster_id: str
    cluster_name: str
    collected_through: datetime | None = Field(description="the end of the last successful read; null: never read")
    failing_since: datetime
    consecutive_failures: int
    last_error: str | None
    waiting_hours: int = Field(description="hours past their close time held open by the failing reads")
    hours_past_marketplace_window: int = Field(
        description="of those, hours older than Marketplace's acceptance window: no longer billable by metering"
    )
