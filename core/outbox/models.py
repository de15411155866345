"""An outbox row names a Celery task and its arguments; the relay dispatches it, the consumer completes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import UTCDateTime


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        sa.Index("ix_outbox_messages_pending", "completed_at", "dispatched_at", "available_at"),
        sa.CheckConstraint("dispatch_count >= 0", name="ck_outbox_messages_dispatch_count"),
        sa.CheckConstraint("attempts >= 0", name="ck_outbox_messages_attempts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_name: str = Field(max_length=128)
    arguments: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    correlation_id: str | None = Field(default=None, max_length=64)
    # W3C traceparent of the span that enqueued the work, so the consumer continues the same trace.
    traceparent: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    available_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dispatch_count: int = 0
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=2048)
    # Failed attempts of the consumer so far (a rolled-back handler); bounded by CP_OUTBOX_MAX_ATTEMPTS.
    attempts: int = 0
    # Set when the row gave up (attempts exhausted, or a failure no retry can fix): never dispatched again until an
    # operator retries it; dismissing it completes it. `last_error` says why.
    dead_lettered_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
