"""The catalog file's schema; validation errors name the offending field by its path in the file."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.catalog.models import ActivationMode, Aggregation, Rounding

# Marketplace ids: lowercase letters, digits, dashes and underscores.
MARKETPLACE_ID = r"^[a-z0-9][a-z0-9_-]{0,49}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DimensionSpec(_Strict):
    id: str = Field(pattern=MARKETPLACE_ID)
    display_name: str = Field(min_length=1)
    unit: str = Field(min_length=1)
    aggregation: Aggregation
    precision: int = Field(ge=0, le=6)
    rounding: Rounding


class PlanSpec(_Strict):
    id: str = Field(pattern=MARKETPLACE_ID)
    display_name: str = Field(min_length=1)
    description: str = ""
    private: bool = False
    vm_size: str = Field(pattern=r"^Standard_[A-Za-z0-9_]+$")
    nodes_per_unit: int = Field(ge=1, le=1000)
    capacity_tib_per_unit: float = Field(gt=0)
    min_quantity: int = Field(ge=1)
    max_quantity: int = Field(ge=1)
    included: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _quantity_range(self) -> PlanSpec:
        if self.max_quantity < self.min_quantity:
            raise ValueError("max_quantity must be at least min_quantity")
        for dimension, quantity in self.included.items():
            if quantity < 0:
                raise ValueError(f"included.{dimension} must not be negative")
        return self


class InactiveUsagePolicy(StrEnum):
    """What billing does with usage of hours that close after the subscription stopped being Subscribed."""

    # Marketplace refuses events for suspended or unsubscribed resources: record them waived, send nothing.
    WAIVE = "waive"
    # Send anyway and keep Marketplace's answer (rejected and flagged for the operator).
    SUBMIT = "submit"


class OfferSpec(_Strict):
    id: str = Field(pattern=MARKETPLACE_ID)
    publisher_id: str = Field(min_length=1)
    display_name: str = Field(min_length=1)
    activation: ActivationMode
    blob_api_port: int = Field(ge=1, le=65535)
    dimensions: list[DimensionSpec] = Field(min_length=1)
    plans: list[PlanSpec] = Field(min_length=1)
    inactive_subscription_usage: InactiveUsagePolicy = InactiveUsagePolicy.WAIVE

    @model_validator(mode="after")
    def _consistent(self) -> OfferSpec:
        dimension_ids = [dimension.id for dimension in self.dimensions]
        if len(set(dimension_ids)) != len(dimension_ids):
            raise ValueError("dimension ids must be unique within an offer")
        plan_ids = [plan.id for plan in self.plans]
        if len(set(plan_ids)) != len(plan_ids):
            raise ValueError("plan ids must be unique within an offer")
        for index, plan in enumerate(self.plans):
            unknown = sorted(set(plan.included) - set(dimension_ids))
            if unknown:
                raise ValueError(f"plans[{index}].included: unknown dimension(s) {', '.join(unknown)}")
        return self

    def plan(self, plan_id: str) -> PlanSpec | None:
        return next((plan for plan in self.plans if plan.id == plan_id), None)


class CatalogSpec(_Strict):
    catalog_version: str = Field(pattern=r"^\d{4}\.\d{1,2}\.\d+$")
    offers: list[OfferSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_offers(self) -> CatalogSpec:
        offer_ids = [offer.id for offer in self.offers]
        if len(set(offer_ids)) != len(offer_ids):
            raise ValueError("offer ids must be unique")
        return self

    def offer(self, offer_id: str) -> OfferSpec | None:
        return next((offer for offer in self.offers if offer.id == offer_id), None)


def is_marketplace_id(value: str) -> bool:
    return re.match(MARKETPLACE_ID, value) is not None
