"""Found by the full scenario: reconciliation must not follow a Marketplace status that lags our own.

A Reinstate applied here makes the subscription Subscribed, while Marketplace keeps it Suspended until our
PATCH lands. A reconciliation that read Marketplace in between used to suspend the cluster again.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from core.audit.models import AuditEvent
from core.clock import utc_now
from core.db import Database
from core.marketplace.fulfillment_client import FulfillmentOperation, FulfillmentSubscription
from core.subscriptions.models import (
    MarketplaceOperation,
    MarketplaceSubscription,
    OperationState,
    SubscriptionStatus,
)
from core.subscriptions.reconciliation import reconcile_subscription
from core.subscriptions.service import lock_subscription, transition_subscription
from core.tenants.service import get_or_create_tenant
from tests.conftest import TEST_DATABASE


def _subscription(session: Session, status: str) -> MarketplaceSubscription:
    tenant = get_or_create_tenant(session, str(uuid.uuid4()))
    subscription = MarketplaceSubscription(
        id=str(uuid.uuid4()),
        tenant_id=tenant.id,
        offer_id="vast-blob-facade",
        plan_id="standard",
        quantity=1,
        status=status,
        beneficiary_tenant_id=tenant.entra_tenant_id,
    )
    session.add(subscription)
    session.flush()
    return subscription


def _remote(subscription: MarketplaceSubscription, status: str) -> FulfillmentSubscription:
    return FulfillmentSubscription.model_validate(
        {
            "id": subscription.id,
            "offerId": subscription.offer_id,
            "planId": "standard",
            "saasSubscriptionStatus": status,
        }
    )


def _operation(session: Session, subscription_id: str, action: str, state: str) -> MarketplaceOperation:
    operation = MarketplaceOperation(
        id=str(uuid.uuid4()),
        subscription_id=subscription_id,
        action=action,
        marketplace_status="InProgress",
        state=state,
    )
    session.add(operation)
    session.flush()
    return operation


def _reconcile(
    session: Session,
    remote: FulfillmentSubscription,
    pending: list[FulfillmentOperation] | None = None,
    listed_at_offset: timedelta | None = None,
) -> set[str]:
    now = utc_now()
    changes = reconcile_subscription(
        session,
        remote,
        pending or [],
        actor="test",
        redrive_before=now - timedelta(hours=1),
        listed_at=now + listed_at_offset if listed_at_offset is not None else None,
    )
    return {change["change"] for change in changes}


def test_a_reinstate_pending_at_marketplace_keeps_our_subscribed_status(session: Session) -> None:
    ours = _subscription(session, "Subscribed")
    operation = _operation(session, ours.id, "Reinstate", OperationState.APPLIED)
    pending = FulfillmentOperation.model_validate(
        {"id": operation.id, "subscriptionId": ours.id, "action": "Reinstate", "status": "InProgress"}
    )
    assert "status_followed" not in _reconcile(session, _remote(ours, "Suspended"), [pending])
    assert ours.status == "Subscribed"


def test_a_reinstate_unfinished_with_us_keeps_our_subscribed_status(session: Session) -> None:
    ours = _subscription(session, "Subscribed")
    _operation(session, ours.id, "Reinstate", OperationState.APPLIED)
    assert "status_followed" not in _reconcile(session, _remote(ours, "Suspended"))
    assert ours.status == "Subscribed"


def test_an_operation_that_moved_after_the_listing_makes_it_stale(session: Session) -> None:
    ours = _subscription(session, "Suspended")
    _operation(session, ours.id, "Suspend", OperationState.REPORTED)  # updated now, after the listing
    assert "status_followed" not in _reconcile(
        session, _remote(ours, "Subscribed"), listed_at_offset=-timedelta(seconds=5)
    )
    assert ours.status == "Suspended"


def test_a_quiet_subscription_still_follows_marketplace(session: Session) -> None:
    ours = _subscription(session, "Subscribed")
    _operation(session, ours.id, "ChangeQuantity", OperationState.REPORTED)
    assert "status_followed" in _reconcile(session, _remote(ours, "Suspended"), listed_at_offset=timedelta(seconds=5))
    assert ours.status == "Suspended"


def test_unsubscribed_is_followed_even_while_reinstating(session: Session) -> None:
    ours = _subscription(session, "Subscribed")
    _operation(session, ours.id, "Reinstate", OperationState.APPLIED)
    assert "status_followed" in _reconcile(session, _remote(ours, "Unsubscribed"))
    assert ours.status == "Unsubscribed"


@pytest.mark.postgres_only
@pytest.mark.skipif(TEST_DATABASE != "postgresql", reason="row locks: PostgreSQL only")
def test_reconciliation_waits_for_a_concurrent_transition_instead_of_redoing_it(database: Database) -> None:
    # Found by the full scenario at 50 subscriptions: a Suspend applied while a reconciliation ran was audited twice.
    with database.session() as session:
        subscription_id = _subscription(session, "Subscribed").id
    webhook_session = database.session()
    webhook = webhook_session.__enter__()
    ours = lock_subscription(webhook, subscription_id)  # the webhook path holds the row, not yet committed
    transition_subscription(webhook, ours, SubscriptionStatus.SUSPENDED, actor="test", reason="Suspend")
    changes: list[set[str]] = []

    def reconcile_now() -> None:
        with database.session() as session:
            remote = FulfillmentSubscription.model_validate(
                {
                    "id": subscription_id,
                    "offerId": "vast-blob-facade",
                    "planId": "standard",
                    "saasSubscriptionStatus": "Suspended",
                }
            )
            changes.append(_reconcile(session, remote))

    reconciler = threading.Thread(target=reconcile_now)
    reconciler.start()
    reconciler.join(timeout=1.0)
    assert reconciler.is_alive(), "the reconciliation did not wait for the row lock"
    webhook_session.__exit__(None, None, None)  # commit the webhook's transition
    reconciler.join(timeout=30)
    assert changes == [set()]
    with database.session() as session:
        transitions = session.exec(
            select(AuditEvent).where(
                AuditEvent.subject_id == subscription_id, AuditEvent.action == "subscription.transition"
            )
        ).all()
    assert [(event.before, event.after) for event in transitions] == [
        ({"status": "Subscribed"}, {"status": "Suspended"})
    ]
