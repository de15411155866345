"""A tenant is an Entra ID directory: every customer-facing row is scoped by one."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import UTCDateTime


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    entra_tenant_id: str = Field(unique=True, index=True, max_length=64)
    display_name: str = Field(default="", max_length=256)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
