"""Failed deployments: ARM's error is kept, the retry budget ends in failed + an operator alert, retry recovers."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from core.audit.actions import AuditAction
from core.audit.models import AuditEvent
from core.clock import utc_now
from core.clusters import key_rotation
from core.clusters.controller import ClusterController, overdue_cluster_ids
from core.clusters.key_rotation import clusters_due_for_rotation, request_rotations_due
from core.clusters.models import ClusterStatus
from core.clusters.provisioning_models import ArmDeployment, KeyRotation
from core.clusters.recovery import retry_failed_cluster
from core.clusters.service import change_desired_spec
from core.db import Database
from core.errors import IllegalTransition
from core.messaging import TaskNames
from core.outbox.models import OutboxMessage
from core.settings import Settings
from tests.integration.provisioning.conftest import Driver, create_cluster

pytestmark = pytest.mark.timeout(90)


def test_quota_failure_spends_the_budget_then_an_operator_retry_recovers(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    tenant_id = state["entra"]["tenants"]["contoso"]["id"]
    subscription_id = str(uuid.uuid4())
    created = arm_control.post(
        "/subscriptions",
        json={
            "id": subscription_id,
            "tenant_id": tenant_id,
            "access": {provisioning_settings.control_plane_client_id: "Contributor"},
        },
    )
    assert created.status_code == 201, created.text
    quota = {"region": "westeurope", "name": "vmssCapacity", "limit": 2}
    assert arm_control.put(f"/subscriptions/{subscription_id}/quotas", json=quota).status_code == 200

    cluster_id = create_cluster(database, state, owner="quota1", azure_subscription_id=subscription_id)
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.FAILED)

    assert cluster.last_error_code == "DeploymentFailed"
    assert "quota" in str(cluster.last_error_details).lower()
    with database.session() as session:
        attempts = session.exec(
            select(ArmDeployment)
            .where(ArmDeployment.cluster_id == cluster_id, ArmDeployment.step == "cluster")
            .order_by(col(ArmDeployment.id))
        ).all()
        alerts = session.exec(
            select(AuditEvent).where(AuditEvent.subject_id == cluster_id, AuditEvent.action == "cluster.failed")
        ).all()
        announcements = [
            item.arguments
            for item in session.exec(
                select(OutboxMessage).where(OutboxMessage.task_name == TaskNames.CLUSTER_CONVERGED)
            )
            if item.arguments["cluster_id"] == cluster_id
        ]
    assert [row.attempt for row in attempts] == [1, 2, 3]
    assert {row.state for row in attempts} == {"failed"}
    assert len(alerts) == 1
    assert alerts[0].details["alert"] == "operator"
    assert [item["outcome"] for item in announcements] == ["failed"]

    assert arm_control.delete(f"/subscriptions/{subscription_id}/quotas").status_code == 200
    with database.session() as session:
        retry_failed_cluster(session, cluster_id, actor="user:operator", reason="quota raised")
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.READY)
    assert cluster.last_error_code is None
    with database.session() as session:
        names = [
            row.deployment_name
            for row in session.exec(
                select(ArmDeployment)
                .where(ArmDeployment.cluster_id == cluster_id, ArmDeployment.step == "cluster")
                .order_by(col(ArmDeployment.id))
            )
        ]
    assert names[-1] == f"{cluster.name}-cluster-g1-a4"
    assert len(set(names)) == 4


def test_unsubscribe_keeps_the_cluster_stopped_for_the_retention_period(
    database: Database, drive: Driver, state: dict[str, Any], controller: ClusterController
) -> None:
    controller.settings = controller.settings.model_copy(update={"cluster_retention_days": 7})
    cluster_id = create_cluster(database, state, owner="keep1")
    drive(cluster_id, lambda item: item.status == ClusterStatus.READY)
    with database.session() as session:
        change_desired_spec(session, cluster_id, actor="test", reason="Unsubscribe", desired_deleted=True)
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.DEPROVISIONING)
    assert cluster.retention_until is not None
    assert (cluster.retention_until - cluster.updated_at).days >= 6
    # Another pass inside the retention period deletes nothing.
    cluster = drive(cluster_id, lambda item: True)
    assert cluster.status == ClusterStatus.DEPROVISIONING
    assert cluster.current_step == "retention"
    arm = controller.arm_clients.for_subscription(
        state["entra"]["tenants"]["contoso"]["id"], cluster.azure_subscription_id
    )
    assert arm.scale_set_power_state(cluster.resource_group, f"vmss-{cluster.name}") == "deallocated"
    assert arm.resource_group_exists(cluster.resource_group)


def test_sweep_finds_a_converging_cluster_whose_check_is_overdue(
    database: Database, drive: Driver, state: dict[str, Any]
) -> None:
    cluster_id = create_cluster(database, state, owner="lost1")
    drive(cluster_id, lambda item: item.current_step == "identity-keyvault")
    grace = timedelta(seconds=30)
    much_later = utc_now() + timedelta(minutes=5)
    with database.session() as session:
        assert cluster_id not in overdue_cluster_ids(session, now=utc_now(), grace=grace)
        # Five minutes on with the cluster unchanged means its scheduled check was lost on the way.
        assert cluster_id in overdue_cluster_ids(session, now=much_later, grace=grace)
    drive(cluster_id, lambda item: item.status == ClusterStatus.READY)
    with database.session() as session:
        assert cluster_id not in overdue_cluster_ids(session, now=much_later, grace=grace)


def test_consented_tenant_without_a_role_on_the_subscription_fails_with_an_actionable_message(
    database: Database, drive: Driver, state: dict[str, Any], arm_control: httpx.Client
) -> None:
    subscription_id = str(uuid.uuid4())
    tenant_id = state["entra"]["tenants"]["contoso"]["id"]
    assert arm_control.post("/subscriptions", json={"id": subscription_id, "tenant_id": tenant_id}).status_code == 201
    cluster_id = create_cluster(database, state, owner="norbac1", azure_subscription_id=subscription_id)
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.FAILED)
    assert cluster.last_error_code == "ArmAccessDenied"
    assert "AuthorizationFailed" in (cluster.last_error_message or "")
    assert f"cannot manage Azure subscription {subscription_id}" in (cluster.last_error_message or "")


def test_keys_older_than_the_policy_are_due_for_rotation(
    database: Database, drive: Driver, state: dict[str, Any]
) -> None:
    cluster_id = create_cluster(database, state, owner="policy1")
    drive(cluster_id, lambda item: item.status == ClusterStatus.READY)
    with database.session() as session:
        due_now = {item.id for item in clusters_due_for_rotation(session, now=utc_now())}
        due_later = {item.id for item in clusters_due_for_rotation(session, now=utc_now() + timedelta(days=91))}
    assert cluster_id not in due_now
    assert cluster_id in due_later


def test_the_policy_sweep_skips_a_rotation_under_way_and_keeps_serving_others_when_one_cluster_fails(
    database: Database, drive: Driver, state: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken_id = create_cluster(database, state, owner="policy2")
    healthy_id = create_cluster(database, state, owner="policy3")
    for cluster_id in (broken_id, healthy_id):
        drive(cluster_id, lambda item: item.status == ClusterStatus.READY)
    later = utc_now() + timedelta(days=91)
    request = key_rotation.request_key_rotation

    def refuse_one(session: Any, cluster: Any, **kwargs: Any) -> KeyRotation:
        if cluster.id == broken_id:
            raise IllegalTransition("cluster: transition ready -> ready is not allowed")
        return request(session, cluster, **kwargs)

    monkeypatch.setattr(key_rotation, "request_key_rotation", refuse_one)
    with database.session() as session:
        assert request_rotations_due(session, now=later) == (1, 1)
    with database.session() as session:
        rotations = session.exec(select(KeyRotation.cluster_id)).all()
        failures = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == AuditAction.CLUSTER_KEY_ROTATION_FAILED, AuditEvent.subject_id == broken_id
            )
        ).all()
    assert rotations == [healthy_id]
    assert [(event.outcome, event.details["error"]) for event in failures] == [("failure", "IllegalTransition")]

    monkeypatch.setattr(key_rotation, "request_key_rotation", request)
    with database.session() as session:
        # The healthy cluster's rotation is still pending (KeyRotationInProgress, skipped); the other one is asked.
        assert request_rotations_due(session, now=later) == (1, 0)
    with database.session() as session:
        assert sorted(session.exec(select(KeyRotation.cluster_id)).all()) == sorted([healthy_id, broken_id])
