"""Billing fixtures: a customer with an active Marketplace subscription and a ready cluster of constant usage."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from core.clock import utc_now
from core.db import Database
from core.marketplace.metering_client import MeteringClient
from core.settings import Settings
from emulators.suite import EmulatorSuite
from harness.emulator_environment import settings_for_emulators
from tests.support.factories import create_cluster, create_subscription, create_tenant
from tests.support.marketplace_emulator import control_client, purchase_active_subscription

# Constant usage chosen so every 5-minute sample is exact in binary floating point:
# per sample 6 + 2 GiB transfer and 100,000 requests (10 units of 10k); standard plan, quantity 1,
# includes 5 TiB, 50 GiB and 100 x 10k requests per hour.
CONSTANT_CURVE = {
    "capacity_tib": 12.5,
    "data_read_gib_per_hour": 72.0,
    "data_written_gib_per_hour": 24.0,
    "api_requests_per_hour": 1_200_000,
}
SAMPLES_PER_HOUR = 12


def expected_billable(dimension_id: str, samples_in_hour: int) -> float:
    """What an hour with `samples_in_hour` constant samples bills on the standard plan (quantity 1)."""
    if dimension_id == "capacity_tib":
        return 12.5 - 5.0
    if dimension_id == "data_transfer_gib":
        return max(8.0 * samples_in_hour - 50.0, 0.0)
    return max(10.0 * samples_in_hour - 100.0, 0.0)


@dataclass
class BilledCustomer:
    """One subscription known to both Marketplace and our database, with its cluster."""

    subscription_id: str
    cluster_id: str
    cluster_name: str


@pytest.fixture
def emulator_state(emulator_suite: EmulatorSuite) -> dict[str, Any]:
    return emulator_suite.state()


@pytest.fixture
def billing_settings(emulator_state: dict[str, Any], base_settings: Settings) -> Settings:
    """Emulator settings with a 3-hour first collection and the default 15-minute grace.

    Built without the ARM part of the state: billing never calls ARM, and the ARM emulator's
    description is still changing under another issue.
    """
    state = {name: facts for name, facts in emulator_state.items() if name != "arm"}
    return settings_for_emulators(
        state,
        data_dir=base_settings.data_dir,
        database_url=base_settings.database_url,
        broker_url=base_settings.broker_url,
        billing_collection_lookback_hours=3.0,
    )


@pytest.fixture
def metering_client(billing_settings: Settings) -> Iterator[MeteringClient]:
    """The production client with short backoff, so fault storms resolve quickly."""
    client = MeteringClient.from_settings(
        billing_settings, backoff_initial_seconds=0.02, backoff_max_seconds=0.1, max_attempts=6
    )
    yield client
    client.close()


@pytest.fixture
def clean_faults(emulator_state: dict[str, Any]) -> Iterator[None]:
    """Remove every fault rule of the Marketplace and façade emulators after the test."""
    yield
    for component in ("marketplace", "facade"):
        with control_client(emulator_state, component) as control:
            control.delete("/faults").raise_for_status()


def add_customer(
    database: Database, emulator_state: dict[str, Any], settings: Settings, *, curve: dict[str, Any] | None = None
) -> BilledCustomer:
    """Buy and activate a subscription in the emulator, and mirror it with a ready cluster in our database."""
    purchased = purchase_active_subscription(emulator_state, settings)
    with database.session() as session:
        tenant = create_tenant(session)
        subscription = create_subscription(session, tenant, subscription_id=purchased["id"])
        cluster = create_cluster(session, tenant, subscription=subscription)
        customer = BilledCustomer(subscription.id, cluster.id, cluster.name)
    with control_client(emulator_state, "facade") as control:
        control.put(f"/clusters/{customer.cluster_name}/curve", json=curve or CONSTANT_CURVE).raise_for_status()
    return customer


@pytest.fixture
def now() -> datetime:
    return utc_now()
