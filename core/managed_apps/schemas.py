"""The notification Azure POSTs to `{notification endpoint}/resource` for managed applications."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.managed_apps.models import ManagedAppProvisioningState

GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# ARM's naming rules: a resource group is 1-90 letters, digits (Unicode ones too, as ARM's own rule says), `_`, `(`,
# `)`, `-` and `.`, not ending in `.`; an application name 1-64 letters, digits, `-`, `_` and `.`. The subscription is
# an exact GUID. `\A`/`\Z` anchor the whole id (`$` would also match before a final newline).
APPLICATION_ID = re.compile(
    rf"\A/subscriptions/(?P<subscription>{GUID})/resourceGroups/(?P<group>[-\w.()]{{0,89}}[-\w()])"
    r"/providers/Microsoft\.Solutions/applications/(?P<name>[-\w.]{1,64})\Z",
    re.IGNORECASE,
)


class NotificationEventType(StrEnum):
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class NotificationPlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    publisher: str = Field(min_length=1, max_length=128)
    product: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=64)


class NotificationBillingDetails(BaseModel):
    model_config = ConfigDict(extra="ignore")

    resource_usage_id: str | None = Field(default=None, alias="resourceUsageId", max_length=128)


class NotificationError(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: str = Field(max_length=256)
    message: str = Field(max_length=4096)
    details: list[dict[str, Any]] = Field(default_factory=list)


class ManagedAppNotification(BaseModel):
    """Parsed leniently (unknown fields ignored) but strictly where we act on a value."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    event_type: NotificationEventType = Field(alias="eventType")
    application_id: str = Field(alias="applicationId", max_length=512)
    event_time: datetime = Field(alias="eventTime")
    provisioning_state: ManagedAppProvisioningState = Field(alias="provisioningState")
    billing_details: NotificationBillingDetails | None = Field(default=None, alias="billingDetails")
    plan: NotificationPlan
    error: NotificationError | None = None

    @field_validator("application_id")
    @classmethod
    def _application_id(cls, value: str) -> str:
        if not APPLICATION_ID.match(value):
            raise ValueError("not the resource id of a Microsoft.Solutions/applications resource")
        return value

    @field_validator("event_time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("eventTime must carry a time zone")
        return value

    @model_validator(mode="after")
    def _error_only_on_failure(self) -> ManagedAppNotification:
        if self.error is not None and self.provisioning_state != ManagedAppProvisioningState.FAILED:
            raise ValueError("error is only sent with provisioningState Failed")
        return self

    @property
    def natural_id(self) -> str:
        """Azure may send the same notification again: this identifies it."""
        return "|".join(
            (
                self.application_id.lower(),
                self.event_type.value,
                self.provisioning_state.value,
                self.event_time.isoformat(),
            )
        )

    def application_parts(self) -> tuple[str, str, str]:
        """(Azure subscription id, resource group, application name) of the application."""
        match = APPLICATION_ID.match(self.application_id)
        assert match is not None  # validated above
        return match["subscription"].lower(), match["group"], match["name"]
