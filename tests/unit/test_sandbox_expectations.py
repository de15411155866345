"""The sandbox demo tells the truth: its changes are upgrades, and each step states the end it must reach."""

from __future__ import annotations

from typing import Any

import pytest

from core.catalog.loader import load_catalog
from core.settings import DEFAULT_CATALOG_PATH
from harness.billing_demo import billing_as_expected
from harness.marketplace_demo import LIFECYCLE_ACTIONS

PURCHASE = ("standard", 2)  # what the demo buys


def test_the_demo_changes_never_reduce_capacity_so_they_are_accepted_whatever_the_usage() -> None:
    offer = load_catalog(DEFAULT_CATALOG_PATH).offers[0]
    plan_id, quantity = PURCHASE
    for action, body, expected in LIFECYCLE_ACTIONS:
        if action not in ("change-quantity", "change-plan"):
            continue
        assert body is not None
        before = offer.plan(plan_id)
        assert before is not None
        plan_id = body.get("plan_id", plan_id)
        quantity = body.get("quantity", quantity)
        after = offer.plan(plan_id)
        assert after is not None
        assert after.min_quantity <= quantity <= after.max_quantity
        assert after.capacity_tib_per_unit * quantity >= before.capacity_tib_per_unit * PURCHASE[1]
        assert expected.ours == "reported Success"
        assert expected.subscription == f"Subscribed {plan_id} x {quantity}"


def test_every_lifecycle_action_expects_marketplace_to_complete_it() -> None:
    assert [action for action, _, _ in LIFECYCLE_ACTIONS] == [
        "change-quantity",
        "change-plan",
        "suspend",
        "reinstate",
        "renew",
        "unsubscribe",
    ]
    assert {expected.marketplace_operation for _, _, expected in LIFECYCLE_ACTIONS} == {"Succeeded"}
    assert LIFECYCLE_ACTIONS[-1][2].subscription.startswith("Unsubscribed ")


def _bucket(entries: int) -> dict[str, Any]:
    return {"entries": entries, "billable_quantity": "1.000"}


@pytest.mark.parametrize(
    ("statuses", "differences", "expected"),
    [
        ({"accepted": _bucket(9)}, 0, True),
        ({"accepted": _bucket(8), "duplicate": _bucket(1)}, 0, True),  # a duplicate was accepted earlier
        ({}, 0, False),  # nothing metered is not a demo of metering
        ({"accepted": _bucket(8), "rejected": _bucket(1)}, 0, False),
        ({"accepted": _bucket(8), "unknown": _bucket(1)}, 0, False),
        ({"accepted": _bucket(9)}, 1, False),
    ],
)
def test_the_billing_step_reaches_its_end_only_when_everything_was_accepted_and_reconciles(
    statuses: dict[str, Any], differences: int, expected: bool
) -> None:
    assert billing_as_expected({"statuses": statuses, "adjustments": 0, "differences": differences}) is expected
