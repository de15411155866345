"""A consumer's private endpoint connection and who decided on it."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import StrEnumColumn, UTCDateTime
from core.statemachine import StateMachine, enum_check


class ConnectionStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


CONNECTION_STATES = StateMachine(
    "private endpoint connection",
    {
        ConnectionStatus.PENDING: [ConnectionStatus.APPROVED, ConnectionStatus.REJECTED],
        ConnectionStatus.APPROVED: [ConnectionStatus.REJECTED],
        ConnectionStatus.REJECTED: [],
    },
)


class PrivateEndpointConnection(SQLModel, table=True):
    __tablename__ = "private_endpoint_connections"
    __table_args__ = (
        sa.UniqueConstraint("cluster_id", "connection_name", name="uq_private_endpoint_connections_name"),
        enum_check("status", ConnectionStatus, "ck_private_endpoint_connections_status"),
    )

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    cluster_id: str = Field(foreign_key="clusters.id", index=True, max_length=36)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    connection_name: str = Field(max_length=256)
    arm_connection_id: str = Field(max_length=1024)
    private_endpoint_id: str | None = Field(default=None, max_length=1024)
    source_subscription_id: str | None = Field(default=None, max_length=64)
    source_kind: str | None = Field(default=None, max_length=64)
    request_message: str | None = Field(default=None, max_length=1024)
    status: ConnectionStatus = Field(default=ConnectionStatus.PENDING, sa_type=StrEnumColumn(ConnectionStatus, 16))
    decided_by: str | None = Field(default=None, max_length=256, description="policy:<rule> or user:<oid>")
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decision_reason: str | None = Field(default=None, max_length=1024)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
