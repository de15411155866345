"""Subscriptions with their clusters, for overviews: a customer tenant's own, or every one for operators.

Scoping lives here, not in the callers: a customer principal only ever gets rows of the tenant named by
the verified token, and another tenant's subscription is NotFound, exactly like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.clusters.models import Cluster, ClusterStatus
from core.errors import NotFound
from core.identity.principal import Principal
from core.subscriptions.models import MarketplaceOperation, MarketplaceSubscription, OperationState
from core.tenants.models import Tenant

OVERVIEW_LIMIT = 200


@dataclass(frozen=True)
class SubscriptionOverview:
    """One subscription and its cluster (None until the purchase asked for one)."""

    subscription: MarketplaceSubscription
    cluster: Cluster | None


def tenant_row_id(session: Session, principal: Principal) -> str | None:
    """The tenants.id a customer principal is scoped to; None for operators, "" for a tenant we never saw."""
    if principal.is_operator:
        return None
    tenant = session.exec(select(Tenant).where(Tenant.entra_tenant_id == principal.entra_tenant_id)).first()
    return tenant.id if tenant is not None else ""


def subscription_overviews(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    plan_id: str | None = None,
    beneficiary_tenant_id: str | None = None,
    failed_only: bool = False,
    limit: int = OVERVIEW_LIMIT,
) -> list[SubscriptionOverview]:
    """Subscriptions the principal may see, newest first; `failed_only` keeps failed clusters or operations."""
    statement = select(MarketplaceSubscription, Cluster).join(
        Cluster, col(Cluster.subscription_id) == col(MarketplaceSubscription.id), isouter=True
    )
    scope = tenant_row_id(session, principal)
    if scope is not None:
        statement = statement.where(MarketplaceSubscription.tenant_id == scope)
    if status:
        statement = statement.where(MarketplaceSubscription.status == status)
    if plan_id:
        statement = statement.where(MarketplaceSubscription.plan_id == plan_id)
    if beneficiary_tenant_id:
        statement = statement.where(MarketplaceSubscription.beneficiary_tenant_id == beneficiary_tenant_id)
    if failed_only:
        failed_operation = (
            select(MarketplaceOperation.id)
            .where(
                MarketplaceOperation.subscription_id == MarketplaceSubscription.id,
                MarketplaceOperation.state == OperationState.FAILED,
            )
            .exists()
        )
        statement = statement.where(sa.or_(col(Cluster.status) == ClusterStatus.FAILED, failed_operation))
    rows = session.exec(
        statement.order_by(col(MarketplaceSubscription.created_at).desc(), col(MarketplaceSubscription.id)).limit(limit)
    ).all()
    return [SubscriptionOverview(subscription, cluster) for subscription, cluster in rows]


def visible_subscription(session: Session, principal: Principal, subscription_id: str) -> SubscriptionOverview:
    """One subscription the principal may see; another tenant's id is NotFound, as is a missing one."""
    subscription = session.get(MarketplaceSubscription, subscription_id)
    scope = tenant_row_id(session, principal)
    if subscription is None or (scope is not None and subscription.tenant_id != scope):
        raise NotFound("subscription not found", details={"subscription_id": subscription_id})
    cluster = session.exec(select(Cluster).where(Cluster.subscription_id == subscription.id)).first()
    return SubscriptionOverview(subscription, cluster)
