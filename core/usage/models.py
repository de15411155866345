"""Samples are raw measurements; a ledger entry is one billable (resource, dimension, hour)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import StrEnumColumn, UTCDateTime
from core.statemachine import StateMachine, enum_check


class UsageSample(SQLModel, table=True):
    __tablename__ = "usage_samples"
    __table_args__ = (
        # A replayed sample is the same sample: one row.
        sa.UniqueConstraint("cluster_id", "dimension_id", "sampled_at", name="uq_usage_samples_point"),
        sa.CheckConstraint("value >= 0", name="ck_usage_samples_value"),
        # The ledger groups by (cluster, dimension, hour): the hour is stored, not computed per dialect.
        sa.Index("ix_usage_samples_cluster_id_dimension_id_hour_start", "cluster_id", "dimension_id", "hour_start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    cluster_id: str = Field(foreign_key="clusters.id", max_length=36)
    dimension_id: str = Field(max_length=64)
    sampled_at: datetime = Field(sa_type=UTCDateTime)
    hour_start: datetime = Field(sa_type=UTCDateTime, index=True, description="sampled_at truncated to the hour")
    value: float
    received_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class RejectedUsageSample(SQLModel, table=True):
    """A sample the collector refused (e.g. dated in the future), kept with the reason for operators."""

    __tablename__ = "rejected_usage_samples"
    __table_args__ = (
        sa.UniqueConstraint("cluster_id", "dimension_id", "sampled_at", name="uq_rejected_usage_samples_point"),
    )

    id: int | None = Field(default=None, primary_key=True)
    cluster_id: str = Field(foreign_key="clusters.id", max_length=36)
    dimension_id: str = Field(max_length=64)
    sampled_at: datetime = Field(sa_type=UTCDateTime)
    value: float
    reason: str = Field(max_length=512)
    received_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class UsageCollectionMark(SQLModel, table=True):
    """How far each cluster's usage has been read: the close bills an hour only once it was read through its end.

    Written in the transaction that stores the read's samples, so a crash leaves the mark and the samples
    together. A failed read leaves `collected_through` where it was and counts the failure, so a cluster whose
    metrics stay unreadable holds its hours open and shows on the operators' lag list instead of billing them empty.
    """

    __tablename__ = "usage_collection_marks"

    cluster_id: str = Field(primary_key=True, foreign_key="clusters.id", max_length=36)
    collected_through: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # collected_through truncated to the hour: hours starting before it were read to their end (a plain
    # column, so the close compares hour starts without date arithmetic that differs per dialect).
    complete_hours_before: datetime | None = Field(default=None, sa_type=UTCDateTime)
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    consecutive_failures: int = 0
    last_error: str | None = Field(default=None, max_length=512)
    last_attempt_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class ResourceKind(StrEnum):
    SAAS = "saas"
    MANAGED_APP = "managed_app"


class LedgerStatus(StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


LEDGER_STATES = StateMachine(
    "usage ledger entry",
    {
        # Rejected without sending: usage the catalog waives (subscription no longer active).
        LedgerStatus.PENDING: [LedgerStatus.SUBMITTED, LedgerStatus.EXPIRED, LedgerStatus.REJECTED],
        LedgerStatus.SUBMITTED: [
            LedgerStatus.ACCEPTED,
            LedgerStatus.DUPLICATE,
            LedgerStatus.REJECTED,
            LedgerStatus.EXPIRED,
            LedgerStatus.UNKNOWN,
        ],
        # An entry whose answer was lost is settled through the usage retrieval API, never re-sent blindly.
        LedgerStatus.UNKNOWN: [LedgerStatus.ACCEPTED, LedgerStatus.PENDING, LedgerStatus.EXPIRED],
        LedgerStatus.ACCEPTED: [],
        LedgerStatus.DUPLICATE: [],
        LedgerStatus.REJECTED: [],
        LedgerStatus.EXPIRED: [],
    },
)


class UsageLedgerEntry(SQLModel, table=True):
    __tablename__ = "usage_ledger_entries"
    __table_args__ = (
        # Hour first: the close inserts the newest hours, so the key grows at its right edge, and the same index
        # serves every query by period (a separate hour_start index was one more for each new entry to maintain).
        sa.UniqueConstraint("hour_start", "resource_id", "dimension_id", name="uq_usage_ledger_resource_hour"),
        enum_check("status", LedgerStatus, "ck_usage_ledger_status"),
        enum_check("resource_kind", ResourceKind, "ck_usage_ledger_resource_kind"),
        sa.CheckConstraint("billable_quantity >= 0", name="ck_usage_ledger_billable"),
        # Submission claims the oldest pending hours first, in small rounds: an index walk, not a sort of the backlog.
        sa.Index("ix_usage_ledger_entries_status_hour_start_id", "status", "hour_start", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    resource_id: str = Field(max_length=512, description="SaaS subscription id or managed app resource usage id")
    resource_kind: str = Field(max_length=16)
    # No foreign key: the close derives every entry from a join on clusters in the same statement, and
    # cluster rows are never deleted; the per-row referential check (a row lock on the cluster) was a
    # seventh to a quarter of the close's time at 1.08M samples (two profiles on a loaded machine).
    cluster_id: str | None = Field(default=None, max_length=36)
    dimension_id: str = Field(max_length=64)
    plan_id: str = Field(max_length=64)
    hour_start: datetime = Field(sa_type=UTCDateTime)
    measured_quantity: float
    included_quantity: float
    billable_quantity: float
    # Queries by status use ix_usage_ledger_entries_status_hour_start_id; a status-only index was one more
    # index for every inserted entry to maintain.
    status: LedgerStatus = Field(default=LedgerStatus.PENDING, sa_type=StrEnumColumn(LedgerStatus, 16))
    marketplace_usage_event_id: str | None = Field(default=None, max_length=64)
    status_reason: str | None = Field(default=None, max_length=2048)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    settled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class UsageLedgerAdjustment(SQLModel, table=True):
    """A correction found after an hour closed: recorded beside the entry, never an edit of it.

    Marketplace keeps the first event per hour, so an adjustment is for the operator (credit or
    extra charge through Partner Center), not something submission sends.
    """

    __tablename__ = "usage_ledger_adjustments"
    __table_args__ = (
        # Re-running the close job over the same late samples finds the same adjustment: one row.
        sa.UniqueConstraint("ledger_entry_id", "samples_received_through", name="uq_usage_ledger_adjustments_point"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ledger_entry_id: int = Field(foreign_key="usage_ledger_entries.id", index=True)
    samples_received_through: datetime = Field(sa_type=UTCDateTime)
    corrected_measured_quantity: float
    corrected_billable_quantity: float
    billable_delta: float
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
