"""An expected connection: a consumer a customer admin declared, and how its private endpoint will be recognised."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import UTCDateTime
from core.connectivity.catalog import ConsumerKind
from core.statemachine import StateMachine, enum_check


class ExpectationStatus(StrEnum):
    WAITING = "waiting"  # no matching connection has reached the PLS yet
    MATCHED = "matched"  # one connection matched and was approved; the expectation is used up
    EXPIRED = "expired"
    CANCELLED = "cancelled"


EXPECTATION_STATES = StateMachine(
    "expected connection",
    {
        ExpectationStatus.WAITING: [ExpectationStatus.MATCHED, ExpectationStatus.EXPIRED, ExpectationStatus.CANCELLED],
        ExpectationStatus.MATCHED: [],
        ExpectationStatus.EXPIRED: [],
        ExpectationStatus.CANCELLED: [],
    },
)


class ExpectedConnection(SQLModel, table=True):
    __tablename__ = "expected_connections"
    __table_args__ = (
        enum_check("status", ExpectationStatus, "ck_expected_connections_status"),
        enum_check("consumer_kind", ConsumerKind, "ck_expected_connections_consumer_kind"),
    )

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    cluster_id: str = Field(foreign_key="clusters.id", index=True, max_length=36)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    consumer_kind: str = Field(max_length=64)
    consumer_resource_id: str = Field(max_length=1024, description="the ARM id, NCC id or Fabric workspace id given")
    # The rule: every expected_* value that is set must equal what the connection shows (case-insensitive for ids
    # and names, exact for the message).
    expected_endpoint_id: str | None = Field(default=None, max_length=1024)
    expected_endpoint_name: str | None = Field(default=None, max_length=256)
    expected_request_message: str | None = Field(default=None, max_length=256)
    managed_endpoint_name: str | None = Field(default=None, max_length=128, description="the name we issued")
    status: str = Field(default=ExpectationStatus.WAITING.value, max_length=16, index=True)
    created_by: str = Field(max_length=256)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by: str | None = Field(default=None, max_length=256)
    matched_connection_id: str | None = Field(
        default=None, foreign_key="private_endpoint_connections.id", max_length=36
    )
    evidence: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
