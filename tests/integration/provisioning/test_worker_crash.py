"""Real worker and relay processes: a worker killed with SIGKILL mid-deployment resumes without deploying twice."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment
from core.db import Database
from core.settings import Settings
from harness.processes import ProcessGroup
from tests.integration.provisioning.conftest import create_cluster
from tests.integration.provisioning.test_controller import arm_deployment_names

pytestmark = pytest.mark.timeout(120)


def _wait_for(database: Database, cluster_id: str, condition: Any, timeout_seconds: float) -> Cluster:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        with database.session() as session:
            cluster = session.get(Cluster, cluster_id)
            if cluster is not None and condition(cluster):
                return cluster
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_sigkill_of_the_worker_mid_deployment_then_restart_deploys_each_step_once(
    database: Database, state: dict[str, Any], provisioning_settings: Settings, tmp_path: Path
) -> None:
    # A SIGKILLed worker's unacknowledged message comes back from Redis only after the visibility timeout;
    # the outbox relay's redispatch of uncompleted messages is what recovers it, so make that quick here.
    settings = provisioning_settings.model_copy(update={"outbox_redispatch_after_seconds": 3.0})
    environment = {**os.environ, **settings.as_environment()}
    group = ProcessGroup(tmp_path / "logs", environment)
    relay = group.add("relay", "relay")
    worker = group.add("worker", "worker", "--concurrency=1")
    group.start_all()
    try:
        cluster_id = create_cluster(database, state, owner="crash1")
        _wait_for(database, cluster_id, lambda item: item.current_step == "cluster", 60)
        worker.kill()
        replacement = group.add("worker-2", "worker", "--concurrency=1")
        replacement.start(environment)
        cluster = _wait_for(database, cluster_id, lambda item: item.status == ClusterStatus.READY, 90)
    finally:
        group.stop_all()
    assert relay.process is not None
    names = arm_deployment_names(provisioning_settings, state, "contoso", cluster.resource_group)
    with database.session() as session:
        rows = session.exec(select(ArmDeployment).where(ArmDeployment.cluster_id == cluster_id)).all()
    assert sorted(row.deployment_name for row in rows) == names
    assert sorted((row.step, row.generation) for row in rows) == sorted(
        (step, 1) for step in ("identity-keyvault", "cluster", "private-link", "dns", "diagnostics")
    )
