"""One row per managed application (Microsoft.Solutions/applications) of the offer."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import UTCDateTime
from core.statemachine import enum_check


class ManagedAppProvisioningState(StrEnum):
    """The provisioning states Azure reports in managed-application notifications."""

    ACCEPTED = "Accepted"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UPDATING = "Updating"
    DELETING = "Deleting"
    DELETED = "Deleted"


class ManagedApplication(SQLModel, table=True):
    __tablename__ = "managed_applications"
    __table_args__ = (enum_check("provisioning_state", ManagedAppProvisioningState, "ck_managed_apps_state"),)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    application_id: str = Field(unique=True, max_length=512, description="ARM id of the application")
    azure_subscription_id: str = Field(max_length=64)
    resource_group: str = Field(max_length=90)
    application_name: str = Field(max_length=128)
    tenant_id: str | None = Field(default=None, foreign_key="tenants.id", index=True, max_length=36)
    managed_resource_group_id: str | None = Field(default=None, max_length=512)
    plan_id: str = Field(max_length=64)
    plan_publisher: str = Field(max_length=128)
    plan_product: str = Field(max_length=128)
    plan_version: str = Field(max_length=64)
    resource_usage_id: str | None = Field(default=None, max_length=128)
    provisioning_state: str = Field(max_length=16)
    last_event_time: datetime = Field(sa_type=UTCDateTime)
    last_error: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime, description="read back from ARM")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
