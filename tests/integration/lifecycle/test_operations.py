"""Every Marketplace action end to end: webhook -> verified by GET -> applied to the desired spec -> PATCHed."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlmodel import col, select

from core.audit.models import AuditEvent
from core.clusters.models import Cluster
from core.db import Database, utc_now
from core.subscriptions.models import MarketplaceOperation, MarketplaceSubscription
from core.usage.models import UsageSample
from tests.integration.lifecycle.conftest import ActiveSubscription, ControlPlane, report_converged
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.usefixtures("marketplace_mode"), pytest.mark.broker, pytest.mark.timeout(120)]


def _operation(database: Database, operation_id: str) -> MarketplaceOperation | None:
    with database.session() as session:
        return session.get(MarketplaceOperation, operation_id)


def _wait_state(database: Database, operation_id: str, *states: str) -> MarketplaceOperation:
    return wait_for(
        lambda: (row := _operation(database, operation_id)) is not None and row.state in states and row,
        what=f"operation {operation_id} to be {' or '.join(states)}",
    )


def _cluster(database: Database, cluster_id: str) -> Cluster:
    with database.session() as session:
        cluster = session.get(Cluster, cluster_id)
        assert cluster is not None
        return cluster


def _subscription(database: Database, subscription_id: str) -> MarketplaceSubscription:
    with database.session() as session:
        subscription = session.get(MarketplaceSubscription, subscription_id)
        assert subscription is not None
        return subscription


def _marketplace_status(emulators: Emulators, operation_id: str) -> str:
    operation = emulators.marketplace_operation(operation_id)
    assert operation is not None
    return str(operation["status"])


def _reported_note(database: Database, operation_id: str) -> str | None:
    with database.session() as session:
        event = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "marketplace_operation.reported", AuditEvent.subject_id == operation_id
            )
        ).one()
    return None if event.details is None else event.details.get("note")


def test_change_quantity_and_plan_wait_for_convergence_then_patch_success(
    control_plane: ControlPlane,
    emulators: Emulators,
    database: Database,
    active_subscription: ActiveSubscription,
    marketplace_mode: str,
) -> None:
    subscription_id, cluster_id = active_subscription.subscription_id, active_subscription.cluster_id
    generation_before = _cluster(database, cluster_id).desired_generation

    quantity_change = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 4})
    # Applied: the desired spec moved one generation; reported once the cluster gets there.
    applied = _wait_state(database, quantity_change["id"], "applied", "reported")
    cluster = _cluster(database, cluster_id)
    assert cluster.desired_quantity == 4
    assert applied.desired_generation == generation_before + 1

    report_converged(database, cluster_id)
    reported = _wait_state(database, quantity_change["id"], "reported")
    assert reported.result == "Success"
    assert _marketplace_status(emulators, quantity_change["id"]) == "Succeeded"
    assert emulators.marketplace_subscription(subscription_id)["quantity"] == 4
    assert _subscription(database, subscription_id).quantity == 4
    if marketplace_mode == "quirks":  # the Success PATCH came after convergence: answered 409, read back Succeeded
        assert _reported_note(database, quantity_change["id"]) == (
            "Marketplace had already completed the operation: Succeeded"
        )

    plan_change = emulators.customer_action(subscription_id, "change-plan", {"plan_id": "performance"})
    _wait_state(database, plan_change["id"], "applied", "reported")
    assert _cluster(database, cluster_id).desired_plan_id == "performance"
    report_converged(database, cluster_id)
    assert _wait_state(database, plan_change["id"], "reported").result == "Success"
    assert emulators.marketplace_subscription(subscription_id)["planId"] == "performance"
    assert _subscription(database, subscription_id).plan_id == "performance"


def test_downgrade_below_used_capacity_is_reported_as_failure_and_retry_reverifies(
    control_plane: ControlPlane, emulators: Emulators, database: Database, active_subscription: ActiveSubscription
) -> None:
    subscription_id, cluster_id = active_subscription.subscription_id, active_subscription.cluster_id
    with database.session() as session:
        for minutes_ago, value in ((30, 20.0), (5, 40.0)):  # the latest sample counts, not the largest
            sampled_at = utc_now() - timedelta(minutes=minutes_ago)
            session.add(
                UsageSample(
                    cluster_id=cluster_id,
                    dimension_id="capacity_tib",
                    sampled_at=sampled_at,
                    hour_start=sampled_at.replace(minute=0, second=0, microsecond=0),
                    value=value,
                )
            )
    generation_before = _cluster(database, cluster_id).desired_generation

    downgrade = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 1})
    failed = _wait_state(database, downgrade["id"], "failed")
    assert failed.result == "Failure"
    assert failed.failure_reason is not None
    assert "holds 25 TiB but the cluster stores 40 TiB" in failed.failure_reason
    assert _marketplace_status(emulators, downgrade["id"]) == "Failed"
    assert _cluster(database, cluster_id).desired_generation == generation_before  # desired spec untouched
    assert emulators.marketplace_subscription(subscription_id)["quantity"] == 2

    operator = emulators.control_plane_token(roles=["Operator"])
    retried = httpx.post(
        f"{control_plane.base_url}/publisher/operations/{downgrade['id']}/retry",
        headers={"Authorization": f"Bearer {operator}"},
        timeout=10,
    )
    assert retried.status_code == 202, retried.text
    assert retried.json()["state"] == "received"
    again = wait_for(
        lambda: (
            (row := _operation(database, downgrade["id"])) is not None
            and row.state == "failed"
            and row.attempts == 2
            and row
        ),
        what="the retried operation to be verified again",
    )
    assert again.failure_reason is not None
    assert "Marketplace reports the operation Failed" in again.failure_reason


def test_suspend_reinstate_renew_and_unsubscribe_reach_marketplace_end_states(
    control_plane: ControlPlane,
    emulators: Emulators,
    database: Database,
    active_subscription: ActiveSubscription,
    marketplace_mode: str,
) -> None:
    subscription_id, cluster_id = active_subscription.subscription_id, active_subscription.cluster_id

    suspend = emulators.customer_action(subscription_id, "suspend")
    _wait_state(database, suspend["id"], "reported")
    assert _subscription(database, subscription_id).status == "Suspended"
    assert _cluster(database, cluster_id).desired_suspended is True

    reinstate = emulators.customer_action(subscription_id, "reinstate")
    _wait_state(database, reinstate["id"], "applied", "reported")
    assert _cluster(database, cluster_id).desired_suspended is False
    report_converged(database, cluster_id)
    assert _wait_state(database, reinstate["id"], "reported").result == "Success"
    assert emulators.marketplace_subscription(subscription_id)["saasSubscriptionStatus"] == "Subscribed"
    assert _subscription(database, subscription_id).status == "Subscribed"

    term_before = _subscription(database, subscription_id).term_end
    renew = emulators.customer_action(subscription_id, "renew")
    _wait_state(database, renew["id"], "reported")
    renewed = _subscription(database, subscription_id)
    assert renewed.term_end is not None
    assert term_before is not None
    assert renewed.term_end > term_before
    marketplace_term = emulators.marketplace_subscription(subscription_id)["term"]
    assert renewed.term_start is not None
    assert renewed.term_start.date().isoformat() == marketplace_term["startDate"][:10]
    if marketplace_mode == "documented":
        assert renewed.term_end.date().isoformat() == marketplace_term["endDate"][:10]
    else:  # the end Marketplace answered equals the start: ours is derived from the term unit (P1M)
        assert renewed.term_end.date() > renewed.term_start.date()

    unsubscribe = emulators.customer_action(subscription_id, "unsubscribe")
    _wait_state(database, unsubscribe["id"], "reported")
    assert _subscription(database, subscription_id).status == "Unsubscribed"
    assert _cluster(database, cluster_id).desired_deleted is True

    with database.session() as session:
        transitions = session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "subscription.transition", AuditEvent.subject_id == subscription_id)
            .order_by(col(AuditEvent.id))
        ).all()
    assert [(event.before, event.after) for event in transitions if event.outcome == "success"] == [
        ({"status": "PendingFulfillmentStart"}, {"status": "Subscribed"}),
        ({"status": "Subscribed"}, {"status": "Suspended"}),
        ({"status": "Suspended"}, {"status": "Subscribed"}),
        ({"status": "Subscribed"}, {"status": "Unsubscribed"}),
    ]


def test_marketplace_throttling_and_errors_on_get_and_patch_are_retried_and_nothing_is_lost(
    control_plane: ControlPlane, emulators: Emulators, database: Database, active_subscription: ActiveSubscription
) -> None:
    subscription_id, cluster_id = active_subscription.subscription_id, active_subscription.cluster_id
    throttle = emulators.add_marketplace_fault(
        {
            "kind": "status",
            "method": "GET",
            "path_pattern": r"/api/saas/subscriptions/[^/]+/operations/",
            "status": 429,
            "retry_after_seconds": 1,
            "count": 2,
        }
    )
    server_error = emulators.add_marketplace_fault(
        {
            "kind": "status",
            "method": "PATCH",
            "path_pattern": r"/api/saas/subscriptions/[^/]+/operations/",
            "status": 500,
            "count": 2,
        }
    )
    try:
        change = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 3})
        _wait_state(database, change["id"], "applied", "reported")
        report_converged(database, cluster_id)
        assert _wait_state(database, change["id"], "reported").result == "Success"
        hits = {rule["id"]: rule["hits"] for rule in emulators.marketplace_faults()}
    finally:
        emulators.clear_marketplace_faults()
    assert hits[throttle["id"]] == 2
    assert hits[server_error["id"]] == 2
    assert _marketplace_status(emulators, change["id"]) == "Succeeded"
    assert emulators.marketplace_subscription(subscription_id)["quantity"] == 3
