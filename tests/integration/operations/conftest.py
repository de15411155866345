"""Fixtures of the operations tests: Azurite as a cluster's Blob endpoint, and a ready cluster row."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from core.clusters.models import Cluster, ClusterStatus
from core.db import Database
from core.settings import Settings
from core.tenants.models import Tenant
from emulators.suite import EmulatorSuite
from harness.azurite import Azurite, azurite_available
from harness.emulator_environment import settings_for_emulators


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A running Azurite for the module (skipped with a reason when tools/node is not installed)."""
    if not azurite_available():
        pytest.skip("azurite is not installed: run `npm ci` in tools/node")
    server = Azurite(tmp_path_factory.mktemp("azurite") / "azurite.log")
    server.start()
    yield server
    server.stop()


def plant_ready_cluster(database: Database, endpoint_fqdn: str, entra_tenant_id: str | None = None) -> Cluster:
    """A tenant and a ready cluster whose endpoint is `endpoint_fqdn` (committed)."""
    with database.session() as session:
        tenant = Tenant(entra_tenant_id=entra_tenant_id or str(uuid.uuid4()), display_name="Probe tenant")
        session.add(tenant)
        session.flush()
        cluster = Cluster(
            tenant_id=tenant.id,
            managed_application_id=f"/subscriptions/{uuid.uuid4()}/resourceGroups/rg/providers/"
            f"Microsoft.Solutions/applications/probe-{uuid.uuid4().hex[:6]}",
            name=f"probe-{uuid.uuid4().hex[:6]}",
            region="eastus",
            azure_subscription_id=str(uuid.uuid4()),
            resource_group="rg-probe",
            desired_plan_id="standard",
            desired_quantity=1,
            status=ClusterStatus.READY,
            observed_generation=1,
            endpoint_fqdn=endpoint_fqdn,
        )
        session.add(cluster)
        session.flush()
        return cluster


@pytest.fixture(scope="session")
def operations_settings(emulator_suite: EmulatorSuite, base_settings: Settings) -> Settings:
    """Settings pointed at Entra, Marketplace and Log Analytics emulators (database and broker as base_settings).

    The ARM entry is left out: these tests do not call ARM, and the ARM emulator's description is still
    changing under another issue (its URL key and the settings mapping disagree at the time of writing).
    """
    state = {name: facts for name, facts in emulator_suite.state().items() if name != "arm"}
    return settings_for_emulators(
        state,
        data_dir=base_settings.data_dir,
        database_url=base_settings.database_url,
        broker_url=base_settings.broker_url,
        log_format="json",
        outbox_poll_interval_seconds=0.2,
    )
