"""Recognising an expected connection when it reaches the Private Link Service, and expiring the rest.

The rule is exact and explained: an expectation that is waiting, not expired and was declared before the connection
was first seen matches a connection when every value its rule sets equals what the connection shows (the private
endpoint's full id or its name, case-insensitive; the request message, exactly). The first matching connection uses
the expectation up. The subscription alone never matches: a managed service's endpoint lives in a subscription
Microsoft manages, which names no customer. The comparison is stored as evidence with the decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from core.audit.actions import AuditAction
from core.audit.service import record_audit_event
from core.clusters.models import Cluster
from core.connectivity.models import EXPECTATION_STATES, ExpectationStatus, ExpectedConnection
from core.db import lock_rows
from core.networking.models import PrivateEndpointConnection

MATCHER_ACTOR = "system:expected-connections"


def _endpoint_name(endpoint_id: str | None) -> str | None:
    return endpoint_id.rstrip("/").rsplit("/", 1)[-1] if endpoint_id else None


def _checks(expectation: ExpectedConnection, connection: PrivateEndpointConnection) -> list[dict[str, Any]]:
    observed_name = _endpoint_name(connection.private_endpoint_id)
    checks: list[dict[str, Any]] = []
    if expectation.expected_endpoint_id is not None:
        observed = connection.private_endpoint_id
        equal = observed is not None and observed.lower() == expectation.expected_endpoint_id.lower()
        checks.append(
            {
                "field": "private_endpoint_id",
                "expected": expectation.expected_endpoint_id,
                "observed": observed,
                "equal": equal,
            }
        )
    if expectation.expected_endpoint_name is not None:
        equal = observed_name is not None and observed_name.lower() == expectation.expected_endpoint_name.lower()
        checks.append(
            {
                "field": "private_endpoint_name",
                "expected": expectation.expected_endpoint_name,
                "observed": observed_name,
                "equal": equal,
            }
        )
    if expectation.expected_request_message is not None:
        observed_message = connection.request_message
        equal = observed_message == expectation.expected_request_message
        checks.append(
            {
                "field": "request_message",
                "expected": expectation.expected_request_message,
                "observed": observed_message,
                "equal": equal,
            }
        )
    return checks


def expire_due(session: Session, cluster: Cluster, now: datetime) -> int:
    """Mark the cluster's waiting expectations whose time is up as expired; returns how many."""
    due = session.exec(
        lock_rows(
            select(ExpectedConnection).where(
                ExpectedConnection.cluster_id == cluster.id,
                ExpectedConnection.status == ExpectationStatus.WAITING.value,
                col(ExpectedConnection.expires_at) <= now,
            )
        )
    ).all()
    for expectation in due:
        EXPECTATION_STATES.check(ExpectationStatus.WAITING, ExpectationStatus.EXPIRED)
        expectation.status, expectation.decided_at, expectation.decided_by = (
            ExpectationStatus.EXPIRED.value,
            now,
            MATCHER_ACTOR,
        )
        session.add(expectation)
        record_audit_event(
            session,
            actor=MATCHER_ACTOR,
            action=AuditAction.EXPECTED_CONNECTION_EXPIRED,
            subject_type="cluster",
            subject_id=cluster.id,
            tenant_id=cluster.tenant_id,
            details={
                "expectation": expectation.id,
                "consumer": expectation.consumer_kind,
                "expires_at": expectation.expires_at.isoformat(),
            },
        )
    return len(due)


def match_expected(
    session: Session, cluster: Cluster, connection: PrivateEndpointConnection, now: datetime
) -> ExpectedConnection | None:
    """The waiting expectation this pending connection meets, now used up with its evidence; None when none does."""
    waiting = session.exec(
        lock_rows(
            select(ExpectedConnection)
            .where(
                ExpectedConnection.cluster_id == cluster.id,
                ExpectedConnection.status == ExpectationStatus.WAITING.value,
                col(ExpectedConnection.expires_at) > now,
                col(ExpectedConnection.created_at) <= connection.created_at,
            )
            .order_by(col(ExpectedConnection.created_at))
        )
    ).all()
    for expectation in waiting:
        checks = _checks(expectation, connection)
        if not checks or not all(check["equal"] for check in checks):
            continue
        EXPECTATION_STATES.check(ExpectationStatus.WAITING, ExpectationStatus.MATCHED)
        expectation.status = ExpectationStatus.MATCHED.value
        expectation.decided_at, expectation.decided_by = now, MATCHER_ACTOR
        expectation.matched_connection_id = connection.id
        expectation.evidence = {
            "rule": "every expected value equals the connection's; declared before the connection was first seen; "
            "not expired; single use",
            "checks": checks,
            "connection": connection.connection_name,
            "source_subscription_id": connection.source_subscription_id,
            "declared_at": expectation.created_at.isoformat(),
            "connection_first_seen_at": connection.created_at.isoformat(),
            "expires_at": expectation.expires_at.isoformat(),
        }
        session.add(expectation)
        record_audit_event(
            session,
            actor=MATCHER_ACTOR,
            action=AuditAction.EXPECTED_CONNECTION_MATCHED,
            subject_type="cluster",
            subject_id=cluster.id,
            tenant_id=cluster.tenant_id,
            details={"expectation": expectation.id, "consumer": expectation.consumer_kind, **expectation.evidence},
        )
        return expectation
    return None
