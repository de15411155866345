"""Outbox tasks carry typed payloads: producers and consumers agree on one model per task."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.messaging import TaskNames
from core.settings import Settings
from core.task_payloads import (
    ClusterConverged,
    ConvergenceOutcome,
    MalformedTaskPayload,
    ObserveManagedApplication,
    TaskPayload,
    read_payload,
)

# What a worker process registers (the worker reads its settings at import, as in production).
REGISTERED_CONSUMERS = (
    "import json, workers.tasks; from workers.consumer import _consumers; print(json.dumps(sorted(_consumers)))"
)


def test_every_payload_has_exactly_one_registered_consumer_and_every_consumer_a_payload(
    base_settings: Settings,
) -> None:
    payload_tasks = [payload.task_name for payload in TaskPayload.__subclasses__()]
    assert len(payload_tasks) == len(set(payload_tasks))
    worker = subprocess.run(
        [sys.executable, "-c", REGISTERED_CONSUMERS],
        env={**os.environ, **base_settings.as_environment()},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert set(json.loads(worker.stdout)) == set(payload_tasks)


def test_a_payload_is_stored_as_json_and_read_back_equal() -> None:
    payload = ClusterConverged(cluster_id="c-1", generation=3, outcome=ConvergenceOutcome.FAILED, reason="quota")
    stored = payload.arguments()
    assert stored == {"cluster_id": "c-1", "generation": 3, "outcome": "failed", "reason": "quota"}
    assert read_payload(ClusterConverged, stored) == payload


def test_defaults_are_written_out_so_the_row_says_everything_the_consumer_will_use() -> None:
    assert ObserveManagedApplication(managed_application_id="m-1").arguments() == {
        "managed_application_id": "m-1",
        "attempt": 1,
    }


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"cluster_id": "c-1", "generation": 1}, "outcome: Field required"),
        ({"cluster_id": "c-1", "generation": "one", "outcome": "converged"}, "generation: Input should be a valid"),
        ({"cluster_id": "c-1", "generation": 1, "outcome": "maybe"}, "outcome: Input should be 'converged' or"),
        (
            {"cluster_id": "c-1", "generation": 1, "outcome": "converged", "priority": 9},
            "priority: Extra inputs are not permitted",
        ),
    ],
)
def test_arguments_the_task_does_not_take_are_refused_by_name(arguments: dict[str, object], problem: str) -> None:
    with pytest.raises(MalformedTaskPayload) as refused:
        read_payload(ClusterConverged, arguments)
    assert refused.value.message.startswith(f"{TaskNames.CLUSTER_CONVERGED} cannot take")
    assert problem in refused.value.message
