"""The session record behind a browser's opaque cookie.

The row's key is a SHA-256 of the cookie's random id, and what the session keeps between requests (the
sign-in flow, the purchase link being signed in for, the refresh token, a flash message) is sealed with a
key derived from that id: someone who reads the table can neither present a session nor read its secrets.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import UTCDateTime, empty_json_list


class SessionEndReason(StrEnum):
    """Why a session stopped being valid."""

    SIGNED_OUT = "signed_out"
    SIGNED_IN_AGAIN = "signed_in_again"
    IDLE = "idle"
    EXPIRED = "expired"
    REVOKED = "revoked"
    ENTRA_REFUSED = "entra_refused"


class BrowserSessionRecord(SQLModel, table=True):
    __tablename__ = "browser_sessions"

    id: str = Field(primary_key=True, max_length=64)  # hex SHA-256 of the cookie's id, never the id itself
    entra_tenant_id: str | None = Field(default=None, index=True, max_length=64)
    object_id: str | None = Field(default=None, index=True, max_length=64)
    display_name: str = Field(default="", max_length=256)
    username: str = Field(default="", max_length=256)
    roles: list[str] = Field(default_factory=empty_json_list, sa_type=sa.JSON)
    directory_roles: list[str] = Field(default_factory=empty_json_list, sa_type=sa.JSON)
    sealed_data: str = Field(default="", sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    signed_in_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    roles_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    end_reason: str | None = Field(default=None, max_length=32)

    @property
    def signed_in(self) -> bool:
        """True when a person signed in with this session (anonymous sessions only carry a sign-in flow)."""
        return self.signed_in_at is not None and self.object_id is not None and self.entra_tenant_id is not None
