"""Reconciliation with Marketplace: compare what the fulfilment API says with what we hold, repair both ways.

The caller lists subscriptions and pending operations from Marketplace and hands each subscription in;
every repair is audited and returned as a change record for the report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.clock import utc_now
from core.clusters.service import change_desired_spec
from core.marketplace.fulfillment_client import FulfillmentOperation, FulfillmentSubscription
from core.outbox.service import enqueue
from core.subscriptions.models import (
    MarketplaceOperation,
    MarketplaceReconciliationReport,
    OperationAction,
    OperationState,
    ReconciliationStatus,
    SubscriptionStatus,
)
from core.subscriptions.service import (
    adopt_operation,
    adopt_subscription,
    cluster_of,
    find_subscription,
    known_status,
    lock_subscription,
    transition_subscription,
)
from core.task_payloads import ProcessMarketplaceOperation

# What the desired spec becomes when Marketplace says a subscription is in a status.
DESIRED_FOR_STATUS: dict[SubscriptionStatus, dict[str, bool]] = {
    SubscriptionStatus.SUSPENDED: {"desired_suspended": True},
    SubscriptionStatus.SUBSCRIBED: {"desired_suspended": False},
    SubscriptionStatus.UNSUBSCRIBED: {"desired_deleted": True},
}
UNFINISHED_OPERATION_STATES = (OperationState.RECEIVED, OperationState.VERIFIED, OperationState.APPLIED)


def start_report(session: Session, trigger: str) -> MarketplaceReconciliationReport:
    """A report row in state requested."""
    report = MarketplaceReconciliationReport(trigger=trigger[:64])
    session.add(report)
    session.flush()
    return report


def finish_report(
    session: Session,
    report: MarketplaceReconciliationReport,
    *,
    changes: list[dict[str, Any]],
    subscriptions_seen: int,
    operations_seen: int,
    error: str | None = None,
) -> None:
    """Record the outcome of a run."""
    report.status = ReconciliationStatus.FAILED if error else ReconciliationStatus.COMPLETED
    report.finished_at = utc_now()
    report.changes = changes
    report.subscriptions_seen = subscriptions_seen
    report.operations_seen = operations_seen
    report.error = error[:2048] if error else None
    session.add(report)
    session.flush()


def reconcile_subscription(
    session: Session,
    remote: FulfillmentSubscription,
    pending_operations: list[FulfillmentOperation],
    *,
    actor: str,
    redrive_before: datetime,
    listed_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Repair one subscription: adopt what we never heard of, follow Marketplace's status, re-drive stuck work.

    `listed_at` is when Marketplace was read: an operation of ours that moved since makes that status stale.
    """
    changes: list[dict[str, Any]] = []
    ours = find_subscription(session, remote.id)
    if ours is None:
        if remote.status == SubscriptionStatus.UNSUBSCRIBED:
            return changes
        ours = adopt_subscription(session, remote, actor=actor)
        changes.append({"subscription_id": remote.id, "change": "subscription_adopted", "status": remote.status})
    else:
        # Locked before comparing, as the webhook path does: a transition committed meanwhile is seen, not redone.
        ours = lock_subscription(session, remote.id)
    target = known_status(remote.status)
    settling = target is not None and _status_settling(session, ours.id, target, pending_operations, listed_at)
    if target is not None and ours.status != target.value and not settling:
        before = ours.status
        if transition_subscription(session, ours, target, actor=actor, reason="reconciled with Marketplace"):
            changes.append(
                {"subscription_id": ours.id, "change": "status_followed", "from": before, "to": target.value}
            )
            cluster = cluster_of(session, ours.id)
            desired = DESIRED_FOR_STATUS.get(target)
            if cluster is not None and desired and not cluster.desired_deleted:
                change_desired_spec(
                    session, cluster.id, actor=actor, reason=f"reconciled: Marketplace says {remote.status}", **desired
                )
        else:
            changes.append({"subscription_id": ours.id, "change": "status_refused", "from": before, "to": target.value})
    for operation in pending_operations:
        if session.get(MarketplaceOperation, operation.id) is not None:
            continue
        if operation.action not in {action.value for action in OperationAction}:
            changes.append(
                {"operation_id": operation.id, "change": "operation_unknown_action", "action": operation.action}
            )
            continue
        adopt_operation(session, operation, actor=actor)
        enqueue(
            session,
            ProcessMarketplaceOperation(operation_id=operation.id, subscription_id=operation.subscription_id),
        )
        changes.append({"operation_id": operation.id, "change": "operation_adopted", "action": operation.action})
    stuck = session.exec(
        select(MarketplaceOperation).where(
            MarketplaceOperation.subscription_id == ours.id,
            col(MarketplaceOperation.state).in_([state.value for state in UNFINISHED_OPERATION_STATES]),
            MarketplaceOperation.updated_at < redrive_before,
        )
    ).all()
    for stuck_operation in stuck:
        enqueue(
            session,
            ProcessMarketplaceOperation(
                operation_id=stuck_operation.id, subscription_id=stuck_operation.subscription_id
            ),
        )
        changes.append(
            {"operation_id": stuck_operation.id, "change": "operation_redriven", "state": stuck_operation.state}
        )
    return changes


def _status_settling(
    session: Session,
    subscription_id: str,
    target: SubscriptionStatus,
    pending_operations: list[FulfillmentOperation],
    listed_at: datetime | None,
) -> bool:
    """True when Marketplace's status may lag ours: a Reinstate in flight, or our operations moved since the read.

    A Reinstate applied here (Subscribed) stays Suspended at Marketplace until we report it; following
    Marketplace then would suspend the cluster again. Unsubscribed is terminal and is followed regardless.
    """
    if target == SubscriptionStatus.UNSUBSCRIBED:
        return False
    if any(operation.action == OperationAction.REINSTATE.value for operation in pending_operations):
        return True
    unfinished = [state.value for state in UNFINISHED_OPERATION_STATES]
    moving: sa.ColumnElement[bool] = sa.and_(
        col(MarketplaceOperation.action) == OperationAction.REINSTATE.value,
        col(MarketplaceOperation.state).in_(unfinished),
    )
    if listed_at is not None:
        moving = sa.or_(moving, col(MarketplaceOperation.updated_at) >= listed_at)
    in_flight = session.exec(
        select(MarketplaceOperation.id).where(MarketplaceOperation.subscription_id == subscription_id, moving)
    ).first()
    return in_flight is not None
