"""The managed-application observer against the ARM emulator: confirm, link, observe the cluster, delete, refuse.

The application and its resource groups are created in a fresh Contoso subscription through the ARM emulator
(as the customer's deployment would), the publisher's access is a cross-tenant grant for the control-plane app
of the publisher tenant, and the observer runs in-process on the test database as the worker runs it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from core.audit.models import AuditEvent
from core.azure.arm import ArmClientFactory
from core.azure.credentials import CredentialFactory
from core.clusters.controller import ClusterController
from core.clusters.models import Cluster
from core.clusters.provisioning_models import ArmDeployment
from core.db import Database
from core.managed_apps.models import ManagedApplication
from core.managed_apps.observation import ManagedApplicationObserver, ObservationOutcome, built_by_managed_application
from core.managed_apps.schemas import ManagedAppNotification
from core.managed_apps.service import record_notification
from core.messaging import TaskNames
from core.outbox.models import OutboxMessage
from core.settings import Settings
from core.tenants.models import Tenant
from emulators.suite import EmulatorSuite
from harness.processes import ProcessGroup

pytestmark = pytest.mark.timeout(180)

ARM_API_VERSION = "2019-07-01"
OUTPUTS = {
    "endpointFqdn": "blob.vast-contoso.example.internal",
    "privateLinkServiceAlias": "vast-pls.4d1c7e0a-91b2-4f7e-a7a2-6c0d9f1e2b3c.westeurope.azure.privatelinkservice",
    "keyIdWithVersion": "https://kv-vast.vault.example/keys/cmk/0123456789abcdef",
}


@dataclass(frozen=True)
class Customer:
    """A fresh Contoso subscription with the ARM client and raw HTTP the customer's side uses."""

    tenant_id: str
    subscription_id: str
    http: httpx.Client


@pytest.fixture
def arm_control(emulator_suite: EmulatorSuite) -> Iterator[httpx.Client]:
    state = emulator_suite.state()
    with httpx.Client(base_url=state["arm"]["control_url"], verify=state["ca_bundle"], timeout=10) as client:
        yield client


@pytest.fixture
def customer(emulator_suite: EmulatorSuite, app_settings: Settings, arm_control: httpx.Client) -> Iterator[Customer]:
    """A new Contoso subscription (so grants made here touch no other test) where the control plane is Owner."""
    state = emulator_suite.state()
    tenant_id = state["entra"]["tenants"]["contoso"]["id"]
    app_id = str(app_settings.control_plane_client_id)
    created = arm_control.post(
        "/subscriptions", json={"tenant_id": tenant_id, "display_name": "Contoso apps", "access": {app_id: "Owner"}}
    )
    created.raise_for_status()
    token = CredentialFactory(app_settings).customer_tenant(tenant_id).get_token(app_settings.arm_credential_scope)
    with httpx.Client(
        base_url=state["arm"]["base_url"],
        verify=state["ca_bundle"],
        headers={"Authorization": f"Bearer {token.token}"},
        timeout=10,
    ) as http:
        yield Customer(tenant_id, created.json()["id"], http)


@pytest.fixture
def observer(app_settings: Settings) -> ManagedApplicationObserver:
    return ManagedApplicationObserver(app_settings, ArmClientFactory(app_settings))


def grant_publisher(arm_control: httpx.Client, app_settings: Settings, customer: Customer) -> None:
    """What the offer's publisher authorization gives: Reader for the publisher tenant's control-plane app."""
    arm_control.put(
        f"/subscriptions/{customer.subscription_id}/access/{app_settings.control_plane_client_id}",
        json={"role": "Reader", "cross_tenant": True},
    ).raise_for_status()


def put_application(customer: Customer, name: str) -> tuple[str, str]:
    """The customer's deployment: a resource group, the managed resource group and the application."""
    version = {"api-version": "2024-03-01"}
    base = f"/subscriptions/{customer.subscription_id}/resourceGroups"
    application_id = f"{base}/customer-apps/providers/Microsoft.Solutions/applications/{name}"
    managed_group = f"mrg-{name}"
    customer.http.put(f"{base}/customer-apps", params=version, json={"location": "westeurope"}).raise_for_status()
    customer.http.put(
        f"{base}/{managed_group}", params=version, json={"location": "westeurope", "managedBy": application_id}
    ).raise_for_status()
    pls_id = f"{base}/{managed_group}/providers/Microsoft.Network/privateLinkServices/vast-pls"
    identity_id = f"{base}/{managed_group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/vast-id"
    outputs = {**OUTPUTS, "privateLinkServiceResourceId": pls_id, "identityResourceId": identity_id}
    response = customer.http.put(
        application_id,
        params={"api-version": ARM_API_VERSION},
        json={
            "location": "West Europe",
            "kind": "MarketPlace",
            "plan": {"publisher": "vastdata1234567890", "product": "vast-blob-facade", "name": "standard"},
            "properties": {
                "managedResourceGroupId": f"{base}/{managed_group}",
                "parameters": {
                    "instanceCount": {"value": 6},
                    "visibilitySubscriptionIds": {"value": [customer.subscription_id]},
                },
                "outputs": {key: {"type": "String", "value": value} for key, value in outputs.items()},
            },
        },
    )
    assert response.status_code in (200, 201), response.text
    return application_id, f"{base}/{managed_group}"


def notify(database: Database, application_id: str, event_type: str, state: str, at: datetime, **extra: Any) -> str:
    """Record a notification as the endpoint does; returns the managed application row id."""
    notification = ManagedAppNotification.model_validate(
        {
            **extra,
            "eventType": event_type,
            "applicationId": application_id,
            "eventTime": at.isoformat(),
            "provisioningState": state,
            "billingDetails": {"resourceUsageId": "usage-" + uuid.uuid4().hex[:8]},
            "plan": {
                "publisher": "vastdata1234567890",
                "product": "vast-blob-facade",
                "name": "standard",
                "version": "1.0.0",
            },
        }
    )
    with database.session() as session:
        return record_notification(session, notification).managed_application.id


def observe(
    database: Database, observer: ManagedApplicationObserver, row_id: str, attempt: int = 1
) -> ObservationOutcome:
    with database.session() as session:
        return observer.observe(session, row_id, attempt)


def snapshot(database: Database, row_id: str, application_id: str) -> dict[str, Any]:
    """Everything an observation may change, to compare before and after a replay."""
    with database.session() as session:
        application = session.get(ManagedApplication, row_id)
        cluster = session.exec(select(Cluster).where(Cluster.managed_application_id == application_id)).first()
        return {
            "application": application.model_dump() if application else None,
            "cluster": cluster.model_dump() if cluster else None,
            "audit": session.exec(select(AuditEvent.id)).all(),
            "outbox": session.exec(select(OutboxMessage.id)).all(),
        }


def audit_events(database: Database, subject_id: str, action: str) -> list[AuditEvent]:
    with database.session() as session:
        statement = select(AuditEvent).where(AuditEvent.subject_id == subject_id, AuditEvent.action == action)
        return list(session.exec(statement.order_by(col(AuditEvent.id))).all())


def test_lifecycle_links_tenant_observes_cluster_and_deletes_it(
    database: Database,
    observer: ManagedApplicationObserver,
    customer: Customer,
    arm_control: httpx.Client,
    app_settings: Settings,
) -> None:
    grant_publisher(arm_control, app_settings, customer)
    application_id, managed_group_id = put_application(customer, "vast-lifecycle")
    start = datetime.now(UTC) - timedelta(minutes=10)

    row_id = notify(database, application_id, "PUT", "Accepted", start)
    assert observe(database, observer, row_id) == ObservationOutcome.OBSERVED
    with database.session() as session:
        application = session.get(ManagedApplication, row_id)
        assert application is not None
        assert application.managed_resource_group_id == managed_group_id
        assert application.verified_at is not None
        tenant = session.get(Tenant, application.tenant_id)
        assert tenant is not None
        assert tenant.entra_tenant_id == customer.tenant_id
        assert session.exec(select(Cluster).where(Cluster.managed_application_id == application_id)).first() is None

    notify(database, application_id, "PUT", "Succeeded", start + timedelta(minutes=3))
    assert observe(database, observer, row_id) == ObservationOutcome.OBSERVED
    with database.session() as session:
        cluster = session.exec(select(Cluster).where(Cluster.managed_application_id == application_id)).one()
        assert cluster.status == "ready"
        assert cluster.tenant_id == tenant.id
        assert (cluster.azure_subscription_id, cluster.resource_group) == (
            customer.subscription_id,
            "mrg-vast-lifecycle",
        )
        assert cluster.region == "westeurope"
        # 6 nodes of a plan with 3 nodes per unit.
        assert (cluster.desired_plan_id, cluster.desired_quantity, cluster.observed_quantity) == ("standard", 2, 2)
        assert cluster.observed_generation == cluster.desired_generation
        assert cluster.endpoint_fqdn == OUTPUTS["endpointFqdn"]
        assert cluster.pls_alias == OUTPUTS["privateLinkServiceAlias"]
        assert cluster.key_id == OUTPUTS["keyIdWithVersion"]
        assert cluster.pls_resource_id is not None
        assert cluster.pls_resource_id.endswith("/privateLinkServices/vast-pls")
        assert cluster.identity_id is not None
        assert cluster.identity_id.endswith("/vast-id")
        assert cluster.pls_visibility_subscriptions == [customer.subscription_id]
        reconciles = session.exec(
            select(OutboxMessage).where(OutboxMessage.task_name == TaskNames.CLUSTER_RECONCILE)
        ).all()
        assert reconciles == []
        cluster_id = cluster.id
    assert len(audit_events(database, cluster_id, "cluster.observed_from_managed_app")) == 1

    # A replayed observation, a replayed notification and a stray reconcile change nothing.
    before = snapshot(database, row_id, application_id)
    assert observe(database, observer, row_id) == ObservationOutcome.UNCHANGED
    notify(database, application_id, "PUT", "Succeeded", start + timedelta(minutes=3))
    with database.session() as session:
        controller = ClusterController(
            app_settings, ArmClientFactory(app_settings), built_elsewhere=built_by_managed_application
        )
        controller.reconcile(session, cluster_id)
    assert snapshot(database, row_id, application_id) == before
    with database.session() as session:
        assert session.exec(select(ArmDeployment).where(ArmDeployment.cluster_id == cluster_id)).all() == []

    customer.http.delete(application_id, params={"api-version": ARM_API_VERSION}).raise_for_status()
    notify(database, application_id, "DELETE", "Deleted", start + timedelta(minutes=8))
    assert observe(database, observer, row_id) == ObservationOutcome.OBSERVED
    with database.session() as session:
        assert session.get_one(Cluster, cluster_id).status == "deleted"
    assert len(audit_events(database, cluster_id, "cluster.deleted_by_managed_app")) == 1
    before = snapshot(database, row_id, application_id)
    assert observe(database, observer, row_id) == ObservationOutcome.UNCHANGED
    assert snapshot(database, row_id, application_id) == before


def test_deleted_notification_for_a_live_application_is_refused(
    database: Database,
    observer: ManagedApplicationObserver,
    customer: Customer,
    arm_control: httpx.Client,
    app_settings: Settings,
) -> None:
    grant_publisher(arm_control, app_settings, customer)
    application_id, _ = put_application(customer, "vast-still-there")
    start = datetime.now(UTC) - timedelta(minutes=10)
    row_id = notify(database, application_id, "PUT", "Succeeded", start)
    assert observe(database, observer, row_id) == ObservationOutcome.OBSERVED
    notify(database, application_id, "DELETE", "Deleted", start + timedelta(minutes=1))
    assert observe(database, observer, row_id) == ObservationOutcome.NOT_CONFIRMED
    with database.session() as session:
        assert session.exec(select(Cluster).where(Cluster.managed_application_id == application_id)).one().status == (
            "ready"
        )
    [refusal] = audit_events(database, row_id, "managed_app.observation_refused")
    assert refusal.outcome == "refused"
    assert refusal.details["reason"] == "deletion not confirmed by ARM: the application still exists"


def test_failed_deployment_keeps_the_error_and_creates_no_cluster(
    database: Database,
    observer: ManagedApplicationObserver,
    customer: Customer,
    arm_control: httpx.Client,
    app_settings: Settings,
) -> None:
    grant_publisher(arm_control, app_settings, customer)
    application_id, managed_group_id = put_application(customer, "vast-failed")
    error = {"code": "QuotaExceeded", "message": "Operation could not be completed as it results in exceeding quota."}
    row_id = notify(database, application_id, "PUT", "Failed", datetime.now(UTC), error=error)
    assert observe(database, observer, row_id) == ObservationOutcome.OBSERVED
    with database.session() as session:
        application = session.get_one(ManagedApplication, row_id)
        assert application.managed_resource_group_id == managed_group_id
        assert application.tenant_id is not None
        assert application.last_error is not None
        assert application.last_error["code"] == "QuotaExceeded"
        assert session.exec(select(Cluster).where(Cluster.managed_application_id == application_id)).first() is None
    assert observe(database, observer, row_id) == ObservationOutcome.UNCHANGED


def test_application_unknown_to_arm_is_refused_once(
    database: Database,
    observer: ManagedApplicationObserver,
    customer: Customer,
    arm_control: httpx.Client,
    app_settings: Settings,
) -> None:
    grant_publisher(arm_control, app_settings, customer)
    application_id = (
        f"/subscriptions/{customer.subscription_id}/resourceGroups/customer-apps/providers/"
        "Microsoft.Solutions/applications/vast-forged"
    )
    row_id = notify(database, application_id, "PUT", "Succeeded", datetime.now(UTC))
    assert observe(database, observer, row_id) == ObservationOutcome.NOT_CONFIRMED
    before = snapshot(database, row_id, application_id)
    assert observe(database, observer, row_id) == ObservationOutcome.NOT_CONFIRMED
    assert snapshot(database, row_id, application_id) == before
    [refusal] = audit_events(database, row_id, "managed_app.observation_refused")
    assert refusal.outcome == "refused"
    assert refusal.details["reason"] == "notification not confirmed by ARM"
    application = before["application"]
    assert application["tenant_id"] is None
    assert application["verified_at"] is None
    assert before["cluster"] is None


def test_missing_cross_tenant_grant_is_audited_and_observed_again_later(
    database: Database,
    observer: ManagedApplicationObserver,
    customer: Customer,
    arm_control: httpx.Client,
    app_settings: Settings,
) -> None:
    application_id, _ = put_application(customer, "vast-no-grant")
    row_id = notify(database, application_id, "PUT", "Succeeded", datetime.now(UTC))
    assert observe(database, observer, row_id) == ObservationOutcome.ACCESS_FAILED
    [failure] = audit_events(database, row_id, "managed_app.observation_failed")
    assert failure.outcome == "failure"
    assert failure.details["code"] == "ArmAccessDenied"
    assert customer.subscription_id in failure.details["message"]
    with database.session() as session:
        observations = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.task_name == TaskNames.MANAGED_APP_OBSERVE)
            .order_by(col(OutboxMessage.id))
        ).all()
        # The notification's own observation, then the retry the failure scheduled.
        [_, retry] = [message for message in observations if message.arguments["managed_application_id"] == row_id]
        assert retry.arguments == {"managed_application_id": row_id, "attempt": 2}
        assert retry.available_at > datetime.now(UTC) + timedelta(seconds=10)
        assert session.exec(select(Cluster).where(Cluster.managed_application_id == application_id)).first() is None

    grant_publisher(arm_control, app_settings, customer)
    assert observe(database, observer, row_id, attempt=2) == ObservationOutcome.OBSERVED
    with database.session() as session:
        assert session.exec(select(Cluster).where(Cluster.managed_application_id == application_id)).one().status == (
            "ready"
        )


def test_worker_consumes_the_notifications_outbox_message(
    database: Database, customer: Customer, arm_control: httpx.Client, app_settings: Settings, tmp_path: Path
) -> None:
    """Relay and worker processes: the message the endpoint's service enqueued ends in an observed cluster."""
    grant_publisher(arm_control, app_settings, customer)
    application_id, _ = put_application(customer, "vast-through-worker")
    group = ProcessGroup(tmp_path / "logs", {**os.environ, **app_settings.as_environment()})
    group.add("relay", "relay")
    group.add("worker", "worker", "--concurrency=1")
    group.start_all()
    try:
        row_id = notify(database, application_id, "PUT", "Succeeded", datetime.now(UTC))
        deadline = time.monotonic() + 120  # relay and worker start first; a loaded 2-core machine needs time
        cluster = None
        while cluster is None and time.monotonic() < deadline:
            with database.session() as session:
                cluster = session.exec(select(Cluster).where(Cluster.managed_application_id == application_id)).first()
            time.sleep(0.1)
        with database.session() as session:
            pending = session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.task_name == TaskNames.MANAGED_APP_OBSERVE, col(OutboxMessage.completed_at).is_(None)
                )
            ).all()
    finally:
        group.stop_all()
    assert cluster is not None, "the worker did not observe the application in time"
    assert cluster.status == "ready"
    assert cluster.endpoint_fqdn == OUTPUTS["endpointFqdn"]
    assert audit_events(database, row_id, "managed_app.verified")
    assert pending == []
