"""Drift: changes made behind our back in ARM (through the emulator's out-of-band control API) are noticed by the
observer and either repaired by re-running the step that made the resource, or raised to an operator.

The controller passes and observations here run in this process, one at a time, as a worker would run each
due message; tests/integration/provisioning/test_drift_workers.py runs the same through real worker processes.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from core.audit.models import AuditEvent
from core.azure.arm import ArmClient, ArmClientFactory
from core.clock import utc_now
from core.clusters.drift import DriftObserver, ObservationReport, current_slice, slice_of
from core.clusters.drift_models import ClusterDrift, DriftKind, DriftRemedy, DriftState
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment
from core.clusters.service import change_desired_spec
from core.db import Database
from core.messaging import TaskNames
from core.outbox.models import OutboxMessage
from core.settings import Settings
from harness.scenario import invariants
from tests.integration.provisioning.conftest import Driver, create_cluster, resource_body, tenant_and_subscription

pytestmark = pytest.mark.timeout(120)
READY = ClusterStatus.READY


def arm_client(settings: Settings, state: dict[str, Any]) -> ArmClient:
    tenant_id, subscription_id = tenant_and_subscription(state, "contoso")
    return ArmClientFactory(settings).for_subscription(tenant_id, subscription_id)


def observe(database: Database, settings: Settings, state: dict[str, Any], cluster_id: str) -> ObservationReport:
    """One observation, committed, as the worker's drift task runs it."""
    with database.session() as session:
        return DriftObserver(settings).observe(session, cluster_id, arm_client(settings, state))


def outputs_of(database: Database, cluster_id: str, step: str) -> dict[str, Any]:
    with database.session() as session:
        rows = session.exec(
            select(ArmDeployment).where(
                ArmDeployment.cluster_id == cluster_id, ArmDeployment.step == step, ArmDeployment.state == "succeeded"
            )
        ).all()
    return dict(rows[-1].outputs)


def drifts(database: Database, cluster_id: str) -> list[ClusterDrift]:
    with database.session() as session:
        return list(session.exec(select(ClusterDrift).where(ClusterDrift.cluster_id == cluster_id)).all())


def audit_actions(database: Database, cluster_id: str) -> list[str]:
    with database.session() as session:
        # In the order they were written (without ORDER BY, PostgreSQL may return rows from reused pages first).
        events = session.exec(
            select(AuditEvent).where(AuditEvent.subject_id == cluster_id).order_by(col(AuditEvent.id))
        ).all()
    return [event.action for event in events if event.action.startswith("cluster.drift.")]


def out_of_band(arm_control: httpx.Client, action: str, **body: Any) -> None:
    response = arm_control.post(f"/out-of-band/{action}", json=body)
    assert response.status_code == 200, response.text


def test_a_cluster_without_drift_records_nothing(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-none")
    drive(cluster_id, lambda item: item.status == READY)

    report = observe(database, provisioning_settings, state, cluster_id)

    assert report.observed
    assert report.detected == []
    assert report.resolved == []
    assert drifts(database, cluster_id) == []


def test_a_deleted_scale_set_is_detected_and_re_deployed_by_its_step(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-vmss")
    drive(cluster_id, lambda item: item.status == READY)
    scale_set_id = outputs_of(database, cluster_id, "cluster")["scaleSetResourceId"]

    out_of_band(arm_control, "delete", resource_id=scale_set_id)
    report = observe(database, provisioning_settings, state, cluster_id)

    assert report.detected == [DriftKind.RESOURCE_DELETED.value]
    assert report.repairs_requested == [DriftKind.RESOURCE_DELETED.value]
    [drift] = drifts(database, cluster_id)
    assert (drift.kind, drift.resource_id, drift.step, drift.remedy, drift.state) == (
        "resource_deleted",
        scale_set_id,
        "cluster",
        "repair",
        "open",
    )
    # The controller re-runs the cluster step (a new deployment), then the cluster is ready again.
    drive(cluster_id, lambda item: item.status == ClusterStatus.UPDATING)
    drive(cluster_id, lambda item: item.status == READY)
    _, subscription_id = tenant_and_subscription(state, "contoso")
    sets = resource_body(arm_control, subscription_id, "Microsoft.Compute/virtualMachineScaleSets")
    assert scale_set_id.lower() in {item["id"].lower() for item in sets}

    report = observe(database, provisioning_settings, state, cluster_id)
    assert report.resolved == [DriftKind.RESOURCE_DELETED.value]
    [drift] = drifts(database, cluster_id)
    assert drift.state == DriftState.RESOLVED
    assert audit_actions(database, cluster_id) == ["cluster.drift.detected", "cluster.drift.resolved"]
    with database.session() as session:
        cluster = session.get(Cluster, cluster_id)
        assert cluster is not None
        # A repair is no new generation: Marketplace hears nothing, the spec did not change.
        assert cluster.observed_generation == cluster.desired_generation == 1


def test_a_deleted_private_link_service_is_re_deployed_with_its_new_alias_recorded(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-pls")
    cluster = drive(cluster_id, lambda item: item.status == READY)
    service_id = outputs_of(database, cluster_id, "private-link")["privateLinkServiceResourceId"]
    alias_before = cluster.pls_alias

    out_of_band(arm_control, "delete", resource_id=service_id)
    report = observe(database, provisioning_settings, state, cluster_id)
    assert report.detected == [DriftKind.RESOURCE_DELETED.value]

    drive(cluster_id, lambda item: item.status == ClusterStatus.UPDATING)
    cluster = drive(cluster_id, lambda item: item.status == READY)
    assert observe(database, provisioning_settings, state, cluster_id).resolved == ["resource_deleted"]
    # Azure gives a re-created service a new alias; consumers must be told, so the cluster shows the new one.
    assert cluster.pls_alias
    assert cluster.pls_alias != alias_before


def test_a_deleted_key_is_raised_to_an_operator_and_nothing_is_re_deployed(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-key")
    drive(cluster_id, lambda item: item.status == READY)
    key_id = outputs_of(database, cluster_id, "identity-keyvault")["keyResourceId"]
    with database.session() as session:
        deployments_before = len(
            session.exec(select(ArmDeployment).where(ArmDeployment.cluster_id == cluster_id)).all()
        )

    out_of_band(arm_control, "delete", resource_id=key_id)
    report = observe(database, provisioning_settings, state, cluster_id)

    assert report.detected == [DriftKind.KEY_DELETED.value]
    assert report.incidents == [DriftKind.KEY_DELETED.value]
    assert report.repairs_requested == []
    [drift] = drifts(database, cluster_id)
    assert (drift.kind, drift.remedy, drift.state) == ("key_deleted", DriftRemedy.INCIDENT.value, "open")
    drive(cluster_id, lambda item: item.status == READY)
    with database.session() as session:
        deployments_after = len(session.exec(select(ArmDeployment).where(ArmDeployment.cluster_id == cluster_id)).all())
        incident = session.exec(
            select(AuditEvent).where(AuditEvent.subject_id == cluster_id, AuditEvent.action == "cluster.drift.incident")
        ).one()
    assert deployments_after == deployments_before
    assert incident.details["alert"] == "operator"
    assert incident.details["kind"] == "key_deleted"
    # Seen again: still one open drift, no second incident.
    assert observe(database, provisioning_settings, state, cluster_id).detected == []
    assert len(drifts(database, cluster_id)) == 1


def test_changed_capacity_sku_and_pls_lists_are_put_back(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-change", auto_approval=[])
    drive(cluster_id, lambda item: item.status == READY)
    scale_set_id = outputs_of(database, cluster_id, "cluster")["scaleSetResourceId"]
    service_id = outputs_of(database, cluster_id, "private-link")["privateLinkServiceResourceId"]
    intruder = "00000000-0000-0000-0000-0000000000aa"

    out_of_band(arm_control, "scale-set", resource_id=scale_set_id, capacity=9, sku_name="Standard_D2s_v5")
    out_of_band(
        arm_control,
        "private-link-service",
        resource_id=service_id,
        visibility_subscriptions=[intruder],
        auto_approval_subscriptions=[intruder],
    )
    report = observe(database, provisioning_settings, state, cluster_id)
    assert sorted(report.detected) == sorted(
        ["scale_set_capacity_changed", "scale_set_sku_changed", "pls_visibility_changed", "pls_auto_approval_changed"]
    )
    by_kind = {item.kind: item for item in drifts(database, cluster_id)}
    assert by_kind["scale_set_capacity_changed"].expected == {"capacity": 3}
    assert by_kind["scale_set_capacity_changed"].observed == {"capacity": 9}
    assert by_kind["pls_auto_approval_changed"].observed == {"subscriptions": [intruder]}

    drive(cluster_id, lambda item: item.status == ClusterStatus.UPDATING)
    drive(cluster_id, lambda item: item.status == READY)
    report = observe(database, provisioning_settings, state, cluster_id)
    assert sorted(report.resolved) == sorted(by_kind)
    _, subscription_id = tenant_and_subscription(state, "contoso")
    [scale_set] = [
        item
        for item in resource_body(arm_control, subscription_id, "Microsoft.Compute/virtualMachineScaleSets")
        if item["id"].lower() == scale_set_id.lower()
    ]
    assert scale_set["sku"]["capacity"] == 3
    assert scale_set["sku"]["name"] != "Standard_D2s_v5"


def test_a_removed_role_assignment_is_granted_again_and_a_disabled_key_is_an_incident(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-role")
    drive(cluster_id, lambda item: item.status == READY)
    outputs = outputs_of(database, cluster_id, "identity-keyvault")
    _, subscription_id = tenant_and_subscription(state, "contoso")
    assignments = [
        item
        for item in resource_body(arm_control, subscription_id, "Microsoft.Authorization/roleAssignments")
        if item["properties"]["principalId"] == outputs["identityPrincipalId"]
    ]
    assert len(assignments) == 1

    out_of_band(arm_control, "delete", resource_id=assignments[0]["id"])
    out_of_band(arm_control, "disable-key", resource_id=outputs["keyResourceId"])
    report = observe(database, provisioning_settings, state, cluster_id)
    assert sorted(report.detected) == ["key_disabled", "role_assignment_removed"]
    assert report.incidents == ["key_disabled"]
    assert report.repairs_requested == ["role_assignment_removed"]

    drive(cluster_id, lambda item: item.status == ClusterStatus.UPDATING)
    drive(cluster_id, lambda item: item.status == READY)
    report = observe(database, provisioning_settings, state, cluster_id)
    assert report.resolved == ["role_assignment_removed"]
    open_kinds = [item.kind for item in drifts(database, cluster_id) if item.state == "open"]
    assert open_kinds == ["key_disabled"]


def test_a_suspended_cluster_is_repaired_and_stays_suspended(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-susp")
    drive(cluster_id, lambda item: item.status == READY)
    with database.session() as session:
        change_desired_spec(session, cluster_id, actor="test", reason="Suspend", desired_suspended=True)
    drive(cluster_id, lambda item: item.status == ClusterStatus.SUSPENDED)
    scale_set_id = outputs_of(database, cluster_id, "cluster")["scaleSetResourceId"]

    out_of_band(arm_control, "delete", resource_id=scale_set_id)
    assert observe(database, provisioning_settings, state, cluster_id).detected == ["resource_deleted"]
    drive(cluster_id, lambda item: item.status == ClusterStatus.RESUMING)
    drive(cluster_id, lambda item: item.status == ClusterStatus.SUSPENDED)

    assert observe(database, provisioning_settings, state, cluster_id).resolved == ["resource_deleted"]
    _, subscription_id = tenant_and_subscription(state, "contoso")
    tenant_id = state["entra"]["tenants"]["contoso"]["id"]
    arm = ArmClientFactory(provisioning_settings).for_subscription(tenant_id, subscription_id)
    with database.session() as session:
        cluster = session.get(Cluster, cluster_id)
        assert cluster is not None
        assert arm.scale_set_power_state(cluster.resource_group, scale_set_id.rsplit("/", 1)[-1]) == "deallocated"


def test_a_converging_cluster_is_not_observed(
    database: Database, state: dict[str, Any], provisioning_settings: Settings
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-pending")

    report = observe(database, provisioning_settings, state, cluster_id)

    assert not report.observed
    assert report.skipped_because == "status pending"


def test_every_cluster_has_exactly_one_turn_per_interval() -> None:
    interval, slices = 900.0, 15
    start = utc_now().replace(minute=0, second=0, microsecond=0)
    ticks = [start.timestamp() + turn * interval / slices for turn in range(slices)]
    turns = [current_slice(start.fromtimestamp(tick, start.tzinfo), interval, slices) for tick in ticks]
    assert sorted(turns) == list(range(slices))
    for cluster_id in ("a", "b", "6f1c0e4e-8f7e-4f0e-9d53-3b7d4c0f2a11"):
        assert turns.count(slice_of(cluster_id, slices)) == 1


def test_a_drift_that_comes_back_after_its_repairs_is_handed_to_an_operator(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    # Something (a policy, a script) keeps scaling the set back: after the allowed repairs, a person decides.
    settings = provisioning_settings.model_copy(update={"drift_repair_attempts": 2})
    cluster_id = create_cluster(database, state, owner="drift-again")
    drive(cluster_id, lambda item: item.status == READY)
    scale_set_id = outputs_of(database, cluster_id, "cluster")["scaleSetResourceId"]

    for attempt in (1, 2):
        out_of_band(arm_control, "scale-set", resource_id=scale_set_id, capacity=1)
        report = observe(database, settings, state, cluster_id)
        assert report.repairs_requested == ["scale_set_capacity_changed"]
        [drift] = drifts(database, cluster_id)
        assert drift.repair_attempts == attempt
        drive(cluster_id, lambda item: item.status == ClusterStatus.UPDATING)
        drive(cluster_id, lambda item: item.status == READY)
    out_of_band(arm_control, "scale-set", resource_id=scale_set_id, capacity=1)
    report = observe(database, settings, state, cluster_id)

    assert report.repairs_requested == []
    assert report.incidents == ["scale_set_capacity_changed"]
    [drift] = drifts(database, cluster_id)
    assert (drift.remedy, drift.state, drift.repair_attempts) == ("incident", "open", 2)
    assert audit_actions(database, cluster_id)[-1] == "cluster.drift.incident"
    # No further repair: the controller finds nothing to deploy.
    assert drive(cluster_id, lambda item: item.status == READY).current_step is None


def test_the_scenario_invariant_names_a_missing_resource_and_a_foreign_one_that_is_gone(
    database: Database, drive: Driver, state: dict[str, Any], arm_control: httpx.Client
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-inv")
    cluster = drive(cluster_id, lambda item: item.status == READY)
    scale_set_id = outputs_of(database, cluster_id, "cluster")["scaleSetResourceId"]
    foreign_id = scale_set_id.split("/providers/")[0] + "/providers/Microsoft.Storage/storageAccounts/customerdata"
    planted = arm_control.post("/out-of-band/put", json={"resource_id": foreign_id, "body": {"location": "westeurope"}})
    assert planted.status_code == 200, planted.text

    def problems(planted_ids: list[str]) -> list[str]:
        resources = arm_control.get("/resources").raise_for_status().json()
        result = invariants.customer_resources_untouched_and_clusters_whole(database, resources, planted_ids)
        # Other tests' clusters share this database (some with a key deleted on purpose): look at ours only.
        return [item for item in result.problems if cluster.name in item or "customer resource" in item]

    assert problems([foreign_id]) == []
    out_of_band(arm_control, "delete", resource_id=scale_set_id)
    out_of_band(arm_control, "delete", resource_id=foreign_id)
    assert problems([foreign_id]) == [
        f"customer resource {foreign_id} is gone",
        f"cluster {cluster.name} (ready): {scale_set_id} is missing",
    ]


def test_a_repair_whose_reconcile_message_was_lost_is_asked_for_again_at_the_next_observation(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-lost")
    drive(cluster_id, lambda item: item.status == READY)
    scale_set_id = outputs_of(database, cluster_id, "cluster")["scaleSetResourceId"]

    def reconcile_messages() -> int:
        with database.session() as session:
            rows = session.exec(select(OutboxMessage).where(OutboxMessage.task_name == TaskNames.CLUSTER_RECONCILE))
            return sum(1 for row in rows if row.arguments == {"cluster_id": cluster_id})

    out_of_band(arm_control, "delete", resource_id=scale_set_id)
    before = reconcile_messages()
    assert observe(database, provisioning_settings, state, cluster_id).repairs_requested == ["resource_deleted"]
    assert reconcile_messages() == before + 1
    # That message is lost (no pass runs); the cluster is at rest, so only the observer can notice.
    report = observe(database, provisioning_settings, state, cluster_id)
    assert report.detected == []
    assert reconcile_messages() == before + 2
    [drift] = drifts(database, cluster_id)
    assert drift.repair_attempts == 1  # the same repair, asked for again; not a new attempt
    drive(cluster_id, lambda item: item.status == ClusterStatus.UPDATING)
    drive(cluster_id, lambda item: item.status == READY)
    assert observe(database, provisioning_settings, state, cluster_id).resolved == ["resource_deleted"]


def test_the_out_of_band_api_refuses_what_it_cannot_do_with_a_clear_status(
    database: Database, drive: Driver, state: dict[str, Any], arm_control: httpx.Client
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-oob")
    drive(cluster_id, lambda item: item.status == READY)
    service_id = outputs_of(database, cluster_id, "private-link")["privateLinkServiceResourceId"]
    missing = service_id + "-missing"

    assert arm_control.post("/out-of-band/put", json={"resource_id": "not an id"}).status_code == 400
    assert arm_control.post("/out-of-band/delete", json={"resource_id": missing}).status_code == 404
    wrong_type = arm_control.post("/out-of-band/scale-set", json={"resource_id": service_id, "capacity": 1})
    assert wrong_type.status_code == 400
    assert arm_control.post("/out-of-band/disable-key", json={"resource_id": service_id}).status_code == 400
    assert arm_control.post("/out-of-band/delete", json={"resource_id": service_id, "extra": 1}).status_code == 422
