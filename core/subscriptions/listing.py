"""The operators' list of every subscription: searched, filtered, sorted by a column and paged, with counts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.clusters.models import Cluster, ClusterStatus
from core.paging import Page, PageRequest, SortDirection, capped_count
from core.subscriptions.models import MarketplaceOperation, MarketplaceSubscription, OperationState
from core.tenants.models import Tenant


class SubscriptionSort(StrEnum):
    """The columns the list sorts by."""

    CREATED = "created"
    NAME = "name"
    TENANT = "tenant"
    PLAN = "plan"
    QUANTITY = "quantity"
    STATUS = "status"
    CLUSTER = "cluster"


_SORT_COLUMNS: dict[SubscriptionSort, Any] = {
    SubscriptionSort.CREATED: col(MarketplaceSubscription.created_at),
    SubscriptionSort.NAME: col(MarketplaceSubscription.name),
    # Tenants without a known name sort by their id, as the page shows them.
    SubscriptionSort.TENANT: sa.func.coalesce(
        sa.func.nullif(col(Tenant.display_name), ""), col(Tenant.entra_tenant_id)
    ),
    SubscriptionSort.PLAN: col(MarketplaceSubscription.plan_id),
    SubscriptionSort.QUANTITY: col(MarketplaceSubscription.quantity),
    SubscriptionSort.STATUS: col(MarketplaceSubscription.status),
    SubscriptionSort.CLUSTER: col(Cluster.status),
}


_NULLABLE_SORTS = frozenset({SubscriptionSort.QUANTITY, SubscriptionSort.CLUSTER})


@dataclass(frozen=True)
class SubscriptionFilters:
    """What narrows the list; empty values narrow nothing."""

    search: str = ""
    status: str = ""
    plan_id: str = ""
    beneficiary_tenant_id: str = ""
    failed_only: bool = False


@dataclass(frozen=True)
class SubscriptionListItem:
    """One row: the subscription, its cluster (None until asked for) and its tenant's name where known."""

    subscription: MarketplaceSubscription
    cluster: Cluster | None
    tenant_name: str


@dataclass(frozen=True)
class SubscriptionOrder:
    """The column the list is sorted by and which way."""

    column: SubscriptionSort = SubscriptionSort.CREATED
    direction: SortDirection = SortDirection.DESCENDING


def list_subscriptions(
    session: Session, filters: SubscriptionFilters, order: SubscriptionOrder, page: PageRequest
) -> Page[SubscriptionListItem]:
    """One page of every tenant's subscriptions (operators only: the caller checks the role).

    Two steps: the page's ids are found on narrow rows (sort key and id), then only those rows are read whole;
    joining every subscription's whole cluster row before sorting cost ten times the page itself.
    """
    narrow = _narrowed(select(MarketplaceSubscription.id), filters)
    total, capped = capped_count(session, narrow)
    sort = _SORT_COLUMNS[order.column]
    ordering = sort.asc() if order.direction is SortDirection.ASCENDING else sort.desc()
    if order.column in _NULLABLE_SORTS:
        # Empty values last either way; not on the other columns, whose indexes serve the plain order.
        ordering = ordering.nulls_last()
    # The id breaks ties, so a row never appears on two pages or on none.
    tie = col(MarketplaceSubscription.id)
    # Only a sort by tenant or cluster needs their rows for the ids; filters and search use subqueries.
    if order.column is SubscriptionSort.TENANT:
        narrow = narrow.join(Tenant, col(Tenant.id) == col(MarketplaceSubscription.tenant_id))
    elif order.column is SubscriptionSort.CLUSTER:
        narrow = narrow.join(Cluster, col(Cluster.subscription_id) == col(MarketplaceSubscription.id), isouter=True)
    ids = list(
        session.exec(
            narrow.order_by(ordering, tie if order.direction is SortDirection.ASCENDING else tie.desc())
            .offset(page.offset)
            .limit(page.size)
        ).all()
    )
    rows = session.exec(
        select(MarketplaceSubscription, Cluster, Tenant.display_name)
        .join(Tenant, col(Tenant.id) == col(MarketplaceSubscription.tenant_id))
        .join(Cluster, col(Cluster.subscription_id) == col(MarketplaceSubscription.id), isouter=True)
        .where(col(MarketplaceSubscription.id).in_(ids))
    ).all()
    by_id = {subscription.id: (subscription, cluster, name) for subscription, cluster, name in rows}
    items = [SubscriptionListItem(by_id[key][0], by_id[key][1], by_id[key][2] or "") for key in ids if key in by_id]
    return Page(items, page, total, capped)


def _narrowed(statement: Any, filters: SubscriptionFilters) -> Any:
    if filters.status:
        statement = statement.where(col(MarketplaceSubscription.status) == filters.status)
    if filters.plan_id:
        statement = statement.where(col(MarketplaceSubscription.plan_id) == filters.plan_id)
    if filters.beneficiary_tenant_id:
        statement = statement.where(
            col(MarketplaceSubscription.beneficiary_tenant_id) == filters.beneficiary_tenant_id.strip()
        )
    if filters.failed_only:
        failed_cluster = select(Cluster.subscription_id).where(col(Cluster.status) == ClusterStatus.FAILED)
        failed_operation = select(MarketplaceOperation.subscription_id).where(
            col(MarketplaceOperation.state) == OperationState.FAILED
        )
        statement = statement.where(
            sa.or_(
                col(MarketplaceSubscription.id).in_(failed_cluster),
                col(MarketplaceSubscription.id).in_(failed_operation),
            )
        )
    text = filters.search.strip()
    if text:
        # Ids match from their start (people paste them), names anywhere in them whatever the case. Tenants and
        # clusters are matched in subqueries, so the search reads each table once instead of filtering a join.
        named_tenants = select(Tenant.id).where(col(Tenant.display_name).icontains(text, autoescape=True))
        matching_clusters = select(Cluster.subscription_id).where(
            sa.or_(
                col(Cluster.name).startswith(text.lower(), autoescape=True),
                col(Cluster.azure_subscription_id).startswith(text.lower(), autoescape=True),
            )
        )
        statement = statement.where(
            sa.or_(
                col(MarketplaceSubscription.id).startswith(text, autoescape=True),
                col(MarketplaceSubscription.beneficiary_tenant_id).startswith(text.lower(), autoescape=True),
                col(MarketplaceSubscription.tenant_id).in_(named_tenants),
                col(MarketplaceSubscription.id).in_(matching_clusters),
                col(MarketplaceSubscription.name).icontains(text, autoescape=True),
            )
        )
    return statement
