"""Every Marketplace action end to end: webhook -> verified by GET -> applied to the desired spec -> PATCHed."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlmodel import col, select

from core.audit.models import AuditEvent
from core.clock import utc_now
from core.clusters.models import Cluster
from core.db import Database
from core.outbox.models import OutboxMessage
from core.subscriptions.models import MarketplaceOperation, MarketplaceSubscription
from core.task_payloads import ConvergenceOutcome
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


def _audit(database: Database, subject_id: str, action: str) -> list[AuditEvent]:
    with database.session() as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(AuditEvent.subject_id == subject_id, AuditEvent.action == action)
                .order_by(col(AuditEvent.id))
            ).all()
        )


def _store_capacity_sample(database: Database, cluster_id: str, value: float, minutes_ago: int = 5) -> None:
    with database.session() as session:
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


def _patched_in_time(database: Database, operation_id: str) -> bool:
    """Our PATCH completed the operation: Marketplace had not completed it on its own (no 409 note)."""
    (reported,) = _audit(database, operation_id, "marketplace_operation.reported")
    return reported.details.get("note") is None


def test_change_quantity_and_plan_are_accepted_at_once_and_the_cluster_converges_afterwards(
    control_plane: ControlPlane,
    emulators: Emulators,
    database: Database,
    active_subscription: ActiveSubscription,
    marketplace_mode: str,
) -> None:
    subscription_id, cluster_id = active_subscription.subscription_id, active_subscription.cluster_id
    generation_before = _cluster(database, cluster_id).desired_generation

    quantity_change = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 4})
    # The verdict does not wait for the cluster: Marketplace accepts on its own 10 s after the webhook.
    reported = _wait_state(database, quantity_change["id"], "reported")
    assert reported.result == "Success"
    assert reported.desired_generation == generation_before + 1
    if marketplace_mode == "quirks":  # every Success PATCH is late there: answered 409 and read back as Succeeded
        assert _reported_note(database, quantity_change["id"]) == (
            "Marketplace had already completed the operation: Succeeded"
        )
    else:
        assert _patched_in_time(database, quantity_change["id"])
    assert _marketplace_status(emulators, quantity_change["id"]) == "Succeeded"
    assert emulators.marketplace_subscription(subscription_id)["quantity"] == 4
    assert _subscription(database, subscription_id).quantity == 4
    assert _cluster(database, cluster_id).desired_quantity == 4
    # Convergence follows the verdict, never precedes it.
    converged = report_converged(database, cluster_id)
    wait_for(
        lambda: (
            _audit(database, subscription_id, "subscription.cluster_converged")[-1].details["generation"] == converged
        ),
        what="the convergence to be recorded",
    )
    (verdict,) = _audit(database, quantity_change["id"], "marketplace_operation.reported")
    convergence = _audit(database, subscription_id, "subscription.cluster_converged")[-1]
    assert verdict.id < convergence.id

    plan_change = emulators.customer_action(subscription_id, "change-plan", {"plan_id": "performance"})
    assert _wait_state(database, plan_change["id"], "reported").result == "Success"
    if marketplace_mode != "quirks":  # in quirks mode every Success PATCH is late (409, read back as Succeeded)
        assert _patched_in_time(database, plan_change["id"])
    assert _cluster(database, cluster_id).desired_plan_id == "performance"
    assert emulators.marketplace_subscription(subscription_id)["planId"] == "performance"
    assert _subscription(database, subscription_id).plan_id == "performance"


def test_a_change_that_does_not_reduce_capacity_is_accepted_whatever_the_cluster_stores(
    control_plane: ControlPlane, emulators: Emulators, database: Database, active_subscription: ActiveSubscription
) -> None:
    subscription_id, cluster_id = active_subscription.subscription_id, active_subscription.cluster_id
    # standard x 2 holds 50 TiB; the cluster stores more than that already.
    _store_capacity_sample(database, cluster_id, 60.0)

    upgrade = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 4})  # 100 TiB
    assert _wait_state(database, upgrade["id"], "reported", "failed").result == "Success"
    same_capacity_other_plan = emulators.customer_action(subscription_id, "change-plan", {"plan_id": "performance"})
    assert _wait_state(database, same_capacity_other_plan["id"], "reported", "failed").result == "Success"  # 240 TiB
    still_above_usage = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 2})  # 120 TiB
    assert _wait_state(database, still_above_usage["id"], "reported", "failed").result == "Success"
    below_usage = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 1})  # 60 TiB: holds it
    assert _wait_state(database, below_usage["id"], "reported", "failed").result == "Success"
    _store_capacity_sample(database, cluster_id, 61.0, minutes_ago=1)
    too_small = emulators.customer_action(subscription_id, "change-plan", {"plan_id": "standard"})  # 25 TiB
    refused = _wait_state(database, too_small["id"], "reported", "failed")
    assert (refused.state, refused.result) == ("failed", "Failure")
    assert refused.failure_reason is not None
    assert "holds 25 TiB but the cluster stores 61 TiB" in refused.failure_reason
    assert _marketplace_status(emulators, too_small["id"]) == "Failed"
    # Refused in the webhook's own answer, as Marketplace allows: on time whatever the queues hold.
    (delivery,) = [
        item
        for item in emulators.marketplace_control("GET", "/webhook-deliveries")
        if item["operation_id"] == too_small["id"]
    ]
    assert [attempt.get("status_code") for attempt in delivery["attempts"]] == [400]
    assert emulators.marketplace_operation(too_small["id"])["errorStatusCode"] == "400"  # type: ignore[index]
    (intake,) = _audit(database, too_small["id"], "marketplace_operation.refused_at_intake")
    assert "holds 25 TiB but the cluster stores 61 TiB" in intake.details["reason"]
    assert emulators.marketplace_subscription(subscription_id)["planId"] == "performance"
    assert emulators.marketplace_subscription(subscription_id)["quantity"] == 1


def test_a_refusal_that_reaches_marketplace_after_it_accepted_is_kept_for_an_operator(
    control_plane: ControlPlane, emulators: Emulators, database: Database, active_subscription: ActiveSubscription
) -> None:
    subscription_id, cluster_id = active_subscription.subscription_id, active_subscription.cluster_id
    _store_capacity_sample(database, cluster_id, 40.0)
    # The webhook is held until Marketplace's 10 s are over: it accepts the change on its own.
    emulators.marketplace_control("PUT", "/webhook-hold", json={"size": 2})
    try:
        downgrade = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 1})
        emulators.marketplace_control("POST", "/clock/advance", json={"seconds": 11})
        assert _marketplace_status(emulators, downgrade["id"]) == "Succeeded"
    finally:
        emulators.marketplace_control("DELETE", "/webhook-hold")

    late = _wait_state(database, downgrade["id"], "failed")
    # Marketplace's 409 is not an error: the change stands, is billed, and an operator is told why it is odd.
    assert late.result == "Success"
    assert late.marketplace_status == "Succeeded"
    assert late.failure_reason is not None
    assert late.failure_reason.startswith("Marketplace accepted the change before our refusal reached it")
    assert "the cluster stores 40 TiB" in late.failure_reason
    assert _subscription(database, subscription_id).quantity == 1
    (reported,) = _audit(database, downgrade["id"], "marketplace_operation.failed")
    assert reported.details["note"] == "Marketplace had already completed the operation: Succeeded"


def test_a_cluster_failing_an_accepted_change_alerts_operators_and_is_tried_again(
    control_plane: ControlPlane, emulators: Emulators, database: Database, active_subscription: ActiveSubscription
) -> None:
    subscription_id, cluster_id = active_subscription.subscription_id, active_subscription.cluster_id
    change = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 5})
    assert _wait_state(database, change["id"], "reported").result == "Success"
    with database.session() as session:  # what the controller does once the retry budget is spent
        cluster = session.get(Cluster, cluster_id)
        assert cluster is not None
        cluster.status = "failed"
        cluster.last_error_code = "QuotaExceeded"
        session.add(cluster)
    generation = report_converged(
        database, cluster_id, outcome=ConvergenceOutcome.FAILED, reason="QuotaExceeded: no cores left"
    )

    (alert,) = wait_for(
        lambda: _audit(database, subscription_id, "subscription.accepted_change_not_applied"),
        what="the operator alert",
    )
    assert alert.outcome == "failure"
    assert alert.details["alert"] == "operator"
    assert alert.details["operations"] == [{"id": change["id"], "action": "ChangeQuantity"}]
    assert alert.details["reason"] == "QuotaExceeded: no cores left"
    # The verdict stands: Marketplace already bills the new quantity, nothing is PATCHed again.
    assert _operation(database, change["id"]).result == "Success"  # type: ignore[union-attr]
    assert _marketplace_status(emulators, change["id"]) == "Succeeded"
    with database.session() as session:
        retry = session.exec(
            select(OutboxMessage).where(OutboxMessage.task_name == "clusters.retry_accepted_change")
        ).one()
        assert retry.arguments == {"cluster_id": cluster_id, "generation": generation}
        assert retry.available_at > utc_now() + timedelta(seconds=60)
        retry.available_at = utc_now()  # its time has come
        session.add(retry)
    (requested,) = wait_for(
        lambda: _audit(database, cluster_id, "cluster.retry_requested"), what="the controller to try again"
    )
    assert requested.actor == "system:subscription-controller"
    assert "Marketplace accepted the change" in requested.details["reason"]


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
        f"{control_plane.base_url}/api/publisher/operations/{downgrade['id']}/retry",
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
    assert _wait_state(database, reinstate["id"], "reported").result == "Success"
    assert _cluster(database, cluster_id).desired_suspended is False
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
    subscription_id = active_subscription.subscription_id
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
        assert _wait_state(database, change["id"], "reported").result == "Success"
        hits = {rule["id"]: rule["hits"] for rule in emulators.marketplace_faults()}
    finally:
        emulators.clear_marketplace_faults()
    assert hits[throttle["id"]] == 2
    assert hits[server_error["id"]] == 2
    assert _marketplace_status(emulators, change["id"]) == "Succeeded"
    assert emulators.marketplace_subscription(subscription_id)["quantity"] == 3
