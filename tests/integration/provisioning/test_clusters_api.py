"""The clusters JSON API in a real API process, with Entra tokens from the emulator: scoping and actions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.azure.arm import ArmClientFactory
from core.clusters.key_rotation import perform_key_rotation
from core.clusters.models import Cluster, ClusterStatus
from core.db import Database
from core.networking.service import sync_private_endpoint_connections
from core.settings import Settings
from harness.cluster_report import operator_headers, print_cluster_outputs, wait_for_cluster
from tests.conftest import start_api
from tests.integration.provisioning.conftest import Driver, bearer, create_cluster, tenant_and_subscription

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory, provisioning_settings: Settings) -> Iterator[str]:
    group, base_url = start_api(tmp_path_factory.mktemp("clusters-api-logs"), provisioning_settings)
    yield base_url
    group.stop_all()


def test_cluster_detail_is_tenant_scoped_and_actions_are_authorized(
    database: Database,
    drive: Driver,
    state: dict[str, Any],
    provisioning_settings: Settings,
    arm_control: httpx.Client,
    api_url: str,
) -> None:
    cluster_id = create_cluster(database, state, owner="api1")
    cluster = drive(cluster_id, lambda item: item.status == ClusterStatus.READY)
    admin = bearer(state, "contoso", "contoso-admin", ["Customer.Admin"])
    stranger = bearer(state, "fabrikam", "fabrikam-admin", ["Customer.Admin"])
    operator = operator_headers(state)

    with httpx.Client(base_url=api_url, timeout=10) as api:
        detail = api.get(f"/api/clusters/{cluster_id}", headers=admin)
        assert detail.status_code == 200, detail.text
        body = detail.json()
        assert body["outputs"]["pls_alias"] == cluster.pls_alias
        assert body["outputs"]["key_id"] == cluster.key_id
        assert body["outputs"]["endpoint_fqdn"] == cluster.endpoint_fqdn
        assert [step["step"] for step in body["steps"]] == [
            "identity-keyvault",
            "cluster",
            "private-link",
            "dns",
            "diagnostics",
        ]
        assert body["observed"]["generation"] == body["desired"]["generation"] == 1

        # What the sandbox prints after a purchase comes from the same document.
        assert wait_for_cluster(api_url, cluster_id, admin)["outputs"] == body["outputs"]
        print_cluster_outputs(body)
        assert api.get(f"/api/clusters/{cluster_id}", headers=stranger).status_code == 404
        assert api.get(f"/api/clusters/{cluster_id}").status_code == 401
        assert api.get(f"/api/clusters/{cluster_id}", headers=operator).status_code == 200

        retry = api.post(f"/api/clusters/{cluster_id}/retry", json={"reason": "x"}, headers=admin)
        assert retry.status_code == 403
        retry = api.post(f"/api/clusters/{cluster_id}/retry", json={"reason": "x"}, headers=operator)
        assert retry.status_code == 409
        assert "only a failed cluster" in retry.json()["error"]["message"]

        rotation = api.post(f"/api/clusters/{cluster_id}/key-rotations", json={"reason": "audit"}, headers=admin)
        assert rotation.status_code == 202, rotation.text
        rotation_id = rotation.json()["id"]
        again = api.post(f"/api/clusters/{cluster_id}/key-rotations", json={"reason": "audit"}, headers=admin)
        assert again.status_code == 409
        assert api.post(f"/api/clusters/{cluster_id}/key-rotations", json={}, headers=admin).status_code == 422

        entra_tenant_id, subscription_id = tenant_and_subscription(state, "contoso")
        arm = ArmClientFactory(provisioning_settings).for_subscription(entra_tenant_id, subscription_id)
        with database.session() as session:
            perform_key_rotation(session, rotation_id, arm)
        done = api.get(f"/api/clusters/{cluster_id}/key-rotations/{rotation_id}", headers=admin).json()
        assert done["state"] == "completed"
        assert done["key_id_after"] == api.get(f"/api/clusters/{cluster_id}", headers=admin).json()["outputs"]["key_id"]

        created = arm_control.post(
            "/private-endpoints",
            json={
                "target": cluster.pls_alias,
                "consumer_subscription_id": "99999999-8888-7777-6666-555555555555",
                "name": "synapse-pe",
                "source_kind": "synapse-managed-vnet",
            },
        )
        assert created.status_code == 201, created.text
        with database.session() as session:
            fresh = session.get(Cluster, cluster_id)
            assert fresh is not None
            sync_private_endpoint_connections(session, fresh, arm)
        pending = api.get(f"/api/clusters/{cluster_id}/private-endpoint-connections?status=pending", headers=admin)
        assert pending.status_code == 200
        assert len(pending.json()) == 1
        connection_id = pending.json()[0]["id"]
        path = f"/api/clusters/{cluster_id}/private-endpoint-connections/{connection_id}/decision"
        assert api.post(path, json={"decision": "maybe", "reason": "x"}, headers=admin).status_code == 422
        assert api.post(path, json={"decision": "approved", "reason": "x"}, headers=stranger).status_code == 404
        decided = api.post(path, json={"decision": "approved", "reason": "our Synapse workspace"}, headers=admin)
        assert decided.status_code == 200, decided.text
        assert decided.json()["decided_by"] == "user:contoso-admin"
        assert (
            api.get(f"/api/clusters/{cluster_id}/private-endpoint-connections?status=pending", headers=admin).json()
            == []
        )
