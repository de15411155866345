"""The billable window: usage counts only while the customer had what they paid for.

A cluster's usage is billable from the later of its first ready time and the subscription's
activation (a managed application has no activation: its first ready time) until the
subscription was unsubscribed. While the subscription was suspended, the offer's catalog policy
decides: `waive` refuses the usage, `submit` keeps it. A sample counts when its timestamp t lies in
[opens_at, closes_at) and outside every waived suspension [suspended_at, reinstated_at).

Samples outside the window are not dropped: the collector keeps them as rejected, with the rule
that refused them, for the operator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.catalog.loader import load_catalog
from core.catalog.schemas import InactiveUsagePolicy
from core.clusters.models import Cluster
from core.settings import Settings
from core.subscriptions.models import MarketplaceSubscription, SubscriptionSuspension


class WindowRefusal(StrEnum):
    """Why a sample lies outside the billable window (the first words of its rejection reason)."""

    NOT_READY = "before the cluster was first ready"
    NOT_ACTIVATED = "before the subscription was activated"
    UNSUBSCRIBED = "after the subscription was unsubscribed"
    SUSPENDED = "while the subscription was suspended"


@dataclass(frozen=True)
class Suspension:
    """One suspension period; `ends_at` is None while it lasts."""

    starts_at: datetime
    ends_at: datetime | None

    def covers(self, moment: datetime) -> bool:
        return self.starts_at <= moment and (self.ends_at is None or moment < self.ends_at)


@dataclass(frozen=True)
class BillableWindow:
    """When one cluster's usage is billable, and why not otherwise."""

    cluster_id: str
    first_ready_at: datetime | None
    activated_at: datetime | None
    requires_activation: bool
    unsubscribed_at: datetime | None = None
    suspensions: tuple[Suspension, ...] = field(default_factory=tuple)
    waive_suspended: bool = True

    @property
    def opens_at(self) -> datetime | None:
        """The later of first ready and activation; None while either is still missing."""
        if self.first_ready_at is None:
            return None
        if not self.requires_activation:
            return self.first_ready_at
        if self.activated_at is None:
            return None
        return max(self.first_ready_at, self.activated_at)

    def refusal(self, sampled_at: datetime) -> str | None:
        """None when the sample is billable, else the reason (a WindowRefusal and the instants it compared)."""
        if self.first_ready_at is None or sampled_at < self.first_ready_at:
            ready = self.first_ready_at.isoformat() if self.first_ready_at else "not yet"
            return f"{WindowRefusal.NOT_READY}: sampled at {sampled_at.isoformat()}, first ready {ready}"
        if self.requires_activation and (self.activated_at is None or sampled_at < self.activated_at):
            activated = self.activated_at.isoformat() if self.activated_at else "not yet"
            return f"{WindowRefusal.NOT_ACTIVATED}: sampled at {sampled_at.isoformat()}, activated {activated}"
        if self.unsubscribed_at is not None and sampled_at >= self.unsubscribed_at:
            return (
                f"{WindowRefusal.UNSUBSCRIBED}: sampled at {sampled_at.isoformat()}, "
                f"unsubscribed {self.unsubscribed_at.isoformat()}"
            )
        if self.waive_suspended:
            for suspension in self.suspensions:
                if suspension.covers(sampled_at):
                    return (
                        f"{WindowRefusal.SUSPENDED}: sampled at {sampled_at.isoformat()}, suspended "
                        f"{suspension.starts_at.isoformat()} (catalog inactive_subscription_usage=waive)"
                    )
        return None


def billable_windows(
    session: Session, cluster_ids: Iterable[str], waiving_offers: frozenset[str]
) -> dict[str, BillableWindow]:
    """The window of each named cluster, read in two queries."""
    wanted = list(cluster_ids)
    if not wanted:
        return {}
    rows = session.exec(
        select(Cluster, MarketplaceSubscription)
        .outerjoin(MarketplaceSubscription, col(MarketplaceSubscription.id) == col(Cluster.subscription_id))
        .where(col(Cluster.id).in_(wanted))
    ).all()
    subscription_ids = [subscription.id for _, subscription in rows if subscription is not None]
    periods: dict[str, list[Suspension]] = {}
    if subscription_ids:
        for period in session.exec(
            select(SubscriptionSuspension)
            .where(col(SubscriptionSuspension.subscription_id).in_(subscription_ids))
            .order_by(col(SubscriptionSuspension.suspended_at))
        ).all():
            periods.setdefault(period.subscription_id, []).append(Suspension(period.suspended_at, period.reinstated_at))
    windows: dict[str, BillableWindow] = {}
    for cluster, subscription in rows:
        if subscription is None:
            # A managed application bills from its deployment; it has no Marketplace activation or suspension.
            windows[cluster.id] = BillableWindow(cluster.id, cluster.first_ready_at, None, requires_activation=False)
            continue
        windows[cluster.id] = BillableWindow(
            cluster.id,
            cluster.first_ready_at,
            subscription.activated_at,
            requires_activation=True,
            unsubscribed_at=subscription.unsubscribed_at,
            suspensions=tuple(periods.get(subscription.id, ())),
            waive_suspended=subscription.offer_id in waiving_offers,
        )
    return windows


def usage_stopped_at(waiving_offers: frozenset[str]) -> tuple[sa.Subquery, sa.ColumnElement[datetime]]:
    """Since when a cluster's usage stopped being billable for now: its unsubscribe, else the start of a suspension
    the offer waives that still lasts; NULL while usage still counts.

    Returned as an open-suspensions subquery (outer-join it on `subscription_id`) and the column expression over it
    and `marketplace_subscriptions`: the collector reads a stopped cluster until it has read through this instant,
    and the close then bills the cluster's last partial hour.
    """
    suspensions = SubscriptionSuspension.__table__  # type: ignore[attr-defined]
    subscriptions = MarketplaceSubscription.__table__  # type: ignore[attr-defined]
    open_suspensions = (
        sa.select(suspensions.c.subscription_id, sa.func.max(suspensions.c.suspended_at).label("suspended_at"))
        .where(suspensions.c.reinstated_at.is_(None))
        .group_by(suspensions.c.subscription_id)
        .subquery("open_suspensions")
    )
    waived = (
        sa.case((subscriptions.c.offer_id.in_(sorted(waiving_offers)), open_suspensions.c.suspended_at), else_=None)
        if waiving_offers
        else sa.null()
    )
    return open_suspensions, sa.func.coalesce(subscriptions.c.unsubscribed_at, waived)


def waiving_offer_ids(settings: Settings) -> frozenset[str]:
    """The offers whose catalog waives the usage of suspended (and, at submission, inactive) subscriptions."""
    catalog = load_catalog(settings.catalog_path)
    return frozenset(
        offer.id for offer in catalog.offers if offer.inactive_subscription_usage is InactiveUsagePolicy.WAIVE
    )
