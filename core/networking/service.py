"""Private endpoint connections on a cluster's Private Link Service: the customer's policy and named decisions.

ARM is the source of the connections; this table is the source of the decisions. A sync lists the PLS's
connections, records new ones, approves those the policy allows, and pushes decisions people made in the
portal or API to ARM (desired state, then converge), so the API never waits on ARM.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from core.audit.actions import AuditAction
from core.audit.service import record_audit_event
from core.azure.arm import ArmClient
from core.clock import utc_now
from core.clusters.models import Cluster
from core.connectivity.matching import expire_due, match_expected
from core.db import lock_rows
from core.errors import NotFound
from core.identity.principal import Principal
from core.networking.models import CONNECTION_STATES, ConnectionStatus, PrivateEndpointConnection
from core.outbox.service import enqueue
from core.task_payloads import SyncPrivateEndpoints
from core.tenants.models import Tenant

POLICY_AUTO_APPROVAL = "policy:auto-approval-subscriptions"
POLICY_EXPECTED_CONNECTION = "policy:expected-connection"
ARM_STATUS = {ConnectionStatus.APPROVED: "Approved", ConnectionStatus.REJECTED: "Rejected"}


def _subscription_of(resource_id: str | None) -> str | None:
    parts = (resource_id or "").split("/")
    lowered = [part.lower() for part in parts]
    if "subscriptions" in lowered:
        index = lowered.index("subscriptions")
        if index + 1 < len(parts):
            return parts[index + 1].lower()
    return None


def _service_name(cluster: Cluster) -> str | None:
    return cluster.pls_resource_id.rstrip("/").rsplit("/", 1)[-1] if cluster.pls_resource_id else None


def sync_private_endpoint_connections(session: Session, cluster: Cluster, arm: ArmClient) -> int:
    """Record, decide by policy, and push decisions to ARM; returns how many connections the PLS holds."""
    service = _service_name(cluster)
    if service is None:
        return 0
    known = {
        row.connection_name: row
        for row in session.exec(
            select(PrivateEndpointConnection).where(PrivateEndpointConnection.cluster_id == cluster.id)
        )
    }
    auto_approved = {item.lower() for item in cluster.pls_auto_approval_subscriptions}
    connections = arm.list_endpoint_connections(cluster.resource_group, service)
    now = utc_now()
    expire_due(session, cluster, now)
    for connection in connections:
        row = known.get(connection.name)
        source = _subscription_of(connection.private_endpoint_id)
        if row is None:
            row = PrivateEndpointConnection(
                cluster_id=cluster.id,
                tenant_id=cluster.tenant_id,
                connection_name=connection.name,
                arm_connection_id=connection.resource_id,
                private_endpoint_id=connection.private_endpoint_id,
                source_subscription_id=source,
                request_message=(connection.description or "")[:1024],
            )
            if connection.status == "Approved":
                # ARM approved it on its own through the PLS auto-approval list (our policy, applied by Azure).
                row.status = ConnectionStatus.APPROVED
                row.decided_by, row.decided_at = POLICY_AUTO_APPROVAL, now
                row.decision_reason = "approved by the Private Link Service auto-approval list"
            elif connection.status == "Rejected":
                row.status = ConnectionStatus.REJECTED
                row.decided_by, row.decided_at = "arm", now
            elif source is not None and (source in auto_approved or "*" in auto_approved):
                row.status = ConnectionStatus.APPROVED
                row.decided_by, row.decided_at = POLICY_AUTO_APPROVAL, now
                row.decision_reason = f"subscription {source} is on the cluster's auto-approval list"
            session.add(row)
            session.flush()
            _approve_if_expected(session, cluster, row, now)
            record_audit_event(
                session,
                actor="system:private-endpoint-controller",
                action=AuditAction.connection_now(row.status) if row.decided_by else AuditAction.CONNECTION_PENDING,
                subject_type="cluster",
                subject_id=cluster.id,
                tenant_id=cluster.tenant_id,
                details={
                    "connection": row.connection_name,
                    "source_subscription_id": source,
                    "decided_by": row.decided_by,
                    "reason": row.decision_reason,
                },
            )
        elif row.status == ConnectionStatus.PENDING and _approve_if_expected(session, cluster, row, now):
            record_audit_event(
                session,
                actor="system:private-endpoint-controller",
                action=AuditAction.CONNECTION_APPROVED,
                subject_type="cluster",
                subject_id=cluster.id,
                tenant_id=cluster.tenant_id,
                before={"status": ConnectionStatus.PENDING},
                after={"status": row.status},
                details={
                    "connection": row.connection_name,
                    "decided_by": row.decided_by,
                    "reason": row.decision_reason,
                },
            )
        wanted = ARM_STATUS.get(ConnectionStatus(row.status))
        if wanted is not None and connection.status != wanted:
            arm.set_endpoint_connection_status(
                cluster.resource_group, service, connection.name, wanted, row.decision_reason or row.decided_by or ""
            )
        row.updated_at = now
        session.add(row)
    return len(connections)


def _approve_if_expected(session: Session, cluster: Cluster, row: PrivateEndpointConnection, now: datetime) -> bool:
    """Approve a pending connection that meets a waiting expectation (the expectation keeps the evidence)."""
    if row.status != ConnectionStatus.PENDING:
        return False
    expectation = match_expected(session, cluster, row, now)
    if expectation is None:
        return False
    row.status = ConnectionStatus.APPROVED
    row.source_kind = expectation.consumer_kind
    row.decided_by, row.decided_at = f"{POLICY_EXPECTED_CONNECTION}:{expectation.id}", now
    fields = ", ".join(check["field"] for check in expectation.evidence["checks"])
    row.decision_reason = (
        f"matched the expected {expectation.consumer_kind} connection {expectation.id} ({fields} equal)"
    )
    session.add(row)
    return True


def _tenant_clusters_filter(session: Session, principal: Principal) -> str | None:
    """The tenant row id a customer principal may see; None for operators (they see all)."""
    if principal.is_operator:
        return None
    tenant = session.exec(select(Tenant).where(Tenant.entra_tenant_id == principal.entra_tenant_id)).first()
    return tenant.id if tenant is not None else ""


def visible_cluster(session: Session, principal: Principal, cluster_id: str) -> Cluster:
    """The cluster if the principal may see it; another tenant's cluster is NotFound, as is a missing one."""
    cluster = session.get(Cluster, cluster_id)
    tenant_id = _tenant_clusters_filter(session, principal)
    if cluster is None or (tenant_id is not None and cluster.tenant_id != tenant_id):
        raise NotFound("cluster not found", details={"cluster_id": cluster_id})
    return cluster


def list_connections(
    session: Session, principal: Principal, cluster_id: str, status: ConnectionStatus | None = None
) -> list[PrivateEndpointConnection]:
    """A cluster's connections, optionally only those with `status`."""
    cluster = visible_cluster(session, principal, cluster_id)
    statement = select(PrivateEndpointConnection).where(PrivateEndpointConnection.cluster_id == cluster.id)
    if status is not None:
        statement = statement.where(PrivateEndpointConnection.status == status.value)
    return list(session.exec(statement.order_by(col(PrivateEndpointConnection.created_at))).all())


def decide_connection(
    session: Session,
    principal: Principal,
    cluster_id: str,
    connection_id: str,
    decision: ConnectionStatus,
    reason: str,
) -> PrivateEndpointConnection:
    """Approve or reject a connection as a named person; the decision reaches ARM through the sync task."""
    cluster = visible_cluster(session, principal, cluster_id)
    row = session.exec(
        lock_rows(
            select(PrivateEndpointConnection).where(
                PrivateEndpointConnection.id == connection_id, PrivateEndpointConnection.cluster_id == cluster.id
            )
        )
    ).first()
    if row is None:
        raise NotFound("private endpoint connection not found", details={"connection_id": connection_id})
    before = row.status
    CONNECTION_STATES.check(ConnectionStatus(row.status), decision)
    row.status = decision
    row.decided_by = principal.actor
    row.decided_at = utc_now()
    row.decision_reason = reason[:1024]
    row.updated_at = row.decided_at
    session.add(row)
    session.flush()
    record_audit_event(
        session,
        actor=principal.actor,
        action=AuditAction.connection_now(decision.value),
        subject_type="cluster",
        subject_id=cluster.id,
        tenant_id=cluster.tenant_id,
        before={"status": before},
        after={"status": decision.value},
        details={"connection": row.connection_name, "reason": reason},
    )
    enqueue(session, SyncPrivateEndpoints(cluster_id=cluster.id))
    return row
