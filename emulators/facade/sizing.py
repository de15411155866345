"""How big an emulated façade cluster is: its scale set (from the ARM emulator) read through the offer catalog.

A real cluster knows its own size; the emulator learns it the way an operator would, from the
scale set ARM holds for the cluster (`vmss-{cluster name}`, tagged `vast-facade-cluster`): the VM
size names the plan, the instance count over the plan's nodes per unit gives the quantity, and the
plan's usable capacity and included quantities per unit follow from the catalog. A cluster ARM
does not know (a test's database-only cluster) is sized as one unit of the first public plan.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulators.marketplace.catalog import DEFAULT_CATALOG_PATH

CLUSTER_TAG = "vast-facade-cluster"
SCALE_SET_TYPE = "microsoft.compute/virtualmachinescalesets"


@dataclass(frozen=True)
class ScaleSetFacts:
    """What ARM holds about a cluster's scale set."""

    vm_size: str
    instance_count: int
    created_at: datetime | None


@dataclass(frozen=True)
class ClusterSize:
    """Usable capacity and the hourly included quantities of the cluster's plan and quantity."""

    plan_id: str
    quantity: int
    usable_tib: float
    included_transfer_gib_per_hour: float
    included_requests_per_hour: float
    # When the cluster started serving; no usage exists before it.
    serving_since: datetime | None


ScaleSetLookup = Callable[[str], ScaleSetFacts | None]


@dataclass(frozen=True)
class _PlanShape:
    plan_id: str
    vm_size: str
    nodes_per_unit: int
    capacity_tib_per_unit: float
    included: dict[str, float]
    private: bool


class PlanSizes:
    """The catalog's plans by VM size, to turn a scale set into a cluster size."""

    def __init__(self, plans: list[_PlanShape]) -> None:
        self._by_vm_size = {plan.vm_size.lower(): plan for plan in plans}
        public = [plan for plan in plans if not plan.private] or plans
        self._default = public[0]

    @classmethod
    def load(cls, path: Path = DEFAULT_CATALOG_PATH) -> PlanSizes:
        """Plans of every offer of the catalog file."""
        with path.open("rb") as handle:
            document = tomllib.load(handle)
        plans = [
            _PlanShape(
                plan_id=plan["id"],
                vm_size=plan["vm_size"],
                nodes_per_unit=int(plan["nodes_per_unit"]),
                capacity_tib_per_unit=float(plan["capacity_tib_per_unit"]),
                included={name: float(value) for name, value in plan.get("included", {}).items()},
                private=bool(plan.get("private", False)),
            )
            for offer in document["offers"]
            for plan in offer.get("plans", [])
        ]
        return cls(plans)

    def size_of(self, facts: ScaleSetFacts | None) -> ClusterSize:
        """The size a scale set means; one unit of the first public plan when the scale set is unknown."""
        plan = self._by_vm_size.get(facts.vm_size.lower()) if facts is not None else None
        if facts is None or plan is None:
            return self._size(self._default, 1, None)
        quantity = max(facts.instance_count // plan.nodes_per_unit, 1)
        return self._size(plan, quantity, facts.created_at)

    @staticmethod
    def _size(plan: _PlanShape, quantity: int, serving_since: datetime | None) -> ClusterSize:
        return ClusterSize(
            plan_id=plan.plan_id,
            quantity=quantity,
            usable_tib=plan.capacity_tib_per_unit * quantity,
            included_transfer_gib_per_hour=plan.included.get("data_transfer_gib", 0.0) * quantity,
            # The catalog counts requests in units of 10,000.
            included_requests_per_hour=plan.included.get("api_requests_10k", 0.0) * 10_000.0 * quantity,
            serving_since=serving_since,
        )


def arm_scale_set_lookup(store: Any) -> ScaleSetLookup:
    """Reads the ARM emulator's store (an `ArmStore`) for the scale set tagged with the cluster's name."""

    def lookup(cluster_name: str) -> ScaleSetFacts | None:
        with store.lock:
            for resource in store.resources_of_type(SCALE_SET_TYPE):
                body = resource.body
                if (body.get("tags") or {}).get(CLUSTER_TAG) != cluster_name:
                    continue
                sku = body.get("sku") or {}
                created = (body.get("properties") or {}).get("timeCreated")
                return ScaleSetFacts(
                    vm_size=str(sku.get("name", "")),
                    instance_count=int(sku.get("capacity") or 0),
                    created_at=_parse(created) if isinstance(created, str) else None,
                )
        return None

    return lookup


def _parse(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
