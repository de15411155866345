"""The fulfilment client's total budget: a Retry-After beyond it is passed on, never waited; retries fit inside it.

Counted in requests that reached the emulator (fault hits), not in seconds: the budget decides how many tries
happen, and a wait that would end beyond it does not happen at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.marketplace.fulfillment_client import FulfillmentClient
from core.marketplace.http import MarketplaceError
from harness.emulator_environment import settings_for_emulators

pytestmark = pytest.mark.timeout(60)
RESOLVE = r"/api/saas/subscriptions/resolve"


@pytest.fixture
def client(emulator_state: dict[str, Any]) -> Iterator[FulfillmentClient]:
    settings = settings_for_emulators(emulator_state, marketplace_backoff_initial_seconds=0.1)
    fulfillment = FulfillmentClient.from_settings(settings)
    yield fulfillment
    fulfillment.close()


@pytest.fixture
def faults(emulator_state: dict[str, Any], ca_bundle: Path) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator_state["marketplace"]["control_url"], verify=str(ca_bundle)) as control:
        yield control
        control.delete("/faults").raise_for_status()


def _hits(faults: httpx.Client, rule_id: int) -> int:
    return int(next(rule["hits"] for rule in faults.get("/faults").json() if rule["id"] == rule_id))


def test_a_retry_after_beyond_the_budget_is_raised_with_it_after_one_try(
    client: FulfillmentClient, faults: httpx.Client, purchase: Callable[..., dict[str, Any]]
) -> None:
    token = purchase()["token"]
    rule = faults.post(
        "/faults",
        json={"kind": "status", "method": "POST", "path_pattern": RESOLVE, "status": 429, "retry_after_seconds": 3600},
    ).json()

    with pytest.raises(MarketplaceError) as raised:
        client.resolve(token, budget_seconds=5)

    assert (raised.value.status, raised.value.retry_after_seconds) == (429, 3600)
    assert _hits(faults, rule["id"]) == 1


def test_without_a_budget_the_client_keeps_its_retries(
    client: FulfillmentClient, faults: httpx.Client, purchase: Callable[..., dict[str, Any]]
) -> None:
    """Workers are not requests: a short throttle is waited out as before."""
    token = purchase()["token"]
    faults.post(
        "/faults",
        json={
            "kind": "status",
            "method": "POST",
            "path_pattern": RESOLVE,
            "status": 429,
            "retry_after_seconds": 1,
            "count": 2,
        },
    ).raise_for_status()

    assert client.resolve(token).id


def test_retries_that_fit_the_budget_still_happen(
    client: FulfillmentClient, faults: httpx.Client, purchase: Callable[..., dict[str, Any]]
) -> None:
    token = purchase()["token"]
    rule = faults.post(
        "/faults", json={"kind": "status", "method": "POST", "path_pattern": RESOLVE, "status": 503, "count": 2}
    ).json()

    assert client.resolve(token, budget_seconds=5).id
    assert _hits(faults, rule["id"]) == 2
