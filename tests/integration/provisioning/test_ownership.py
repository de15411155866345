"""Own only what we create: the cluster's resource group, its tags and its resources, through the ARM emulator.

The controller deploys into a group it created for the cluster (or an empty one tagged for it), merges its tag
instead of replacing the customer's, and on deletion removes only the resources its deployments reported;
whatever someone else put in the group stays, with the group, and is shown to the operator.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import select

from core.audit.models import AuditEvent
from core.azure.arm import ArmClient, ArmClientFactory, ArmRequestFailed
from core.clusters.models import ClusterStatus
from core.clusters.ownership import OWNERSHIP_TAG
from core.clusters.provisioning_models import ArmDeployment
from core.clusters.service import change_desired_spec
from core.db import Database
from core.settings import Settings
from harness.cluster_report import operator_headers
from tests.conftest import start_api
from tests.integration.provisioning.conftest import Driver, create_cluster, tenant_and_subscription

READY = ClusterStatus.READY


@pytest.fixture
def arm(provisioning_settings: Settings, state: dict[str, Any]) -> ArmClient:
    """The control plane's ARM client in Contoso's subscription (the customer's own actions use it too)."""
    tenant_id, subscription_id = tenant_and_subscription(state, "contoso")
    return ArmClientFactory(provisioning_settings).for_subscription(tenant_id, subscription_id)


def _owner() -> str:
    return f"own-{uuid.uuid4().hex[:8]}"


def _add_foreign_storage_account(arm_control: httpx.Client, subscription_id: str, group: str) -> str:
    """What a customer does by hand: a storage account of their own in our group."""
    resource_id = (
        f"/subscriptions/{subscription_id}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/"
        f"custdata{uuid.uuid4().hex[:8]}"
    )
    response = arm_control.put("/resources", json={"id": resource_id, "tags": {"owner": "customer"}})
    assert response.status_code == 201, response.text
    return resource_id


def _audit(database: Database, cluster_id: str, action: str) -> list[AuditEvent]:
    with database.session() as session:
        return list(
            session.exec(select(AuditEvent).where(AuditEvent.subject_id == cluster_id, AuditEvent.action == action))
        )


def test_deployments_record_the_resources_they_created(
    database: Database, drive: Driver, state: dict[str, Any]
) -> None:
    cluster_id = create_cluster(database, state, owner=_owner())
    drive(cluster_id, lambda item: item.status == READY)
    with database.session() as session:
        rows = session.exec(select(ArmDeployment).where(ArmDeployment.cluster_id == cluster_id)).all()
    recorded = {resource_id.lower() for row in rows for resource_id in row.output_resources}
    for kind in ("virtualmachinescalesets", "privatelinkservices", "vaults", "loadbalancers", "privatednszones"):
        assert any(f"/{kind}/" in resource_id for resource_id in recorded), kind


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory, provisioning_settings: Settings) -> Iterator[str]:
    group, base_url = start_api(tmp_path_factory.mktemp("ownership-api-logs"), provisioning_settings)
    yield base_url
    group.stop_all()


def test_a_foreign_resource_added_to_our_group_survives_deletion_and_is_reported(
    database: Database,
    drive: Driver,
    state: dict[str, Any],
    arm: ArmClient,
    arm_control: httpx.Client,
    api_url: str,
) -> None:
    cluster_id = create_cluster(database, state, owner=_owner())
    cluster = drive(cluster_id, lambda item: item.status == READY)
    foreign = _add_foreign_storage_account(arm_control, arm.subscription_id, cluster.resource_group)

    with database.session() as session:
        change_desired_spec(session, cluster_id, actor="test", reason="Unsubscribe", desired_deleted=True)
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.DELETED)

    # The group stays with the customer's resource in it, and only that.
    assert arm.resource_group_exists(cluster.resource_group)
    assert [item.lower() for item in arm.list_group_resource_ids(cluster.resource_group)] == [foreign.lower()]
    assert [item.lower() for item in cluster.leftover_resource_ids] == [foreign.lower()]
    (deleted,) = _audit(database, cluster_id, "cluster.deleted")
    assert deleted.details["resource_group_kept"] is True
    assert deleted.details["alert"] == "operator"
    assert [item.lower() for item in deleted.details["leftover_resources"]] == [foreign.lower()]
    # Ours went in dependency order: the Private Link Service before the scale set, the scale set before its
    # load balancer, the network before the vault and the identity.
    batches = [event.details["resources"] for event in _audit(database, cluster_id, "cluster.delete.resources_started")]
    order = [resource_id.split("/providers/")[1].split("/")[1].lower() for batch in batches for resource_id in batch]
    assert order.index("privatelinkservices") < order.index("virtualmachinescalesets") < order.index("loadbalancers")
    assert order.index("virtualnetworks") < order.index("vaults") < order.index("userassignedidentities")
    # The operator sees what was left, in the JSON API and on the cluster's portal page.
    detail = httpx.get(f"{api_url}/api/clusters/{cluster_id}", headers=operator_headers(state), timeout=10)
    assert detail.status_code == 200, detail.text
    assert [item.lower() for item in detail.json()["leftover_resources"]] == [foreign.lower()]


def test_a_group_holding_only_our_resources_is_deleted_with_them(
    database: Database, drive: Driver, state: dict[str, Any], arm: ArmClient
) -> None:
    cluster_id = create_cluster(database, state, owner=_owner())
    cluster = drive(cluster_id, lambda item: item.status == READY)
    with database.session() as session:
        change_desired_spec(session, cluster_id, actor="test", reason="Unsubscribe", desired_deleted=True)
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.DELETED)
    assert not arm.resource_group_exists(cluster.resource_group)
    assert cluster.leftover_resource_ids == []


def test_customer_tags_survive_provisioning_plan_change_suspend_and_resume(
    database: Database, drive: Driver, state: dict[str, Any], arm: ArmClient
) -> None:
    owner = _owner()
    group = f"rg-{owner}"
    cluster_name = f"vast-{owner.replace('-', '')[:12]}"
    # The customer prepared the (empty) group for this cluster, with a tag of their own.
    assert arm.create_resource_group(group, "westeurope", {OWNERSHIP_TAG: cluster_name, "cost-center": "4711"})
    cluster_id = create_cluster(database, state, owner=owner)
    cluster = drive(cluster_id, lambda item: item.status == READY)
    assert cluster.name == cluster_name
    arm.merge_resource_group_tags(group, {"department": "research"})  # added after provisioning

    def tags() -> dict[str, str]:
        facts = arm.get_resource_group(group)
        assert facts is not None
        return facts.tags

    expected = {OWNERSHIP_TAG: cluster_name, "cost-center": "4711", "department": "research"}
    assert tags() == expected
    changes: list[dict[str, Any]] = [
        {"desired_plan_id": "performance"},
        # A key policy change deploys the first step again, the one that ensures the group.
        {"key_policy": {**cluster.key_policy, "rotation_days": 45}},
        {"desired_suspended": True},
        {"desired_suspended": False},
    ]
    for generation, change in enumerate(changes, start=2):
        with database.session() as session:
            change_desired_spec(session, cluster_id, actor="test", reason="change", **change)
        settled = ClusterStatus.SUSPENDED if change.get("desired_suspended") else READY
        drive(cluster_id, lambda item, g=generation, s=settled: item.status == s and item.observed_generation == g)
        assert tags() == expected, change


def test_a_group_taken_by_someone_else_before_the_first_step_fails_the_cluster_and_is_left_alone(
    database: Database, drive: Driver, state: dict[str, Any], arm: ArmClient, arm_control: httpx.Client
) -> None:
    owner = _owner()
    group = f"rg-{owner}"
    # Between confirmation and the first pass, another tool created the group and put a resource in it.
    assert arm.create_resource_group(group, "westeurope", {OWNERSHIP_TAG: "vast-someoneelse"})
    foreign = _add_foreign_storage_account(arm_control, arm.subscription_id, group)
    cluster_id = create_cluster(database, state, owner=owner)
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.FAILED)
    assert cluster.last_error_code == "ResourceGroupNotOwned"
    assert group in (cluster.last_error_message or "")
    facts = arm.get_resource_group(group)
    assert facts is not None
    assert facts.tags == {OWNERSHIP_TAG: "vast-someoneelse"}
    assert [item.lower() for item in arm.list_group_resource_ids(group)] == [foreign.lower()]
    assert arm.list_deployments(group) == {}


@pytest.mark.parametrize(
    ("name", "location", "code"),
    [
        ("rg-valid-name", "mars", "LocationNotAvailableForResourceGroup"),
        ("bad name!", "westeurope", "InvalidResourceGroup"),
        ("ends-with-a-period.", "westeurope", "InvalidResourceGroup"),
        ("x" * 91, "westeurope", "InvalidResourceGroup"),
    ],
)
def test_arm_refuses_an_unknown_region_and_a_bad_group_name_with_its_own_codes(
    arm: ArmClient, name: str, location: str, code: str
) -> None:
    with pytest.raises(ArmRequestFailed) as raised:
        arm.create_resource_group(name, location, {})
    assert (raised.value.status, raised.value.arm_code) == (400, code)
    if code == "LocationNotAvailableForResourceGroup":
        assert arm.get_resource_group(name) is None


def test_a_group_named_in_another_script_is_created_and_deployed_into(arm: ArmClient) -> None:
    # ARM allows letters of any script; headers naming the group are percent-encoded, never a 500.
    name = f"ресурсы-{uuid.uuid4().hex[:6]}"
    assert arm.create_resource_group(name, "westeurope", {}) is True
    template = {"$schema": "x", "contentVersion": "1.0.0.0", "resources": []}
    arm.begin_deployment(name, "empty", template, {})
    assert arm.get_deployment(name, "empty") is not None
    assert "westeurope" in arm.list_locations()
    assert "mars" not in arm.list_locations()


def test_what_a_failed_deployment_created_is_ours_and_goes_with_the_group(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    tenant_id = state["entra"]["tenants"]["contoso"]["id"]
    subscription_id = str(uuid.uuid4())
    access = {provisioning_settings.control_plane_client_id: "Contributor"}
    created = arm_control.post("/subscriptions", json={"id": subscription_id, "tenant_id": tenant_id, "access": access})
    assert created.status_code == 201, created.text
    # The scale set does not fit: the cluster step fails after creating the network and the load balancer.
    quota = {"region": "westeurope", "name": "vmssCapacity", "limit": 2}
    assert arm_control.put(f"/subscriptions/{subscription_id}/quotas", json=quota).status_code == 200
    cluster_id = create_cluster(database, state, owner=_owner(), azure_subscription_id=subscription_id)
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.FAILED)
    with database.session() as session:
        failed = session.exec(
            select(ArmDeployment).where(ArmDeployment.cluster_id == cluster_id, ArmDeployment.step == "cluster")
        ).all()
    assert any("/loadbalancers/" in item.lower() for row in failed for item in row.output_resources)

    with database.session() as session:
        change_desired_spec(session, cluster_id, actor="test", reason="Unsubscribe", desired_deleted=True)
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.DELETED)
    arm = ArmClientFactory(provisioning_settings).for_subscription(tenant_id, subscription_id)
    assert not arm.resource_group_exists(cluster.resource_group)
    assert cluster.leftover_resource_ids == []
