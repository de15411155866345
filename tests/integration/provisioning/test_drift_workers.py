"""Acceptance, with real worker and relay processes: out-of-band deletion of the scale set, the Private Link
Service and the key are each detected within one observation interval, and repaired (scale set, PLS) or raised to
an operator (key).

The beat is driven by hand: each "interval" runs the sweep of every tick of one interval (what the scheduler does
over `CP_DRIFT_OBSERVATION_INTERVAL_SECONDS`), so the test needs no clock and no sleep. Observations and repairs
run in the worker processes.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from core.clock import utc_now
from core.clusters.drift import current_slice, due_cluster_ids
from core.clusters.drift_models import ClusterDrift, DriftState
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment, DeploymentState
from core.db import Database
from core.outbox.service import enqueue
from core.settings import Settings
from core.task_payloads import ObserveClusterDrift
from harness.processes import ProcessGroup
from tests.integration.provisioning.conftest import create_cluster, resource_body, tenant_and_subscription
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(240)
INTERVAL_SECONDS = 600.0
SLICES = 12


def run_one_interval(database: Database, cluster_id: str) -> int:
    """Every beat tick of one observation interval, as the scheduler runs them; returns how many ticks had the
    cluster due. Only its observation is enqueued: other tests' clusters share this database, and their
    observations are not this test's business."""
    start = utc_now()
    turns = 0
    for turn in range(SLICES):
        with database.session() as session:
            tick = start + timedelta(seconds=turn * INTERVAL_SECONDS / SLICES)
            due = due_cluster_ids(session, slice_index=current_slice(tick, INTERVAL_SECONDS, SLICES), slices=SLICES)
            if cluster_id in due:
                turns += 1
                enqueue(session, ObserveClusterDrift(cluster_id=cluster_id))
            session.commit()
    return turns


def drift_rows(database: Database, cluster_id: str) -> list[ClusterDrift]:
    with database.session() as session:
        statement = (
            select(ClusterDrift).where(ClusterDrift.cluster_id == cluster_id).order_by(col(ClusterDrift.detected_at))
        )
        return list(session.exec(statement).all())


def output(database: Database, cluster_id: str, step: str, name: str) -> str:
    with database.session() as session:
        rows = session.exec(
            select(ArmDeployment)
            .where(ArmDeployment.cluster_id == cluster_id, ArmDeployment.step == step)
            .where(ArmDeployment.state == DeploymentState.SUCCEEDED)
            .order_by(col(ArmDeployment.id))
        ).all()
    return str(rows[-1].outputs[name])


def ready(database: Database, cluster_id: str) -> Cluster | None:
    with database.session() as session:
        cluster = session.get(Cluster, cluster_id)
        return cluster if cluster is not None and cluster.status == ClusterStatus.READY else None


def test_out_of_band_deletions_are_detected_within_one_interval_and_repaired_or_raised(
    database: Database,
    state: dict[str, Any],
    provisioning_settings: Settings,
    arm_control: httpx.Client,
    tmp_path: Path,
) -> None:
    settings = provisioning_settings.model_copy(
        update={"drift_observation_interval_seconds": INTERVAL_SECONDS, "drift_observation_slices": SLICES}
    )
    group = ProcessGroup(tmp_path / "logs", {**os.environ, **settings.as_environment()})
    group.add("relay", "relay")
    group.add("worker", "worker", "--concurrency=2")
    group.start_all()
    try:
        cluster_id = create_cluster(database, state, owner="drift-proc")
        wait_for(lambda: ready(database, cluster_id), timeout_seconds=90, what="the cluster to be ready")
        _, subscription_id = tenant_and_subscription(state, "contoso")

        def deleted_then_repaired(step: str, output_name: str, resource_type: str) -> None:
            resource_id = output(database, cluster_id, step, output_name)
            response = arm_control.post("/out-of-band/delete", json={"resource_id": resource_id})
            assert response.status_code == 200, response.text
            known = {row.id for row in drift_rows(database, cluster_id)}

            # One interval observes every ready cluster exactly once.
            assert run_one_interval(database, cluster_id) == 1
            drift = wait_for(
                lambda: next((row for row in drift_rows(database, cluster_id) if row.id not in known), None),
                what=f"the deletion of {resource_type} to be recorded",
            )
            assert (drift.kind, drift.resource_id, drift.remedy) == ("resource_deleted", resource_id, "repair")

            def repaired() -> bool:
                names = {item["id"].lower() for item in resource_body(arm_control, subscription_id, resource_type)}
                return resource_id.lower() in names and ready(database, cluster_id) is not None

            wait_for(repaired, timeout_seconds=90, what=f"{resource_type} to be re-deployed")
            run_one_interval(database, cluster_id)
            wait_for(
                lambda: next(
                    (
                        row
                        for row in drift_rows(database, cluster_id)
                        if row.id == drift.id and row.state == DriftState.RESOLVED
                    ),
                    None,
                ),
                what=f"the {resource_type} drift to be resolved",
            )

        deleted_then_repaired("cluster", "scaleSetResourceId", "Microsoft.Compute/virtualMachineScaleSets")
        deleted_then_repaired("private-link", "privateLinkServiceResourceId", "Microsoft.Network/privateLinkServices")

        key_id = output(database, cluster_id, "identity-keyvault", "keyResourceId")
        assert arm_control.post("/out-of-band/delete", json={"resource_id": key_id}).status_code == 200
        run_one_interval(database, cluster_id)
        incident = wait_for(
            lambda: next((row for row in drift_rows(database, cluster_id) if row.kind == "key_deleted"), None),
            what="the key deletion to be raised",
        )
        assert (incident.remedy, incident.state) == ("incident", "open")
        # Nothing re-creates the key: the vault still holds no key of that name.
        keys = resource_body(arm_control, subscription_id, "Microsoft.KeyVault/vaults/keys")
        assert key_id.lower() not in {item["id"].lower() for item in keys}
        assert [row.state for row in drift_rows(database, cluster_id) if row.kind == "key_deleted"] == ["open"]
    finally:
        group.stop_all()
