"""An ARM-focused emulator suite (fast deployments), settings pointed at it, and a controller driver."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from core.azure.arm import ArmClientFactory
from core.clusters.controller import ClusterController
from core.clusters.models import Cluster
from core.clusters.schemas import ClusterPlacement, KeyPolicy, PrivateLinkPolicy
from core.clusters.service import request_cluster
from core.db import Database
from core.managed_apps.observation import built_by_managed_application
from core.settings import DEFAULT_CATALOG_PATH, Settings
from core.tenants.service import get_or_create_tenant
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig, build_default_suite
from harness.emulator_environment import settings_for_emulators

ARM_DEPLOYMENT_SECONDS = 0.15


@pytest.fixture(scope="session")
def arm_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorSuite]:
    """Entra + Marketplace + ARM with short deployments, shared by the provisioning tests."""
    suite = build_default_suite(
        EmulatorSuiteConfig(
            state_dir=tmp_path_factory.mktemp("arm-emulators"),
            seed=5,
            catalog_path=DEFAULT_CATALOG_PATH,
            arm_deployment_seconds=ARM_DEPLOYMENT_SECONDS,
        )
    )
    suite.start()
    yield suite
    suite.stop()


@pytest.fixture(scope="session")
def arm_state(arm_suite: EmulatorSuite) -> dict[str, Any]:
    """What the suite wrote to emulators.json: URLs, CA bundle, tenants, subscriptions, app credentials."""
    return arm_suite.state()


@pytest.fixture(scope="session")
def provisioning_settings(arm_state: dict[str, Any], base_settings: Settings) -> Settings:
    return settings_for_emulators(
        arm_state,
        data_dir=base_settings.data_dir,
        database_url=base_settings.database_url,
        broker_url=base_settings.broker_url,
        provisioning_poll_interval_seconds=0.2,
        provisioning_retry_backoff_seconds=0.2,
        provisioning_retry_budget=3,
        arm_retry_total=3,
        arm_retry_backoff_seconds=0.1,
        cluster_retention_days=0,
    )


@pytest.fixture
def controller(provisioning_settings: Settings) -> ClusterController:
    return ClusterController(
        provisioning_settings, ArmClientFactory(provisioning_settings), built_elsewhere=built_by_managed_application
    )


@pytest.fixture(scope="session")
def arm_control(arm_state: dict[str, Any]) -> Iterator[httpx.Client]:
    """The ARM emulator's control API (/_emulator)."""
    with httpx.Client(base_url=arm_state["arm"]["control_url"], verify=arm_state["ca_bundle"], timeout=10) as client:
        yield client


def tenant_and_subscription(state: dict[str, Any], tenant_key: str) -> tuple[str, str]:
    """An emulated customer tenant id and its Azure subscription id."""
    tenant_id = state["entra"]["tenants"][tenant_key]["id"]
    subscription = next(item for item in state["arm"]["subscriptions"] if item["tenant_id"] == tenant_id)
    return tenant_id, subscription["id"]


def bearer(state: dict[str, Any], tenant_key: str, object_id: str, roles: list[str] | None = None) -> dict[str, str]:
    """A v2 token for the control-plane app, as a user of `tenant_key` would get one."""
    entra = state["entra"]
    client_id = entra["apps"]["control-plane"]["client_id"]
    response = httpx.post(
        f"{entra['control_url']}/tokens",
        json={
            "tenant_id": entra["tenants"][tenant_key]["id"],
            "audience": client_id,
            "client_id": client_id,
            "extra_claims": {
                "idtyp": "user",
                "scp": "user_impersonation",
                "oid": object_id,
                "roles": roles or [],
                "name": object_id,
            },
        },
        verify=state["ca_bundle"],
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def create_cluster(
    database: Database,
    state: dict[str, Any],
    *,
    owner: str,
    tenant_key: str = "contoso",
    quantity: int = 1,
    auto_approval: list[str] | None = None,
    visibility: list[str] | None = None,
    azure_subscription_id: str | None = None,
) -> str:
    """A cluster row with its first desired spec, as the subscription side creates it."""
    entra_tenant_id, default_subscription_id = tenant_and_subscription(state, tenant_key)
    subscription_id = azure_subscription_id or default_subscription_id
    with database.session() as session:
        tenant = get_or_create_tenant(session, entra_tenant_id)
        cluster = request_cluster(
            session,
            tenant_id=tenant.id,
            subscription_id=None,
            managed_application_id=owner,
            plan_id="standard",
            quantity=quantity,
            placement=ClusterPlacement(
                azure_subscription_id=subscription_id, resource_group=f"rg-{owner}", region="westeurope"
            ),
            private_link=PrivateLinkPolicy(
                visibility_subscriptions=visibility or ["*"], auto_approval_subscriptions=auto_approval or []
            ),
            key_policy=KeyPolicy(),
            actor="test",
        )
        return cluster.id


Driver = Callable[[str, Callable[[Cluster], bool]], Cluster]


@pytest.fixture
def drive(database: Database, controller: ClusterController) -> Driver:
    """Run controller passes (as the worker would on each due message) until `done(cluster)` holds."""

    def run(cluster_id: str, done: Callable[[Cluster], bool], timeout_seconds: float = 20) -> Cluster:
        deadline = time.monotonic() + timeout_seconds
        while True:
            with database.session() as session:
                controller.reconcile(session, cluster_id)
                cluster = _fresh(session, cluster_id)
                if done(cluster):
                    return cluster
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"cluster did not converge: status={cluster.status} error={cluster.last_error_code}"
                )
            # Deployments run for ARM_DEPLOYMENT_SECONDS; checking again sooner only costs a GET.
            time.sleep(0.1)

    return run


def _fresh(session: Session, cluster_id: str) -> Cluster:
    # refresh() reloads from the database and drops unflushed changes: flush the pass's last ones first.
    session.flush()
    cluster = session.get(Cluster, cluster_id)
    assert cluster is not None
    session.refresh(cluster)
    return cluster


def resource_body(arm_control: httpx.Client, subscription_id: str, resource_type: str) -> list[dict[str, Any]]:
    """Bodies of the emulator's resources of one type in a subscription."""
    response = arm_control.get(
        "/resources", params={"subscription_id": subscription_id, "resource_type": resource_type}
    )
    response.raise_for_status()
    return [item["body"] for item in response.json()]


@pytest.fixture
def state(arm_state: dict[str, Any]) -> dict[str, Any]:
    return arm_state
