"""The connectivity catalog (`consumers.toml`): one entry per kind of consumer, each fact with its source."""

from __future__ import annotations

import tomllib
from enum import StrEnum
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

CATALOG_PATH = Path(__file__).with_name("consumers.toml")


class ConsumerKind(StrEnum):
    """Where a private endpoint to our PLS comes from (the ARM emulator's source kinds use the same values)."""

    CUSTOMER_VNET = "customer-vnet"
    DATA_FACTORY = "data-factory-managed-vnet"
    SYNAPSE = "synapse-managed-vnet"
    DATABRICKS_SERVERLESS = "databricks-serverless"
    FABRIC = "fabric-managed-vnet"
    AI_SEARCH = "ai-search-shared-private-link"
    AZURE_ML = "azure-ml-managed-network"


class SupportLevel(StrEnum):
    """Whether the consumer can target a partner's Private Link Service today."""

    SUPPORTED = "supported"
    PREVIEW = "preview"
    UNSUPPORTED = "unsupported"


class ConsumerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ConsumerKind
    title: str
    support: SupportLevel
    how: str
    resource_type: str
    required_fields: list[str]
    identifies_with: str
    connection_on_our_pls: str
    dns: str
    sources: list[HttpUrl] = Field(min_length=1)
    note: str | None = None
    alternative: str | None = None

    @model_validator(mode="after")
    def _alternative_where_not_generally_available(self) -> ConsumerEntry:
        # The issue asks for the documented alternative wherever a partner PLS is missing or in preview.
        if self.support != SupportLevel.SUPPORTED and not self.alternative:
            raise ValueError(f"{self.kind}: a consumer that is {self.support} must name the documented alternative")
        return self

    @property
    def can_connect(self) -> bool:
        return self.support != SupportLevel.UNSUPPORTED


class ConnectivityCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    consumer: list[ConsumerEntry]

    @model_validator(mode="after")
    def _every_kind_once(self) -> ConnectivityCatalog:
        kinds = [entry.kind for entry in self.consumer]
        if sorted(kinds) != sorted(ConsumerKind):
            raise ValueError(f"the catalog must describe each consumer kind exactly once, found {kinds}")
        return self

    def entry(self, kind: ConsumerKind) -> ConsumerEntry:
        return next(entry for entry in self.consumer if entry.kind == kind)


@cache
def connectivity_catalog() -> ConnectivityCatalog:
    """The catalog shipped with the package, validated once per process."""
    return ConnectivityCatalog.model_validate(tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8")))
