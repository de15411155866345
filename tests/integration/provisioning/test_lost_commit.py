"""A pass whose transaction is lost after its ARM PUT (a crash before commit) must not make ARM deploy again.

The next pass learns from ARM that the deployment exists (a GET for the first step, the pass's list of the
resource group for later ones) and adopts it. ARM gives every PUT a new correlation id, so an unchanged one
proves the deployment was submitted once.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
from azure.identity import ClientSecretCredential
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.deployments.models import DeploymentPropertiesExtended
from sqlmodel import select

from core.clusters.controller import ClusterController, deployment_name_for
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment
from core.db import Database
from core.settings import Settings
from tests.integration.provisioning.conftest import Driver, create_cluster, tenant_and_subscription
from tests.integration.provisioning.test_controller import arm_deployment_names

pytestmark = pytest.mark.timeout(60)
STEPS = ("identity-keyvault", "cluster", "private-link", "dns", "diagnostics")


class LostCommit(Exception):
    """Raised inside the unit of work so that it rolls back, as a worker killed before its commit would."""


def _deployments_client(settings: Settings, state: dict[str, Any]) -> DeploymentsMgmtClient:
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
    return DeploymentsMgmtClient(
        credential,
        subscription_id,
        base_url=settings.arm_endpoint,
        credential_scopes=[settings.arm_credential_scope],
        connection_verify=settings.tls_verify,
    )


def _pass_with_lost_commit(database: Database, controller: ClusterController, cluster_id: str) -> None:
    with contextlib.suppress(LostCommit), database.session() as session:
        controller.reconcile(session, cluster_id)
        raise LostCommit


def _properties(client: DeploymentsMgmtClient, group: str, name: str) -> DeploymentPropertiesExtended:
    properties = client.deployments.get(group, name).properties
    assert properties is not None
    return properties


def _wait_until_finished(client: DeploymentsMgmtClient, group: str, name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        provisioning_state = _properties(client, group, name).provisioning_state
        # SDK enums print their member name; the wire value is what ARM sent.
        state = str(getattr(provisioning_state, "value", provisioning_state))
        if state in ("Succeeded", "Failed", "Canceled"):
            return
        time.sleep(0.05)
    raise AssertionError(f"deployment {name} did not finish")


def test_a_put_whose_commit_is_lost_is_adopted_not_deployed_again(
    database: Database,
    state: dict[str, Any],
    controller: ClusterController,
    drive: Driver,
    provisioning_settings: Settings,
) -> None:
    cluster_id = create_cluster(database, state, owner="lostput1")
    with database.session() as session:
        cluster = session.get(Cluster, cluster_id)
        assert cluster is not None
        name, group = cluster.name, cluster.resource_group
    client = _deployments_client(provisioning_settings, state)

    # First step: the pass PUTs, then its transaction is lost; ARM holds a deployment the database does not know.
    _pass_with_lost_commit(database, controller, cluster_id)
    first = deployment_name_for(name, "identity-keyvault", 1, 1)
    first_correlation = _properties(client, group, first).correlation_id
    _wait_until_finished(client, group, first)
    # The next pass adopts it, and once it has finished a later pass settles it and starts the cluster step.
    drive(cluster_id, lambda item: item.current_step == "cluster")

    # A later step, chosen from the pass's list of the group: lose that pass's commit after its PUT too.
    second = deployment_name_for(name, "private-link", 1, 1)
    _wait_until_finished(client, group, deployment_name_for(name, "cluster", 1, 1))
    _pass_with_lost_commit(database, controller, cluster_id)
    second_correlation = _properties(client, group, second).correlation_id
    with database.session() as session:
        lost = session.exec(select(ArmDeployment).where(ArmDeployment.deployment_name == second)).first()
    assert lost is None
    _wait_until_finished(client, group, second)

    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.READY)

    with database.session() as session:
        rows = session.exec(select(ArmDeployment).where(ArmDeployment.cluster_id == cluster_id)).all()
    assert sorted((row.step, row.generation, row.attempt) for row in rows) == sorted((step, 1, 1) for step in STEPS)
    assert sorted(row.deployment_name for row in rows) == arm_deployment_names(
        provisioning_settings, state, "contoso", cluster.resource_group
    )
    assert _properties(client, group, first).correlation_id == first_correlation
    assert _properties(client, group, second).correlation_id == second_correlation
