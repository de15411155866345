"""Connect a service: a customer admin declares a consumer, gets what to create, and we expect its connection."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from sqlmodel import Session, col, select

from core.audit.actions import AuditAction
from core.audit.service import record_audit_event
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.connectivity.catalog import ConsumerKind, connectivity_catalog
from core.connectivity.consumers import (
    ConnectionRule,
    ConsumerIdentity,
    Instructions,
    connection_rule,
    instructions,
    parse_consumer,
)
from core.connectivity.dns import consumer_fqdns
from core.connectivity.models import EXPECTATION_STATES, ExpectationStatus, ExpectedConnection
from core.db import lock_rows
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.identity.principal import Principal
from core.networking.models import ConnectionStatus, PrivateEndpointConnection
from core.networking.service import visible_cluster
from core.outbox.service import enqueue
from core.task_payloads import SyncPrivateEndpoints

DEFAULT_LIFETIME = timedelta(hours=24)


class ConsumerNotSupported(ValidationFailed):
    """The consumer cannot target a partner Private Link Service; the details name the documented alternative."""

    code = "ConsumerNotSupported"


class PrivateLinkNotReady(Conflict):
    code = "PrivateLinkNotReady"


class ClusterGoingAway(Conflict):
    """The cluster is being removed (unsubscribed): nothing new should connect to it."""

    code = "ClusterGoingAway"


class ConnectAnswer(BaseModel):
    expectation: ExpectedConnection
    instructions: Instructions


def _customer_admin_cluster(session: Session, principal: Principal, cluster_id: str) -> Cluster:
    # Only the beneficiary tenant's admins say which of their services may connect; operators do not act for them.
    if principal.is_operator:
        raise Forbidden("only a customer admin of the cluster's tenant declares the services that connect to it")
    principal.require_admin()
    return visible_cluster(session, principal, cluster_id)


def may_declare(principal: Principal) -> bool:
    """Whether the principal declares expected connections, and so may read their one-time values: a waiting
    expectation's token, endpoint name and instructions would let anyone who reads them impersonate the service."""
    return principal.can_act and not principal.is_operator


def _identity(row: ExpectedConnection) -> ConsumerIdentity:
    return parse_consumer(ConsumerKind(row.consumer_kind), row.consumer_resource_id)


def instructions_for(cluster: Cluster, row: ExpectedConnection) -> Instructions:
    """The filled-in REST body, ARM resource and CLI command for an expectation (the same every time it is asked)."""
    if cluster.pls_resource_id is None or cluster.pls_alias is None:
        raise PrivateLinkNotReady("the cluster has no Private Link Service yet", details={"cluster_id": cluster.id})
    rule = ConnectionRule(
        endpoint_id=row.expected_endpoint_id,
        endpoint_name=row.expected_endpoint_name,
        request_message=row.expected_request_message,
        managed_endpoint_name=row.managed_endpoint_name,
    )
    return instructions(
        _identity(row),
        rule,
        pls_id=cluster.pls_resource_id,
        pls_alias=cluster.pls_alias,
        fqdns=consumer_fqdns(cluster),
        region=cluster.region,
    )


def connect_service(
    session: Session,
    principal: Principal,
    cluster_id: str,
    kind: ConsumerKind,
    resource_id: str,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> ConnectAnswer:
    """Record an expected connection (or return the one still waiting for this consumer) with what to create."""
    cluster = _customer_admin_cluster(session, principal, cluster_id)
    entry = connectivity_catalog().entry(kind)
    if not entry.can_connect:
        raise ConsumerNotSupported(
            f"{entry.title} cannot target a partner Private Link Service",
            details={
                "consumer": kind.value,
                "alternative": entry.alternative,
                "sources": [str(s) for s in entry.sources],
            },
        )
    identity = parse_consumer(kind, resource_id)
    if cluster.desired_deleted or cluster.status in (ClusterStatus.DEPROVISIONING, ClusterStatus.DELETED):
        raise ClusterGoingAway(
            "the cluster is being removed; connect the service to another one", details={"cluster_id": cluster.id}
        )
    if cluster.pls_resource_id is None or cluster.pls_alias is None or cluster.endpoint_fqdn is None:
        raise PrivateLinkNotReady("the cluster has no Private Link Service yet", details={"cluster_id": cluster.id})
    now = utc_now()
    waiting = session.exec(
        lock_rows(
            select(ExpectedConnection).where(
                ExpectedConnection.cluster_id == cluster.id,
                ExpectedConnection.consumer_kind == kind.value,
                ExpectedConnection.consumer_resource_id == identity.resource_id,
                ExpectedConnection.status == ExpectationStatus.WAITING.value,
                col(ExpectedConnection.expires_at) > now,
            )
        )
    ).first()
    if waiting is not None:  # a second submission of the same form gets the same answer, not a second expectation
        return ConnectAnswer(expectation=waiting, instructions=instructions_for(cluster, waiting))
    rule = connection_rule(identity)
    row = ExpectedConnection(
        cluster_id=cluster.id,
        tenant_id=cluster.tenant_id,
        consumer_kind=kind.value,
        consumer_resource_id=identity.resource_id,
        expected_endpoint_id=rule.endpoint_id,
        expected_endpoint_name=rule.endpoint_name,
        expected_request_message=rule.request_message,
        managed_endpoint_name=rule.managed_endpoint_name,
        created_by=principal.actor,
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    session.flush()
    record_audit_event(
        session,
        actor=principal.actor,
        action=AuditAction.EXPECTED_CONNECTION_CREATED,
        subject_type="cluster",
        subject_id=cluster.id,
        tenant_id=cluster.tenant_id,
        details={
            "expectation": row.id,
            "consumer": kind.value,
            "consumer_resource_id": identity.resource_id,
            "expires_at": row.expires_at.isoformat(),
        },
    )
    # The connection may already be on its way: look at the PLS soon rather than at the next sweep.
    enqueue(session, SyncPrivateEndpoints(cluster_id=cluster.id))
    return ConnectAnswer(expectation=row, instructions=instructions_for(cluster, row))


def list_expectations(session: Session, principal: Principal, cluster_id: str) -> list[ExpectedConnection]:
    cluster = visible_cluster(session, principal, cluster_id)
    statement = select(ExpectedConnection).where(ExpectedConnection.cluster_id == cluster.id)
    return list(session.exec(statement.order_by(col(ExpectedConnection.created_at))).all())


def get_expectation(session: Session, principal: Principal, cluster_id: str, expectation_id: str) -> ExpectedConnection:
    cluster = visible_cluster(session, principal, cluster_id)
    row = session.exec(
        select(ExpectedConnection).where(
            ExpectedConnection.id == expectation_id, ExpectedConnection.cluster_id == cluster.id
        )
    ).first()
    if row is None:
        raise NotFound("expected connection not found", details={"expectation_id": expectation_id})
    return row


def cancel_expectation(
    session: Session, principal: Principal, cluster_id: str, expectation_id: str
) -> ExpectedConnection:
    """Withdraw a waiting expectation; a matched, expired or cancelled one is a Conflict."""
    cluster = _customer_admin_cluster(session, principal, cluster_id)
    row = session.exec(
        lock_rows(
            select(ExpectedConnection).where(
                ExpectedConnection.id == expectation_id, ExpectedConnection.cluster_id == cluster.id
            )
        )
    ).first()
    if row is None:
        raise NotFound("expected connection not found", details={"expectation_id": expectation_id})
    if row.status != ExpectationStatus.WAITING.value:
        raise Conflict(f"the expected connection is already {row.status}", details={"expectation_id": row.id})
    EXPECTATION_STATES.check(ExpectationStatus.WAITING, ExpectationStatus.CANCELLED)
    row.status = ExpectationStatus.CANCELLED.value
    row.decided_at, row.decided_by = utc_now(), principal.actor
    session.add(row)
    session.flush()
    record_audit_event(
        session,
        actor=principal.actor,
        action=AuditAction.EXPECTED_CONNECTION_CANCELLED,
        subject_type="cluster",
        subject_id=cluster.id,
        tenant_id=cluster.tenant_id,
        details={"expectation": row.id, "consumer": row.consumer_kind},
    )
    return row


class ConsumerHealth(BaseModel):
    """One row of the connectivity matrix: a consumer kind and where its connections stand."""

    consumer: ConsumerKind
    title: str
    support: str
    waiting: int
    matched: int
    expired: int
    approved_connections: int
    pending_connections: int
    rejected_connections: int
    state: str


def connectivity_matrix(session: Session, principal: Principal, cluster_id: str) -> list[ConsumerHealth]:
    """Per consumer kind: expectations by state and the connections attributed to it (an expectation's match)."""
    cluster = visible_cluster(session, principal, cluster_id)
    expectations = session.exec(select(ExpectedConnection).where(ExpectedConnection.cluster_id == cluster.id)).all()
    connections = {
        row.id: row
        for row in session.exec(
            select(PrivateEndpointConnection).where(PrivateEndpointConnection.cluster_id == cluster.id)
        ).all()
    }
    rows: list[ConsumerHealth] = []
    for entry in connectivity_catalog().consumer:
        mine = [row for row in expectations if row.consumer_kind == entry.kind.value]
        statuses = [
            connections[row.matched_connection_id].status
            for row in mine
            if row.matched_connection_id in connections and row.matched_connection_id is not None
        ]
        # A connection nobody expected is counted under the customer's own VNet (the kind ARM cannot tell apart).
        if entry.kind == ConsumerKind.CUSTOMER_VNET:
            attributed = {row.matched_connection_id for row in expectations}
            statuses += [row.status for key, row in connections.items() if key not in attributed]
        counts = {status: statuses.count(status) for status in ConnectionStatus}
        waiting = sum(row.status == ExpectationStatus.WAITING.value for row in mine)
        if not entry.can_connect:
            state = "not supported"
        elif counts[ConnectionStatus.APPROVED]:
            state = "connected"
        elif waiting or counts[ConnectionStatus.PENDING]:
            state = "waiting"
        else:
            state = "not connected"
        rows.append(
            ConsumerHealth(
                consumer=entry.kind,
                title=entry.title,
                support=entry.support.value,
                waiting=waiting,
                matched=sum(row.status == ExpectationStatus.MATCHED.value for row in mine),
                expired=sum(row.status == ExpectationStatus.EXPIRED.value for row in mine),
                approved_connections=counts[ConnectionStatus.APPROVED],
                pending_connections=counts[ConnectionStatus.PENDING],
                rejected_connections=counts[ConnectionStatus.REJECTED],
                state=state,
            )
        )
    return rows
