"""Load the catalog file, validate it, and mirror it into the catalog tables."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError
from sqlmodel import Session, select

from core.catalog.models import MeteredDimension, Offer, Plan, PlanIncludedQuantity
from core.catalog.schemas import CatalogSpec
from core.errors import ConfigurationError


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
        offer = session.get(Offer, offer_spec.id) or Offer(id=offer_spec.id)
        offer.publisher_id = offer_spec.publisher_id
        offer.display_name = offer_spec.display_name
        offer.activation = offer_spec.activation.value
        offer.blob_api_port = offer_spec.blob_api_port
        offer.catalog_version = catalog.catalog_version
        session.add(offer)
        session.flush()
        dimensions: dict[str, MeteredDimension] = {}
        for dimension_spec in offer_spec.dimensions:
            dimension = session.exec(
                select(MeteredDimension).where(
                    MeteredDimension.offer_id == offer.id, MeteredDimension.dimension_id == dimension_spec.id
                )
            ).first() or MeteredDimension(offer_id=offer.id, dimension_id=dimension_spec.id)
            dimension.display_name = dimension_spec.display_name
            dimension.unit = dimension_spec.unit
            dimension.aggregation = dimension_spec.aggregation.value
            dimension.precision = dimension_spec.precision
            dimension.rounding = dimension_spec.rounding.value
            session.add(dimension)
            dimensions[dimension_spec.id] = dimension
        session.flush()
        for plan_spec in offer_spec.plans:
            plan = session.exec(
                select(Plan).where(Plan.offer_id == offer.id, Plan.plan_id == plan_spec.id)
            ).first() or Plan(offer_id=offer.id, plan_id=plan_spec.id)
            for field in (
                "display_name",
                "description",
                "private",
                "vm_size",
                "nodes_per_unit",
                "capacity_tib_per_unit",
                "min_quantity",
                "max_quantity",
            ):
                setattr(plan, field, getattr(plan_spec, field))
            session.add(plan)
            session.flush()
            assert plan.id is not None
            for dimension_id, dimension in dimensions.items():
                assert dimension.id is not None
                included = session.get(PlanIncludedQuantity, (plan.id, dimension.id)) or PlanIncludedQuantity(
                    plan_pk=plan.id, dimension_pk=dimension.id
                )
                included.included_per_hour_per_unit = plan_spec.included.get(dimension_id, 0.0)
                session.add(included)
        session.flush()
