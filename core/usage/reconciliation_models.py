"""Reconciliation reports: what our ledger meant to bill compared with what Marketplace holds."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import UTCDateTime
from core.statemachine import enum_check


class DifferenceKind(StrEnum):
    """How a (resource, dimension, plan, day) group differs between the ledger and Marketplace."""

    MISSING_THERE = "missing_there"
    MISSING_HERE = "missing_here"
    QUANTITY_MISMATCH = "quantity_mismatch"
    EXPIRED = "expired"


class UsageReconciliationReport(SQLModel, table=True):
    __tablename__ = "usage_reconciliation_reports"

    id: int | None = Field(default=None, primary_key=True)
    period_start: datetime = Field(sa_type=UTCDateTime, index=True)
    period_end: datetime = Field(sa_type=UTCDateTime)
    compared_groups: int
    difference_count: int
    requested_by: str = Field(max_length=256)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class UsageReconciliationDifference(SQLModel, table=True):
    __tablename__ = "usage_reconciliation_differences"
    __table_args__ = (enum_check("kind", DifferenceKind, "ck_usage_reconciliation_differences_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="usage_reconciliation_reports.id", index=True)
    kind: str = Field(max_length=32)
    resource_id: str = Field(max_length=512)
    dimension_id: str = Field(max_length=64)
    plan_id: str = Field(max_length=64)
    usage_date: datetime = Field(sa_type=UTCDateTime)
    ledger_quantity: float | None = None
    marketplace_quantity: float | None = None
    ledger_count: int = 0
    marketplace_count: int = 0
    marketplace_status: str | None = Field(default=None, max_length=32)
    ledger_entry_id: int | None = Field(default=None, foreign_key="usage_ledger_entries.id")
    detail: str = Field(default="", max_length=1024)
