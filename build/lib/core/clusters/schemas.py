"""The desired spec of a cluster as callers state it."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

AZURE_SUBSCRIPTION_ID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class ClusterPlacement(BaseModel):
    """Where a cluster goes: the customer's Azure subscription, resource group and region."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    azure_subscription_id: str = Field(pattern=AZURE_SUBSCRIPTION_ID)
    resource_group: str = Field(min_length=1, max_length=90, pattern=r"^[-\w\._\(\)]*[-\w_\(\)]$")
    region: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9]+$")


class PrivateLinkPolicy(BaseModel):
    """Who may see the Private Link Service, and whose connections are approved without asking."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    visibility_subscriptions: list[str] = Field(default_factory=list, max_length=100)
    auto_approval_subscriptions: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("visibility_subscriptions", "auto_approval_subscriptions")
    @classmethod
    def _subscription_ids(cls, values: list[str]) -> list[str]:
        for value in values:
            if value != "*" and not re.match(AZURE_SUBSCRIPTION_ID, value):
                raise ValueError(f"{value!r} is not an Azure subscription id")
        return sorted({value.lower() for value in values})


class KeyPolicy(BaseModel):
    """The customer-managed key: type, size and rotation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_vault_sku: str = Field(default="standard", pattern=r"^(standard|premium)$")
    key_type: str = Field(default="RSA", pattern=r"^(RSA|RSA-HSM)$")
    key_size: int = Field(default=3072)
    rotation_days: int = Field(default=90, ge=7, le=730)

    @field_validator("key_size")
    @classmethod
    def _key_size(cls, value: int) -> int:
        if value not in (2048, 3072, 4096):
            raise ValueError("key_size must be 2048, 3072 or 4096")
        return value
