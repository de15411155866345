"""Read models of subscriptions for the publisher API and the landing page's progress view."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.audit.queries import events_about
from core.clusters.models import Cluster
from core.errors import NotFound
from core.subscriptions.models import (
    MarketplaceOperation,
    MarketplaceReconciliationReport,
    MarketplaceSubscription,
)
from core.subscriptions.schemas import (
    AuditEventView,
    ClusterSummary,
    OperationView,
    ReconciliationReportView,
    SubscriptionDetail,
    SubscriptionPage,
    SubscriptionView,
)

MAX_AUDIT_EVENTS = 500


def list_subscriptions(
    session: Session,
    *,
    status: str | None = None,
    plan_id: str | None = None,
    beneficiary_tenant_id: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> SubscriptionPage:
    """One page of subscriptions, newest first, filtered by status, plan and the beneficiary's Entra tenant."""
    conditions = []
    if status is not None:
        conditions.append(MarketplaceSubscription.status == status)
    if plan_id is not None:
        conditions.append(MarketplaceSubscription.plan_id == plan_id)
    if beneficiary_tenant_id is not None:
        conditions.append(MarketplaceSubscription.beneficiary_tenant_id == beneficiary_tenant_id)
    total = session.exec(select(sa.func.count()).select_from(MarketplaceSubscription).where(*conditions)).one()
    rows = session.exec(
        select(MarketplaceSubscription)
        .where(*conditions)
        .order_by(col(MarketplaceSubscription.created_at).desc(), col(MarketplaceSubscription.id))
        .offset(offset)
        .limit(limit)
    ).all()
    return SubscriptionPage(
        items=[SubscriptionView.model_validate(row, from_attributes=True) for row in rows],
        total=int(total),
        offset=offset,
        limit=limit,
    )


def subscription_detail(session: Session, subscription_id: str) -> SubscriptionDetail:
    """A subscription with its cluster, operations and the audit trail of all three."""
    subscription = session.get(MarketplaceSubscription, subscription_id)
    if subscription is None:
        raise NotFound("subscription not found", details={"subscription_id": subscription_id})
    cluster = session.exec(select(Cluster).where(Cluster.subscription_id == subscription_id)).first()
    operations = session.exec(
        select(MarketplaceOperation)
        .where(MarketplaceOperation.subscription_id == subscription_id)
        .order_by(col(MarketplaceOperation.received_at))
    ).all()
    subjects = [("marketplace_subscription", subscription_id)]
    subjects += [("marketplace_operation", operation.id) for operation in operations]
    if cluster is not None:
        subjects.append(("cluster", cluster.id))
    return SubscriptionDetail(
        subscription=SubscriptionView.model_validate(subscription, from_attributes=True),
        cluster=ClusterSummary.model_validate(cluster, from_attributes=True) if cluster else None,
        operations=[OperationView.model_validate(operation, from_attributes=True) for operation in operations],
        audit_trail=[
            AuditEventView.model_validate(event, from_attributes=True)
            for event in events_about(session, subjects, limit=MAX_AUDIT_EVENTS)
        ],
    )


def reconciliation_report(session: Session, report_id: int) -> ReconciliationReportView:
    """One reconciliation report."""
    report = session.get(MarketplaceReconciliationReport, report_id)
    if report is None:
        raise NotFound("reconciliation report not found", details={"report_id": report_id})
    return ReconciliationReportView.model_validate(report, from_attributes=True)


def operation_view(operation: MarketplaceOperation) -> OperationView:
    """The API view of an operation row."""
    return OperationView.model_validate(operation, from_attributes=True)
