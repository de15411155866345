"""The inbox table: one row per inbound event, unique on (source, natural id)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import UTCDateTime
from core.statemachine import enum_check


class InboundSource(StrEnum):
    MARKETPLACE_WEBHOOK = "marketplace_webhook"
    MANAGED_APP_NOTIFICATION = "managed_app_notification"


class InboundEvent(SQLModel, table=True):
    __tablename__ = "inbound_events"
    __table_args__ = (
        sa.UniqueConstraint("source", "natural_id", name="uq_inbound_events_source_natural_id"),
        enum_check("source", InboundSource, "ck_inbound_events_source"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    natural_id: str = Field(max_length=512)
    payload: dict[str, Any] = Field(sa_type=sa.JSON)
    correlation_id: str | None = Field(default=None, max_length=64)
    received_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
