"""Rows the fuzzer's requests can find: two customer tenants, each with a subscription and a cluster, and
the history around them (deployments, a key rotation, private endpoint connections, usage and ledger hours,
Marketplace operations, reconciliation reports, probe samples, audit events).

Committed, so the API process sees them; the fuzz module empties the tables again when it is done.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session

from core.audit.service import record_audit_event
from core.clock import utc_now
from core.clusters.models import ClusterStatus
from core.clusters.provisioning_models import ArmDeployment, DeploymentState, KeyRotation, KeyRotationState
from core.db import Database
from core.networking.models import ConnectionStatus, PrivateEndpointConnection
from core.probes.models import BlobProbeSample
from core.subscriptions.models import (
    MarketplaceOperation,
    MarketplaceReconciliationReport,
    OperationAction,
    OperationState,
    ReconciliationStatus,
)
from core.usage.models import LedgerStatus, ResourceKind, UsageLedgerEntry, UsageSample
from core.usage.reconciliation_models import DifferenceKind, UsageReconciliationDifference, UsageReconciliationReport
from tests.support.factories import create_cluster, create_subscription, create_tenant

DIMENSION_ID = "capacity_tib"


@dataclass(frozen=True)
class SeededTenant:
    """The ids of one tenant's rows that path parameters can point at."""

    entra_tenant_id: str
    subscription_id: str
    cluster_id: str
    rotation_id: str
    connection_id: str
    failed_operation_id: str


@dataclass(frozen=True)
class SeededData:
    """Ids of the seeded rows, by what a path parameter names."""

    customer: SeededTenant
    other_customer: SeededTenant
    marketplace_report_id: int
    usage_report_id: int

    def path_values(self) -> list[dict[str, str]]:
        """One consistent set of existing ids per tenant, for each path parameter name of the API.

        Report ids are publisher-wide: the first set names the Marketplace reconciliation report, the second
        the usage reconciliation report.
        """
        report_ids = (self.marketplace_report_id, self.usage_report_id)
        return [
            {
                "cluster_id": tenant.cluster_id,
                "subscription_id": tenant.subscription_id,
                "rotation_id": tenant.rotation_id,
                "connection_id": tenant.connection_id,
                "operation_id": tenant.failed_operation_id,
                "report_id": str(report_id),
            }
            for tenant, report_id in zip((self.customer, self.other_customer), report_ids, strict=True)
        ]


def seed(database: Database, *, customer_entra_tenant_id: str, other_entra_tenant_id: str) -> SeededData:
    """Commit the rows for two tenants and the publisher-wide reports."""
    with database.session() as session:
        customer = _seed_tenant(session, customer_entra_tenant_id, "Contoso", ClusterStatus.READY)
        # A failed cluster gives the operator's retry something to retry.
        other_customer = _seed_tenant(session, other_entra_tenant_id, "Fabrikam", ClusterStatus.FAILED)
        marketplace_report = MarketplaceReconciliationReport(
            trigger="schedule",
            status=ReconciliationStatus.COMPLETED,
            finished_at=utc_now(),
            subscriptions_seen=2,
            operations_seen=4,
            changes=[{"subscription_id": customer.subscription_id, "change": "status", "to": "Subscribed"}],
        )
        session.add(marketplace_report)
        usage_report = UsageReconciliationReport(
            period_start=utc_now() - timedelta(days=1),
            period_end=utc_now(),
            compared_groups=2,
            difference_count=1,
            requested_by="schedule",
        )
        session.add(usage_report)
        session.flush()
        assert marketplace_report.id is not None
        assert usage_report.id is not None
        session.add(
            UsageReconciliationDifference(
                report_id=usage_report.id,
                kind=DifferenceKind.QUANTITY_MISMATCH.value,
                resource_id=customer.subscription_id,
                dimension_id=DIMENSION_ID,
                plan_id="standard",
                usage_date=utc_now().replace(hour=0, minute=0, second=0, microsecond=0),
                ledger_quantity=3.0,
                marketplace_quantity=2.0,
                ledger_count=1,
                marketplace_count=1,
                marketplace_status="Accepted",
                detail="quantity differs",
            )
        )
        return SeededData(customer, other_customer, marketplace_report.id, usage_report.id)


def _seed_tenant(session: Session, entra_tenant_id: str, name: str, status: ClusterStatus) -> SeededTenant:
    tenant = create_tenant(session, entra_tenant_id=entra_tenant_id, display_name=name)
    subscription = create_subscription(session, tenant, quantity=2, activated_at=utc_now())
    cluster = create_cluster(
        session,
        tenant,
        subscription=subscription,
        status=status,
        key_id=f"https://kv-{tenant.id[:8]}.vault.example/keys/cmk/1",
        identity_id=f"/subscriptions/{uuid.uuid4()}/resourceGroups/rg/providers/identity/{name}",
        last_error_code="DeploymentFailed" if status == ClusterStatus.FAILED else None,
        last_error_message="seeded failure" if status == ClusterStatus.FAILED else None,
    )
    hour = utc_now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    session.add(
        ArmDeployment(
            cluster_id=cluster.id,
            step="cluster",
            generation=1,
            deployment_name=f"cp-{uuid.uuid4().hex[:24]}",
            resource_group=cluster.resource_group,
            parameters_hash="0" * 64,
            state=DeploymentState.SUCCEEDED,
            finished_at=utc_now(),
        )
    )
    rotation = KeyRotation(cluster_id=cluster.id, requested_by="policy:rotation", state=KeyRotationState.COMPLETED)
    connection = PrivateEndpointConnection(
        cluster_id=cluster.id,
        tenant_id=tenant.id,
        connection_name=f"pe-{uuid.uuid4().hex[:8]}",
        arm_connection_id=f"{cluster.resource_group}/privateEndpointConnections/pe",
        source_subscription_id=str(uuid.uuid4()),
        request_message="please approve",
        status=ConnectionStatus.PENDING,
    )
    failed = MarketplaceOperation(
        id=str(uuid.uuid4()),
        subscription_id=subscription.id,
        action=OperationAction.CHANGE_QUANTITY.value,
        quantity=3,
        marketplace_status="InProgress",
        state=OperationState.FAILED,
        failure_reason="seeded failure",
    )
    reported = MarketplaceOperation(
        id=str(uuid.uuid4()),
        subscription_id=subscription.id,
        action=OperationAction.RENEW.value,
        marketplace_status="Succeeded",
        state=OperationState.REPORTED,
        result="Success",
    )
    session.add_all([rotation, connection, failed, reported])
    for offset in range(2):
        sampled_at = hour + timedelta(minutes=10 * offset)
        session.add(
            UsageSample(
                cluster_id=cluster.id, dimension_id=DIMENSION_ID, sampled_at=sampled_at, hour_start=hour, value=1.5
            )
        )
    for ledger_status, hours_ago in ((LedgerStatus.ACCEPTED, 3), (LedgerStatus.PENDING, 2)):
        session.add(
            UsageLedgerEntry(
                resource_id=subscription.id,
                resource_kind=ResourceKind.SAAS.value,
                cluster_id=cluster.id,
                dimension_id=DIMENSION_ID,
                plan_id=subscription.plan_id,
                hour_start=hour - timedelta(hours=hours_ago),
                measured_quantity=3.0,
                included_quantity=1.0,
                billable_quantity=2.0,
                status=ledger_status.value,
            )
        )
    for check_name, succeeded in (("put_blob", True), ("get_blob", False)):
        session.add(
            BlobProbeSample(
                run_id=str(uuid.uuid4()),
                cluster_id=cluster.id,
                tenant_id=tenant.id,
                check_name=check_name,
                authentication="entra",
                succeeded=succeeded,
                latency_ms=12.5,
                error_code=None if succeeded else "Timeout",
            )
        )
    record_audit_event(
        session,
        actor="marketplace",
        action="subscription.activated",
        subject_type="subscription",
        subject_id=subscription.id,
        tenant_id=tenant.id,
    )
    session.flush()
    return SeededTenant(
        entra_tenant_id=entra_tenant_id,
        subscription_id=subscription.id,
        cluster_id=cluster.id,
        rotation_id=rotation.id,
        connection_id=connection.id,
        failed_operation_id=failed.id,
    )
