"""The subscription's billable term as billing reads it: when it ended and when it was suspended.

Status alone says where a subscription is now; billing needs when each change happened, because
usage is judged by the instant it was measured, not by the status when its hour is sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from core.subscriptions.models import MarketplaceSubscription, SubscriptionStatus, SubscriptionSuspension


def record_term_change(
    session: Session,
    subscription: MarketplaceSubscription,
    previous: SubscriptionStatus,
    target: SubscriptionStatus,
    at: datetime,
) -> None:
    """Open or close a suspension period and stamp the end of the term (flushes nothing; the caller does)."""
    if previous == SubscriptionStatus.SUSPENDED:
        open_period = session.exec(
            select(SubscriptionSuspension).where(
                SubscriptionSuspension.subscription_id == subscription.id,
                col(SubscriptionSuspension.reinstated_at).is_(None),
            )
        ).first()
        if open_period is not None:
            open_period.reinstated_at = at
            session.add(open_period)
    if target == SubscriptionStatus.SUSPENDED:
        session.add(SubscriptionSuspension(subscription_id=subscription.id, suspended_at=at))
    if target == SubscriptionStatus.UNSUBSCRIBED and subscription.unsubscribed_at is None:
        subscription.unsubscribed_at = at
