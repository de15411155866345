"""The controller's pure decisions: which step comes next, names, statuses, backoff."""

from __future__ import annotations

from core.clusters.controller import (
    StepPlan,
    deployment_name_for,
    first_step_to_deploy,
    parameters_fingerprint,
    retry_delay_seconds,
    status_while_deploying,
)
from core.clusters.models import ClusterStatus


def _plans(**parameters_by_step: dict[str, object]) -> list[StepPlan]:
    return [StepPlan(step, dict(values), parameters_fingerprint(values)) for step, values in parameters_by_step.items()]


def test_first_step_without_a_matching_deployment_is_next() -> None:
    plans = _plans(a={"x": 1}, b={"y": 2}, c={"z": 3})
    deployed = {"a": plans[0].parameters_hash}
    assert first_step_to_deploy(plans, deployed) == plans[1]


def test_a_changed_parameter_redeploys_only_that_step() -> None:
    before = _plans(a={"x": 1}, b={"capacity": 3}, c={"z": 3})
    deployed = {plan.step: plan.parameters_hash for plan in before}
    after = _plans(a={"x": 1}, b={"capacity": 6}, c={"z": 3})
    assert first_step_to_deploy(after, deployed) == after[1]
    assert first_step_to_deploy(before, deployed) is None


def test_fingerprint_ignores_key_order_but_not_values() -> None:
    assert parameters_fingerprint({"a": 1, "b": [1, 2]}) == parameters_fingerprint({"b": [1, 2], "a": 1})
    assert parameters_fingerprint({"a": 1}) != parameters_fingerprint({"a": 2})


def test_deployment_names_are_deterministic_per_step_generation_and_attempt() -> None:
    assert deployment_name_for("vast-abc", "cluster", 2, 1) == "vast-abc-cluster-g2"
    assert deployment_name_for("vast-abc", "cluster", 2, 3) == "vast-abc-cluster-g2-a3"


def test_status_while_deploying_follows_the_cluster_state_machine() -> None:
    assert status_while_deploying(ClusterStatus.PENDING) == ClusterStatus.PROVISIONING
    assert status_while_deploying(ClusterStatus.FAILED) == ClusterStatus.PROVISIONING
    assert status_while_deploying(ClusterStatus.READY) == ClusterStatus.UPDATING
    assert status_while_deploying(ClusterStatus.SUSPENDED) == ClusterStatus.RESUMING


def test_retry_delay_doubles_with_bounded_jitter() -> None:
    for attempts, base in ((1, 10.0), (2, 20.0), (3, 40.0)):
        delay = retry_delay_seconds(10.0, attempts)
        assert base <= delay <= base * 1.2
