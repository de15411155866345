"""Drift shown to the customer and the operator: the JSON API (tenant-scoped), the portal pages and the metric."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.clusters.models import ClusterStatus
from core.db import Database
from core.settings import Settings
from harness.cluster_report import operator_headers
from tests.conftest import start_api
from tests.integration.provisioning.conftest import Driver, create_cluster
from tests.integration.provisioning.test_clusters_api import bearer
from tests.integration.provisioning.test_drift import observe, out_of_band, outputs_of

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory, provisioning_settings: Settings) -> Iterator[str]:
    group, base_url = start_api(tmp_path_factory.mktemp("drift-api-logs"), provisioning_settings)
    yield base_url
    group.stop_all()


def test_drift_is_listed_for_the_owner_and_operators_only_and_counted_by_kind(
    database: Database,
    drive: Driver,
    state: dict[str, Any],
    provisioning_settings: Settings,
    arm_control: httpx.Client,
    api_url: str,
) -> None:
    cluster_id = create_cluster(database, state, owner="drift-api")
    drive(cluster_id, lambda item: item.status == ClusterStatus.READY)
    key_id = outputs_of(database, cluster_id, "identity-keyvault")["keyResourceId"]
    out_of_band(arm_control, "disable-key", resource_id=key_id)
    assert observe(database, provisioning_settings, state, cluster_id).incidents == ["key_disabled"]
    admin = bearer(state, "contoso", "contoso-admin")
    stranger = bearer(state, "fabrikam", "fabrikam-admin")
    operator = operator_headers(state)

    with httpx.Client(base_url=api_url, timeout=10) as api:
        mine = api.get(f"/api/clusters/{cluster_id}/drift", headers=admin)
        assert mine.status_code == 200, mine.text
        [drift] = mine.json()
        assert (drift["kind"], drift["remedy"], drift["state"], drift["resource_id"]) == (
            "key_disabled",
            "incident",
            "open",
            key_id,
        )
        assert drift["expected"] == {"enabled": True}
        assert drift["observed"] == {"enabled": False}

        assert api.get(f"/api/clusters/{cluster_id}/drift", headers=stranger).status_code == 404
        assert api.get("/api/drift", headers=admin).status_code == 403
        everything = api.get("/api/drift", headers=operator)
        assert everything.status_code == 200, everything.text
        assert drift["id"] in {item["id"] for item in everything.json()}
        assert api.get("/api/drift", params={"state": "gone"}, headers=operator).status_code == 422

        metrics = api.get("/metrics", headers=operator)
        assert metrics.status_code == 200, metrics.text
        lines = [line for line in metrics.text.splitlines() if line.startswith('cp_cluster_drift{kind="key_disabled"}')]
        assert lines
        assert float(lines[0].split()[-1]) >= 1
