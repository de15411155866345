"""The façade metrics emulator over HTTPS: computed, seedable curves, overrides, bad samples and faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from billing.collector import ClusterMetricsSource, collect_usage
from core.db import Database
from core.settings import Settings
from core.usage.models import UsageSample
from emulators.common.faults import FaultInjector
from emulators.facade import FacadeMetricsEmulator
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
    # Capacity grows over weeks.
    month_later = same_seed.point("cluster-a", instant + timedelta(days=30))
    assert month_later.capacity_tib > same_seed.point("cluster-a", instant).capacity_tib


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
