"""Audit events are append-only (a refusal tally's count grows within its minute; nothing else changes)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import StrEnumColumn, UTCDateTime
from core.statemachine import enum_check


class AuditOutcome(StrEnum):
    SUCCESS = "success"
    REFUSED = "refused"
    FAILURE = "failure"


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        enum_check("outcome", AuditOutcome, "ck_audit_events_outcome"),
        sa.Index("ix_audit_events_subject", "subject_type", "subject_id"),
        # Operators' audit search by actor or subject, newest first, without walking a million events.
        sa.Index("ix_audit_events_actor_occurred_at", "actor", "occurred_at", "id"),
        sa.Index("ix_audit_events_subject_id_occurred_at", "subject_id", "occurred_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, index=True)
    tenant_id: str | None = Field(default=None, foreign_key="tenants.id", index=True, max_length=36)
    actor: str = Field(max_length=256, description="e.g. marketplace, system:controller, user:<oid>")
    action: str = Field(max_length=128, index=True)
    subject_type: str = Field(max_length=64)
    subject_id: str = Field(max_length=512)
    outcome: AuditOutcome = Field(default=AuditOutcome.SUCCESS, sa_type=StrEnumColumn(AuditOutcome, 16))
    before: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    after: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    correlation_id: str | None = Field(default=None, max_length=64, index=True)
    # Refused requests are counted, not listed: one row per (action, source, reason, minute) holds their number, so
    # a flood of bad requests costs one row a minute (core.audit.refusals). Every other event is one occurrence.
    aggregation_key: str | None = Field(default=None, max_length=64, unique=True)
    occurrences: int = Field(default=1, ge=1, sa_column_kwargs={"server_default": "1"})
