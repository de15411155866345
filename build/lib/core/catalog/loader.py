"""Load the catalog file, validate it, and mirror it into the catalog tables."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlmodel import Session, SQLModel, select

from core.catalog.models import MeteredDimension, Offer, Plan, PlanIncludedQuantity
from core.catalog.schemas import CatalogSpec
from core.errors import ConfigurationError

RowT = TypeVar("RowT", bound=SQLModel)


def load_catalog(path: Path) -> CatalogSpec:
    """Parse and validate the catalog; errors name the file and the field path (e.g. offers[0].plans[1].vm_size)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"catalog {path}: file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"catalog {path}: not valid TOML: {error}") from None
    try:
        return CatalogSpec.model_validate(raw)
    except ValidationError as error:
        problems = [f"{_field_path(issue['loc'])}: {issue['msg']}" for issue in error.errors()]
        raise ConfigurationError(f"catalog {path}: " + "; ".join(problems)) from None


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(root)"


def sync_catalog(session: Session, catalog: CatalogSpec) -> None:
    """Upsert offers, dimensions, plans and included quantities (flushes; the caller commits).

    Rows are never deleted: subscriptions keep pointing at plans that a newer catalog retired.
    """
    for offer_spec in catalog.offers:
        offer = _upsert(
            session,
            session.get(Offer, offer_spec.id),
            Offer,
            id=offer_spec.id,
            publisher_id=offer_spec.publisher_id,
            display_name=offer_spec.display_name,
            activation=offer_spec.activation.value,
            blob_api_port=offer_spec.blob_api_port,
            catalog_version=catalog.catalog_version,
        )
        dimensions: dict[str, MeteredDimension] = {}
        for dimension_spec in offer_spec.dimensions:
            existing_dimension = session.exec(
                select(MeteredDimension).where(
                    MeteredDimension.offer_id == offer.id, MeteredDimension.dimension_id == dimension_spec.id
                )
            ).first()
            dimensions[dimension_spec.id] = _upsert(
                session,
                existing_dimension,
                MeteredDimension,
                offer_id=offer.id,
                dimension_id=dimension_spec.id,
                display_name=dimension_spec.display_name,
                unit=dimension_spec.unit,
                aggregation=dimension_spec.aggregation.value,
                precision=dimension_spec.precision,
                rounding=dimension_spec.rounding.value,
            )
        for plan_spec in offer_spec.plans:
            existing_plan = session.exec(
                select(Plan).where(Plan.offer_id == offer.id, Plan.plan_id == plan_spec.id)
            ).first()
            plan = _upsert(
                session,
                existing_plan,
                Plan,
                offer_id=offer.id,
                plan_id=plan_spec.id,
                **plan_spec.model_dump(exclude={"id", "included"}),
            )
            for dimension_id, dimension in dimensions.items():
                assert plan.id is not None
                assert dimension.id is not None
                _upsert(
                    session,
                    session.get(PlanIncludedQuantity, (plan.id, dimension.id)),
                    PlanIncludedQuantity,
                    plan_pk=plan.id,
                    dimension_pk=dimension.id,
                    included_per_hour_per_unit=plan_spec.included.get(dimension_id, 0.0),
                )


def _upsert(session: Session, existing: RowT | None, model: type[RowT], **values: Any) -> RowT:
    """Update `existing` with `values`, or create a `model` row from them; flushed so ids are assigned."""
    if existing is None:
        row = model(**values)
    else:
        row = existing
        for field, value in values.items():
            setattr(row, field, value)
    session.add(row)
    session.flush()
    return row
