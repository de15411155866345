"""The offer catalog as Marketplace knows it, read straight from catalog/offers.toml.

The emulator reads the TOML itself (it must not import the app's packages): offers, their plans
(private ones only for private-offer purchases) and their metered dimensions.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CATALOG_PATH = Path(__file__).resolve().parents[2] / "catalog" / "offers.toml"


@dataclass(frozen=True)
class Dimension:
    """A metered billing dimension of an offer."""

    id: str
    display_name: str
    unit: str


@dataclass(frozen=True)
class Plan:
    """A plan of an offer with its quantity bounds."""

    id: str
    display_name: str
    description: str
    private: bool
    min_quantity: int
    max_quantity: int

    def as_available_plan(self, dimensions: tuple[Dimension, ...]) -> dict[str, Any]:
        """The plan as listAvailablePlans shows it."""
        return {
            "planId": self.id,
            "displayName": self.display_name,
            "description": self.description,
            "isPrivate": self.private,
            "isPricePerSeat": False,
            "hasFreeTrials": False,
            "planComponents": {
                "recurrentBillingTerms": [
                    {"currency": "USD", "price": 0.0, "termUnit": "P1M", "termDescription": "1 month subscription"}
                ],
                "meteringDimensions": [
                    {
                        "id": dimension.id,
                        "currency": "USD",
                        "displayName": dimension.display_name,
                        "unitOfMeasure": dimension.unit,
                    }
                    for dimension in dimensions
                ],
            },
        }


@dataclass(frozen=True)
class Offer:
    """An offer with its plans and dimensions."""

    id: str
    publisher_id: str
    display_name: str
    plans: dict[str, Plan]
    dimensions: tuple[Dimension, ...]

    def dimension_ids(self) -> set[str]:
        """Ids of the metered dimensions."""
        return {dimension.id for dimension in self.dimensions}


class OfferCatalog:
    """Every offer of the catalog file, by id."""

    def __init__(self, offers: dict[str, Offer]) -> None:
        self.offers = offers

    @classmethod
    def load(cls, path: Path = DEFAULT_CATALOG_PATH) -> OfferCatalog:
        """Parse the catalog TOML."""
        with path.open("rb") as handle:
            document = tomllib.load(handle)
        offers: dict[str, Offer] = {}
        for entry in document["offers"]:
            plans = {
                plan["id"]: Plan(
                    id=plan["id"],
                    display_name=plan["display_name"],
                    description=plan.get("description", ""),
                    private=bool(plan.get("private", False)),
                    min_quantity=int(plan.get("min_quantity", 1)),
                    max_quantity=int(plan.get("max_quantity", 1)),
                )
                for plan in entry.get("plans", [])
            }
            dimensions = tuple(
                Dimension(dimension["id"], dimension["display_name"], dimension.get("unit", ""))
                for dimension in entry.get("dimensions", [])
            )
            offers[entry["id"]] = Offer(entry["id"], entry["publisher_id"], entry["display_name"], plans, dimensions)
        return cls(offers)

    def default_offer(self) -> Offer:
        """The first offer of the file (purchases name it when they do not say)."""
        return next(iter(self.offers.values()))
