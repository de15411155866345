"""Marketplace operations that need an operator: failed, or unfinished for longer than they should take."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.subscriptions.models import MarketplaceOperation, OperationState

UNFINISHED_STATES = (OperationState.RECEIVED, OperationState.VERIFIED, OperationState.APPLIED)


def stuck_operations(
    session: Session, *, unchanged_since: datetime, limit: int = 200, including: Collection[str] = ()
) -> list[MarketplaceOperation]:
    """Failed operations, unfinished ones not updated since `unchanged_since`, and unfinished ones named in
    `including` (their processing gave up, so waiting will not help); oldest first."""
    statement = (
        select(MarketplaceOperation)
        .where(
            sa.or_(
                col(MarketplaceOperation.state) == OperationState.FAILED,
                sa.and_(
                    col(MarketplaceOperation.state).in_(UNFINISHED_STATES),
                    sa.or_(
                        col(MarketplaceOperation.updated_at) < unchanged_since,
                        col(MarketplaceOperation.id).in_(list(including)),
                    ),
                ),
            )
        )
        .order_by(col(MarketplaceOperation.updated_at))
        .limit(limit)
    )
    return list(session.exec(statement).all())
