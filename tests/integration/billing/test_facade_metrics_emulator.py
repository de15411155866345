"""The façade metrics emulator over HTTPS: computed, seedable curves, overrides, bad samples and faults."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from billing.collector import ClusterMetricsSource, collect_usage
from core.db import Database
from core.settings import Settings
from core.usage.models import UsageSample
from emulators.arm.store import ArmStore, StoredResource
from emulators.common.faults import FaultInjector
from emulators.facade import FacadeMetricsEmulator
from emulators.facade.sizing import ScaleSetFacts, arm_scale_set_lookup
from tests.integration.billing.conftest import add_customer
from tests.support.marketplace_emulator import control_client

pytestmark = pytest.mark.timeout(60)


def read(state: dict[str, Any], cluster_name: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    url = state["facade"]["metrics_url_template"].format(cluster_name=cluster_name)
    response = httpx.get(url, params={"start": start.isoformat(), "end": end.isoformat()}, verify=state["ca_bundle"])
    response.raise_for_status()
    samples: list[dict[str, Any]] = response.json()["samples"]
    return samples


def test_curves_are_deterministic_per_seed_and_cluster_and_follow_a_daily_pattern(
    emulator_state: dict[str, Any],
) -> None:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=24)
    first = read(emulator_state, "cluster-a", start, end)
    assert len(first) == 24 * 12
    assert read(emulator_state, "cluster-a", start, end) == first
    assert read(emulator_state, "cluster-b", start, end) != first

    by_hour: dict[int, float] = {}
    for sample in first:
        hour = datetime.fromisoformat(sample["timestamp"].replace("Z", "+00:00")).hour
        by_hour[hour] = by_hour.get(hour, 0.0) + sample["data_read_gib"] + sample["data_written_gib"]
    # The busiest hour moves well over twice the quietest one's data: a daily pattern, not noise.
    assert max(by_hour.values()) > 2 * min(by_hour.values())

    other_seed = FacadeMetricsEmulator(seed=1, faults=FaultInjector())
    same_seed = FacadeMetricsEmulator(seed=emulator_state["facade"]["seed"], faults=FaultInjector())
    instant = end - timedelta(hours=1)
    assert same_seed.point("cluster-a", instant).to_json() == first[-13]
    assert other_seed.point("cluster-a", instant) != same_seed.point("cluster-a", instant)


def test_usage_derives_from_the_plan_and_quantity_of_the_clusters_scale_set() -> None:
    """A standard x2 cluster (6 nodes, 50 TiB usable) bills what its customer would recognise."""
    serving_since = datetime(2026, 11, 2, 9, 40, tzinfo=UTC)
    scale_sets = {"standard-x2": ScaleSetFacts("Standard_L8s_v3", 6, serving_since)}
    emulator = FacadeMetricsEmulator(seed=7, faults=FaultInjector(), scale_sets=scale_sets.get)
    size = emulator.size_of("standard-x2")
    assert (size.plan_id, size.quantity, size.usable_tib) == ("standard", 2, 50.0)
    # Included per hour: 2 x 50 GiB transfer and 2 x 100 x 10,000 requests.
    assert (size.included_transfer_gib_per_hour, size.included_requests_per_hour) == (100.0, 2_000_000.0)

    week = emulator.read("standard-x2", serving_since - timedelta(hours=6), serving_since + timedelta(days=7))
    # Nothing from before the scale set existed; then 30-80 % full, filling up over the weeks.
    assert min(point.timestamp for point in week) > serving_since
    capacities = [point.capacity_tib for point in week]
    assert min(capacities) >= 0.30 * 50
    assert max(capacities) <= 0.80 * 50
    assert emulator.point("standard-x2", serving_since + timedelta(days=35)).capacity_tib > capacities[0] + 2.0

    transfer: dict[datetime, float] = {}
    requests: dict[datetime, int] = {}
    for point in week:
        hour = point.timestamp.replace(minute=0)
        transfer[hour] = transfer.get(hour, 0.0) + point.data_read_gib + point.data_written_gib
        requests[hour] = requests.get(hour, 0) + point.api_requests
    full_days = [
        hour for hour in transfer if serving_since + timedelta(hours=1) <= hour < serving_since + timedelta(days=6)
    ]
    # A daily pattern around the included volume: quiet hours well under it, the busiest a little over it.
    assert min(transfer[hour] for hour in full_days) < 0.5 * 100.0
    assert 100.0 < max(transfer[hour] for hour in full_days) < 1.6 * 100.0
    # Occasional request bursts above the included volume, most hours within it.
    over = [hour for hour in full_days if requests[hour] > 2_000_000]
    assert 0 < len(over) < len(full_days) / 3


def test_a_cluster_arm_does_not_know_is_sized_as_one_unit_of_the_first_public_plan() -> None:
    emulator = FacadeMetricsEmulator(seed=7, faults=FaultInjector(), scale_sets=lambda name: None)
    size = emulator.size_of("unknown")
    assert (size.plan_id, size.quantity, size.usable_tib, size.serving_since) == ("standard", 1, 25.0, None)
    capacity = emulator.point("unknown", datetime(2026, 12, 1, tzinfo=UTC)).capacity_tib
    assert 0.30 * 25 <= capacity <= 0.80 * 25


def test_override_and_bad_samples(emulator_state: dict[str, Any]) -> None:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=1)
    with control_client(emulator_state, "facade") as control:
        control.put(
            "/clusters/cluster-c/curve",
            json={
                "capacity_tib": 3.0,
                "data_read_gib_per_hour": 12.0,
                "data_written_gib_per_hour": 0.0,
                "api_requests_per_hour": 1200,
            },
        ).raise_for_status()
        assert {sample["capacity_tib"] for sample in read(emulator_state, "cluster-c", start, end)} == {3.0}
        control.post("/clusters/cluster-c/bad-samples", json={"kind": "duplicate", "count": 2}).raise_for_status()
        control.post("/clusters/cluster-c/bad-samples", json={"kind": "future", "count": 1}).raise_for_status()
        samples = read(emulator_state, "cluster-c", start, end)
        assert len(samples) == 12 + 2 + 1
        assert samples[-3]["timestamp"] == samples[-5]["timestamp"]
        assert datetime.fromisoformat(samples[-1]["timestamp"].replace("Z", "+00:00")) > datetime.now(UTC)
        # Queued bad samples are served once.
        assert len(read(emulator_state, "cluster-c", start, end)) == 12
        control.delete("/clusters/cluster-c/curve").raise_for_status()
        assert read(emulator_state, "cluster-c", start, end)[0]["capacity_tib"] != 3.0


def test_a_failing_cluster_endpoint_does_not_stop_collection(
    database: Database, emulator_state: dict[str, Any], billing_settings: Settings, clean_faults: None
) -> None:
    failing = add_customer(database, emulator_state, billing_settings)
    healthy = add_customer(database, emulator_state, billing_settings)
    with control_client(emulator_state, "facade") as control:
        control.post(
            "/faults", json={"kind": "status", "status": 503, "path_pattern": f"/clusters/{failing.cluster_name}/"}
        ).raise_for_status()
    source = ClusterMetricsSource.from_settings(billing_settings)
    try:
        summary = collect_usage(database, source, billing_settings)
    finally:
        source.close()
    assert summary.failed_clusters == 1
    # The healthy cluster's 3-hour lookback holds 36 five-minute points of 3 dimensions each.
    assert summary.stored == 36 * 3
    with database.session() as session:
        stored_clusters = set(session.exec(select(UsageSample.cluster_id).distinct()).all())
    assert healthy.cluster_id in stored_clusters
    assert failing.cluster_id not in stored_clusters


def test_the_arm_emulators_scale_set_sizes_the_cluster() -> None:
    store = ArmStore()
    scale_set_id = (
        f"/subscriptions/{uuid.uuid4()}/resourceGroups/rg-perf/providers/"
        "Microsoft.Compute/virtualMachineScaleSets/vmss-perf-x3"
    )
    store.put_resource(
        StoredResource(
            id=scale_set_id,
            body={
                "id": scale_set_id,
                "tags": {"vast-facade-cluster": "perf-x3"},
                "sku": {"name": "Standard_L16s_v3", "tier": "Standard", "capacity": 15},
                "properties": {"timeCreated": "2026-12-01T08:00:00Z"},
            },
        )
    )
    emulator = FacadeMetricsEmulator(seed=7, faults=FaultInjector(), scale_sets=arm_scale_set_lookup(store))
    size = emulator.size_of("perf-x3")
    assert (size.plan_id, size.quantity, size.usable_tib) == ("performance", 3, 180.0)
    assert size.serving_since == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert emulator.size_of("someone-else").serving_since is None
