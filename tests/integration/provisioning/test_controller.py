"""The provisioning controller against the ARM emulator over HTTPS, through the official SDKs.

Each pass is what a worker runs for one due outbox message; the tests run passes until the cluster settles.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from azure.identity import ClientSecretCredential
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from sqlmodel import select

from core.azure.arm import ArmClientFactory
from core.clusters.key_rotation import perform_key_rotation, request_key_rotation
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment, DeploymentState
from core.clusters.service import change_desired_spec
from core.db import Database
from core.identity.principal import Principal
from core.messaging import TaskNames
from core.networking.models import ConnectionStatus
from core.networking.service import decide_connection, list_connections, sync_private_endpoint_connections
from core.outbox.models import OutboxMessage
from core.settings import Settings
from tests.integration.provisioning.conftest import Driver, create_cluster, resource_body, tenant_and_subscription

pytestmark = pytest.mark.timeout(90)
READY = ClusterStatus.READY


def arm_deployment_names(settings: Settings, state: dict[str, Any], tenant_key: str, group: str) -> list[str]:
    """Deployment names ARM holds in the resource group, read with the SDK as the control-plane app."""
    tenant_id, subscription_id = tenant_and_subscription(state, tenant_key)
    assert settings.control_plane_client_id
    assert settings.control_plane_client_secret
    credential = ClientSecretCredential(
        tenant_id,
        settings.control_plane_client_id,
        settings.control_plane_client_secret.get_secret_value(),
        authority=settings.entra_authority_host,
        disable_instance_discovery=True,
        connection_verify=settings.tls_verify,
    )
    client = DeploymentsMgmtClient(
        credential,
        subscription_id,
        base_url=settings.arm_endpoint,
        credential_scopes=[settings.arm_credential_scope],
        connection_verify=settings.tls_verify,
    )
    return sorted(str(item.name) for item in client.deployments.list_by_resource_group(group))


def keyvault_client(settings: Settings, state: dict[str, Any]) -> KeyVaultManagementClient:
    """The Key Vault management SDK in the contoso subscription, as the control-plane app."""
    tenant_id, subscription_id = tenant_and_subscription(state, "contoso")
    assert settings.control_plane_client_id
    assert settings.control_plane_client_secret
    credential = ClientSecretCredential(
        tenant_id,
        settings.control_plane_client_id,
        settings.control_plane_client_secret.get_secret_value(),
        authority=settings.entra_authority_host,
        disable_instance_discovery=True,
        connection_verify=settings.tls_verify,
    )
    return KeyVaultManagementClient(
        credential,
        subscription_id,
        base_url=settings.arm_endpoint,
        credential_scopes=[settings.arm_credential_scope],
        connection_verify=settings.tls_verify,
    )


def test_provisions_to_ready_with_outputs_from_arm_and_one_deployment_per_step(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    cluster_id = create_cluster(database, state, owner="full1")
    cluster = drive(cluster_id, lambda item: item.status == READY)

    _, subscription_id = tenant_and_subscription(state, "contoso")
    services = resource_body(arm_control, subscription_id, "Microsoft.Network/privateLinkServices")
    aliases = {item["properties"]["alias"] for item in services}
    assert cluster.pls_alias in aliases
    assert cluster.endpoint_fqdn == f"{cluster.name}.blob.facade.internal"
    assert cluster.key_id
    assert "/keys/facade-cmk/" in cluster.key_id
    assert cluster.identity_id
    assert cluster.identity_id.endswith(f"/userAssignedIdentities/id-{cluster.name}")
    assert cluster.observed_generation == cluster.desired_generation == 1

    names = arm_deployment_names(provisioning_settings, state, "contoso", cluster.resource_group)
    steps = ["cluster", "diagnostics", "dns", "identity-keyvault", "private-link"]
    assert names == sorted(f"{cluster.name}-{step}-g1" for step in steps)
    with database.session() as session:
        converged = session.exec(select(OutboxMessage).where(OutboxMessage.task_name == TaskNames.CLUSTER_CONVERGED))
        announcements = [item.arguments for item in converged if item.arguments["cluster_id"] == cluster_id]
    assert announcements == [{"cluster_id": cluster_id, "generation": 1, "outcome": "converged", "reason": None}]


def test_scale_suspend_reinstate_rotate_and_unsubscribe(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    cluster_id = create_cluster(database, state, owner="life1")
    cluster = drive(cluster_id, lambda item: item.status == READY)
    first_ready = cluster.first_ready_at
    assert first_ready is not None
    _, subscription_id = tenant_and_subscription(state, "contoso")

    def scale_set() -> dict[str, Any]:
        sets = resource_body(arm_control, subscription_id, "Microsoft.Compute/virtualMachineScaleSets")
        return next(item for item in sets if item["name"] == f"vmss-{cluster.name}" or cluster.name in item["name"])

    assert scale_set()["sku"]["capacity"] == 3
    with database.session() as session:
        change_desired_spec(session, cluster_id, actor="test", reason="ChangeQuantity", desired_quantity=2)
    cluster = drive(cluster_id, lambda item: item.status == READY and item.observed_generation == 2)
    assert cluster.observed_quantity == 2
    assert scale_set()["sku"]["capacity"] == 6

    with database.session() as session:
        change_desired_spec(session, cluster_id, actor="test", reason="Suspend", desired_suspended=True)
    drive(cluster_id, lambda item: item.status == ClusterStatus.SUSPENDED)
    with database.session() as session:
        change_desired_spec(session, cluster_id, actor="test", reason="Reinstate", desired_suspended=False)
    cluster = drive(cluster_id, lambda item: item.status == READY and item.observed_generation == 4)
    # Billing counts from the first time the cluster served: scaling and resuming do not move it.
    assert cluster.first_ready_at == first_ready

    key_before = cluster.key_id
    with database.session() as session:
        rotation = request_key_rotation(session, cluster, actor="user:admin", reason="on demand")
    arm = ArmClientFactory(provisioning_settings).for_subscription(
        tenant_and_subscription(state, "contoso")[0], subscription_id
    )
    with database.session() as session:
        done = perform_key_rotation(session, rotation.id, arm)
    assert done.state == "completed"
    assert done.key_id_after
    assert done.key_id_after != key_before
    assert done.key_id_after.rsplit("/", 1)[0] == key_before.rsplit("/", 1)[0]  # type: ignore[union-attr]

    with database.session() as session:
        change_desired_spec(session, cluster_id, actor="test", reason="Unsubscribe", desired_deleted=True)
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.DELETED)
    vaults = resource_body(arm_control, subscription_id, "Microsoft.KeyVault/vaults")
    assert not any(cluster.name in str(item.get("id", "")) for item in vaults)
    # The vault went to soft delete with the resource group; it is never purged early.
    deleted = keyvault_client(provisioning_settings, state).vaults.list_deleted()
    assert any(
        str(item.properties.vault_id)
        .lower()
        .endswith(
            f"/resourcegroups/{cluster.resource_group.lower()}/providers/microsoft.keyvault/vaults/{str(item.name).lower()}"
        )
        for item in deleted
    )


def test_private_endpoints_auto_approved_by_policy_and_pending_until_a_person_approves(
    database: Database, drive: Driver, state: dict[str, Any], provisioning_settings: Settings, arm_control: httpx.Client
) -> None:
    trusted = "11111111-2222-3333-4444-555555555555"
    other = "99999999-8888-7777-6666-555555555555"
    cluster_id = create_cluster(database, state, owner="pe1", auto_approval=[trusted])
    cluster = drive(cluster_id, lambda item: item.status == READY)
    for name, subscription in (("pe-trusted", trusted), ("pe-other", other)):
        response = arm_control.post(
            "/private-endpoints",
            json={"target": cluster.pls_alias, "consumer_subscription_id": subscription, "name": name},
        )
        assert response.status_code == 201, response.text

    entra_tenant_id, subscription_id = tenant_and_subscription(state, "contoso")
    arm = ArmClientFactory(provisioning_settings).for_subscription(entra_tenant_id, subscription_id)
    with database.session() as session:
        assert sync_private_endpoint_connections(session, cluster, arm) == 2
    admin = Principal(entra_tenant_id=entra_tenant_id, object_id="admin-oid")
    with database.session() as session:
        rows = {row.connection_name.split(".")[0]: row for row in list_connections(session, admin, cluster_id)}
    assert rows["pe-trusted"].status == ConnectionStatus.APPROVED
    assert rows["pe-trusted"].decided_by == "policy:auto-approval-subscriptions"
    assert rows["pe-other"].status == ConnectionStatus.PENDING

    stranger = Principal(entra_tenant_id=tenant_and_subscription(state, "fabrikam")[0], object_id="x")
    with database.session() as session, pytest.raises(Exception, match="cluster not found"):
        list_connections(session, stranger, cluster_id)

    with database.session() as session:
        decide_connection(session, admin, cluster_id, rows["pe-other"].id, ConnectionStatus.APPROVED, "our Synapse")
    with database.session() as session:
        sync_private_endpoint_connections(session, cluster, arm)
    connections = {
        item.name.split(".")[0]: item
        for item in arm.list_endpoint_connections(cluster.resource_group, f"pls-{cluster.name}")
    }
    assert connections["pe-other"].status == "Approved"
    with database.session() as session:
        decided = list_connections(session, admin, cluster_id, ConnectionStatus.APPROVED)
    assert {row.decided_by for row in decided} == {"policy:auto-approval-subscriptions", "user:admin-oid"}


def test_missing_role_fails_with_an_actionable_message(
    database: Database, drive: Driver, state: dict[str, Any]
) -> None:
    # Fabrikam never consented to the control-plane app: no role on its subscription.
    cluster_id = create_cluster(database, state, owner="norole1", tenant_key="fabrikam")
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.FAILED)
    assert cluster.last_error_code == "ArmAccessDenied"
    assert "grant it the Contributor role" in (cluster.last_error_message or "")


def test_throttling_storm_and_server_errors_are_retried_to_ready(
    database: Database, drive: Driver, state: dict[str, Any], arm_control: httpx.Client
) -> None:
    rules = [
        {"kind": "status", "status": 429, "retry_after_seconds": 0, "count": 4, "path_pattern": "deployments"},
        {"kind": "status", "status": 500, "count": 2, "path_pattern": "resourcegroups"},
    ]
    for rule in rules:
        assert arm_control.post("/faults", json=rule).status_code == 201
    try:
        cluster_id = create_cluster(database, state, owner="storm1")
        cluster = drive(cluster_id, lambda item: item.status == READY)
        hits = {rule["status"]: rule["hits"] for rule in arm_control.get("/faults").json()}
    finally:
        arm_control.delete("/faults")
    # Every injected fault was met and absorbed by the SDK's retries: no failed attempt, nothing deployed twice.
    assert hits == {429: 4, 500: 2}
    assert cluster.observed_generation == 1
    assert cluster.attempts == 0
    with database.session() as session:
        rows = session.exec(select(ArmDeployment).where(ArmDeployment.cluster_id == cluster_id)).all()
    assert sorted(row.attempt for row in rows) == [1, 1, 1, 1, 1]


def test_conflicting_changes_in_quick_succession_converge_on_the_newest(
    database: Database, drive: Driver, state: dict[str, Any]
) -> None:
    cluster_id = create_cluster(database, state, owner="race1")
    drive(cluster_id, lambda item: item.status == READY)
    with database.session() as session:
        change_desired_spec(session, cluster_id, actor="test", reason="ChangeQuantity", desired_quantity=3)
    drive(cluster_id, lambda item: item.current_step == "cluster")  # generation 2 is deploying
    with database.session() as session:
        change_desired_spec(session, cluster_id, actor="test", reason="ChangeQuantity", desired_quantity=2)
    cluster = drive(cluster_id, lambda item: item.status == READY and item.observed_generation == 3)
    assert cluster.observed_quantity == 2
    with database.session() as session:
        rows = session.exec(select(ArmDeployment).where(ArmDeployment.cluster_id == cluster_id)).all()
    cluster_steps = sorted((row.generation, row.state) for row in rows if row.step == "cluster")
    assert cluster_steps == [(1, DeploymentState.SUCCEEDED), (2, "succeeded"), (3, "succeeded")]
    assert len({row.deployment_name for row in rows}) == len(rows)
    assert isinstance(cluster, Cluster)


def test_resource_group_put_says_whether_it_created_the_group(
    state: dict[str, Any], provisioning_settings: Settings
) -> None:
    # The first step skips looking for an adoptable deployment only in a group its own PUT created.
    entra_tenant_id, subscription_id = tenant_and_subscription(state, "contoso")
    arm = ArmClientFactory(provisioning_settings).for_subscription(entra_tenant_id, subscription_id)
    name = f"rg-created-{uuid.uuid4().hex[:8]}"
    assert arm.create_resource_group(name, "westeurope", {}) is True
    assert arm.create_resource_group(name, "westeurope", {"again": "yes"}) is False
    assert arm.resource_group_exists(name)
