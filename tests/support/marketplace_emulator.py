"""Drive the Marketplace emulator from tests: buy and activate a subscription, plant metering differences."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from core.marketplace.fulfillment_client import FulfillmentClient
from core.settings import Settings


def control_client(state: dict[str, Any], component: str) -> httpx.Client:
    """An httpx client on an emulator's control API (trusting the emulators' CA)."""
    return httpx.Client(base_url=state[component]["control_url"], verify=state["ca_bundle"], timeout=10.0)


def purchase_active_subscription(
    state: dict[str, Any],
    settings: Settings,
    *,
    plan_id: str = "standard",
    quantity: int | None = 1,
    purchased_seconds_ago: float = 2 * 86400.0,
) -> dict[str, Any]:
    """Buy a plan in the emulator and activate it through the fulfilment API, as the landing page would.

    Bought two days ago by default, so the usage of the last 24 hours is inside the subscription's term.
    """
    with control_client(state, "marketplace") as control:
        response = control.post(
            "/purchases",
            json={
                "plan_id": plan_id,
                "quantity": quantity,
                "beneficiary": {"tenant_id": str(uuid.uuid4()), "email": "admin@contoso.example"},
                "purchased_seconds_ago": purchased_seconds_ago,
            },
        )
        response.raise_for_status()
        subscription: dict[str, Any] = response.json()["subscription"]
    fulfillment = FulfillmentClient.from_settings(settings)
    try:
        fulfillment.activate(subscription["id"], plan_id, quantity)
    finally:
        fulfillment.close()
    return subscription
