"""What was exported to Log Analytics, one mark per source row, and the spool of control-plane log records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import UTCDateTime


class MonitorExportMark(SQLModel, table=True):
    """A source row that Log Analytics accepted; rows without a mark are the spool still to send."""

    __tablename__ = "monitor_export_marks"
    __table_args__ = (sa.UniqueConstraint("source", "source_id", name="uq_monitor_export_marks_source_row"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32, description="audit_events or log_records")
    source_id: int
    stream: str = Field(max_length=128)
    exported_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class LogRecord(SQLModel, table=True):
    """A control-plane log record kept until Log Analytics has it (warnings and errors by default)."""

    __tablename__ = "log_records"

    id: int | None = Field(default=None, primary_key=True)
    recorded_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, index=True)
    level: str = Field(max_length=16)
    logger_name: str = Field(max_length=256)
    message: str = Field(max_length=8192)
    process: str = Field(max_length=64)
    correlation_id: str | None = Field(default=None, max_length=64)
    trace_id: str | None = Field(default=None, max_length=32)
    fields: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
