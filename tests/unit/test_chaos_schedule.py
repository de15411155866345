"""The chaos schedule: the same seed gives the same faults in the same order, always within bounds."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from harness.scenario.chaos import (
    BROKER_RESTART,
    DEFAULT_MAX_PER_KIND,
    EMULATOR_FAULT,
    KILL_API,
    KILL_BEAT,
    KILL_WORKER,
    OUT_OF_BAND_DELETION,
    POSTGRES_DROP,
    SHARED_GROUP,
    WEBHOOK_REORDER,
    ChaosLimits,
    PlannedFault,
    plan_faults,
    with_application_name,
)

FULL_RUN: dict[str, Any] = {
    "process_names": ["api-1", "api-2", "worker-1", "worker-2", "beat"],
    "emulator_names": ["entra", "marketplace", "arm", "facade"],
    "broker": True,
    "database": True,
    "webhooks": True,
}


def _plan(seed: int, **overrides: Any) -> list[PlannedFault]:
    return plan_faults(seed, **{**FULL_RUN, **overrides})


def test_the_same_seed_gives_the_same_plan() -> None:
    assert _plan(7) == _plan(7)
    assert len(_plan(7)) > 0


def test_another_seed_gives_another_order() -> None:
    orders = {tuple((fault.kind, fault.target) for fault in _plan(seed)) for seed in range(5)}
    assert len(orders) == 5


def test_each_kind_is_bounded_by_its_maximum_scaled_by_intensity() -> None:
    assert Counter(fault.kind for fault in _plan(3)) == Counter(DEFAULT_MAX_PER_KIND)
    doubled = Counter(fault.kind for fault in _plan(3, intensity=2.0))
    assert doubled == Counter({kind: 2 * count for kind, count in DEFAULT_MAX_PER_KIND.items()})
    assert _plan(3, intensity=0.0) == []


def test_faults_are_spaced_by_at_least_the_minimum_interval() -> None:
    limits = ChaosLimits(min_interval_seconds=2.5, mean_interval_seconds=3.0)
    plan = _plan(11, limits=limits, intensity=10.0)
    assert min(fault.wait_seconds for fault in plan) >= 2.5
    assert max(fault.wait_seconds for fault in plan) <= 2.5 + 4 * 3.0


def test_targets_are_only_what_the_run_has() -> None:
    plan = _plan(5)
    assert {fault.target for fault in plan if fault.kind == KILL_API} <= {"api-1", "api-2"}
    assert {fault.target for fault in plan if fault.kind == KILL_WORKER} <= {"worker-1", "worker-2"}
    assert {fault.target for fault in plan if fault.kind == KILL_BEAT} == {"beat"}
    # Entra is never faulted: a customer's browser signs in there.
    assert {fault.target for fault in plan if fault.kind == EMULATOR_FAULT} <= {"marketplace", "arm", "facade"}


def test_a_run_without_a_private_broker_or_tagged_database_gets_no_such_faults() -> None:
    kinds = {fault.kind for fault in _plan(5, broker=False, database=False, webhooks=False)}
    assert BROKER_RESTART not in kinds
    assert POSTGRES_DROP not in kinds
    assert WEBHOOK_REORDER not in kinds
    assert kinds >= {KILL_API, KILL_WORKER, KILL_BEAT, EMULATOR_FAULT}


def test_sizes_and_downtimes_stay_within_limits() -> None:
    limits = ChaosLimits(max_downtime_seconds=1.5)
    for fault in _plan(13, limits=limits, intensity=3.0):
        assert 1 <= fault.size <= limits.max_size_per_fault.get(fault.kind, 1)
        if fault.kind == WEBHOOK_REORDER:  # held long enough for several webhooks to pile up
            assert 1.5 <= fault.downtime_seconds <= 4.5
        elif fault.kind in (KILL_API, KILL_WORKER, KILL_BEAT, BROKER_RESTART):
            assert 0.2 <= fault.downtime_seconds <= 1.5
        else:
            assert fault.downtime_seconds == 0.0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dcp_x",
            "postgresql+psycopg://postgres@127.0.0.1:5432/test?application_name=run-1&options=-csearch_path%3Dcp_x",
        ),
        ("postgresql://u:p@db/cp", "postgresql://u:p@db/cp?application_name=run-1"),
    ],
)
def test_the_run_tags_its_database_connections(url: str, expected: str) -> None:
    assert with_application_name(url, "run-1") == expected


def test_arm_runs_get_shared_group_and_out_of_band_deletion_faults_on_the_arm_emulator() -> None:
    plan = _plan(5)
    assert {fault.target for fault in plan if fault.kind in (SHARED_GROUP, OUT_OF_BAND_DELETION)} == {"arm"}
    assert Counter(fault.kind for fault in plan)[OUT_OF_BAND_DELETION] == DEFAULT_MAX_PER_KIND[OUT_OF_BAND_DELETION]
    without_arm = _plan(5, emulator_names=["entra", "marketplace", "facade"])
    assert not {fault.kind for fault in without_arm} & {SHARED_GROUP, OUT_OF_BAND_DELETION}
