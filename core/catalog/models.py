"""Catalog rows, loaded from the versioned catalog file by core.catalog.loader."""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

import core.columns  # noqa: F401  # sets the constraint-naming convention before these tables are defined
from core.statemachine import enum_check


class ActivationMode(StrEnum):
    WHEN_READY = "when_ready"
    IMMEDIATELY = "immediately"


class Aggregation(StrEnum):
    MEAN = "mean"
    SUM = "sum"
    MAX = "max"


class Rounding(StrEnum):
    UP = "up"
    NEAREST = "nearest"
    DOWN = "down"


class Offer(SQLModel, table=True):
    __tablename__ = "offers"
    __table_args__ = (enum_check("activation", ActivationMode, "ck_offers_activation"),)

    id: str = Field(primary_key=True, max_length=64)
    publisher_id: str = Field(max_length=128)
    display_name: str = Field(max_length=256)
    activation: str = Field(max_length=16)
    blob_api_port: int
    catalog_version: str = Field(max_length=32)


class MeteredDimension(SQLModel, table=True):
    __tablename__ = "metered_dimensions"
    __table_args__ = (
        sa.UniqueConstraint("offer_id", "dimension_id", name="uq_metered_dimensions_offer_dimension"),
        enum_check("aggregation", Aggregation, "ck_metered_dimensions_aggregation"),
        enum_check("rounding", Rounding, "ck_metered_dimensions_rounding"),
        sa.CheckConstraint("precision >= 0 AND precision <= 6", name="ck_metered_dimensions_precision"),
    )

    id: int | None = Field(default=None, primary_key=True)
    offer_id: str = Field(foreign_key="offers.id", max_length=64)
    dimension_id: str = Field(max_length=64)
    display_name: str = Field(max_length=256)
    unit: str = Field(max_length=64)
    aggregation: str = Field(max_length=8)
    precision: int
    rounding: str = Field(max_length=8)


class Plan(SQLModel, table=True):
    __tablename__ = "plans"
    __table_args__ = (
        sa.UniqueConstraint("offer_id", "plan_id", name="uq_plans_offer_plan"),
        sa.CheckConstraint("min_quantity >= 1 AND max_quantity >= min_quantity", name="ck_plans_quantity_range"),
        sa.CheckConstraint("nodes_per_unit >= 1", name="ck_plans_nodes_per_unit"),
    )

    id: int | None = Field(default=None, primary_key=True)
    offer_id: str = Field(foreign_key="offers.id", max_length=64)
    plan_id: str = Field(max_length=64)
    display_name: str = Field(max_length=256)
    description: str = Field(default="", max_length=1024)
    private: bool = False
    vm_size: str = Field(max_length=64)
    nodes_per_unit: int
    capacity_tib_per_unit: float
    min_quantity: int
    max_quantity: int


class PlanIncludedQuantity(SQLModel, table=True):
    """Quantity of a dimension included per hour per unit of the plan; only usage above it is billed."""

    __tablename__ = "plan_included_quantities"
    __table_args__ = (sa.CheckConstraint("included_per_hour_per_unit >= 0", name="ck_included_non_negative"),)

    plan_pk: int = Field(foreign_key="plans.id", primary_key=True)
    dimension_pk: int = Field(foreign_key="metered_dimensions.id", primary_key=True)
    included_per_hour_per_unit: float
