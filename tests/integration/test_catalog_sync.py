"""The catalog file is mirrored into the catalog tables idempotently."""

from __future__ import annotations

from sqlmodel import Session, select

from core.catalog.loader import load_catalog, sync_catalog
from core.catalog.models import MeteredDimension, Plan, PlanIncludedQuantity
from core.settings import DEFAULT_CATALOG_PATH


def test_sync_is_idempotent_and_applies_changes(session: Session) -> None:
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    sync_catalog(session, catalog)
    plans_before = len(session.exec(select(Plan)).all())
    included_before = len(session.exec(select(PlanIncludedQuantity)).all())

    offer = catalog.offers[0]
    changed_plan = offer.plans[0].model_copy(update={"max_quantity": 99, "included": {"capacity_tib": 7.5}})
    changed = catalog.model_copy(
        update={"offers": [offer.model_copy(update={"plans": [changed_plan, *offer.plans[1:]]})]}
    )
    sync_catalog(session, changed)

    assert len(session.exec(select(Plan)).all()) == plans_before
    assert len(session.exec(select(PlanIncludedQuantity)).all()) == included_before
    plan = session.exec(select(Plan).where(Plan.plan_id == changed_plan.id)).one()
    assert plan.max_quantity == 99
    capacity = session.exec(select(MeteredDimension).where(MeteredDimension.dimension_id == "capacity_tib")).one()
    transfer = session.exec(select(MeteredDimension).where(MeteredDimension.dimension_id == "data_transfer_gib")).one()
    assert session.get(PlanIncludedQuantity, (plan.id, capacity.id)).included_per_hour_per_unit == 7.5  # type: ignore[union-attr]
    # A dimension the plan no longer lists includes nothing.
    assert session.get(PlanIncludedQuantity, (plan.id, transfer.id)).included_per_hour_per_unit == 0.0  # type: ignore[union-attr]
