"""Marketplace orchestration: decide and report operations, activate, follow convergence, reconcile.

The worker tasks in workers/tasks/marketplace.py open the transaction and call one method here, as the
provisioning tasks call the cluster controller. Each step reads Marketplace through the fulfilment client and
changes our state through core.subscriptions.service in the caller's transaction; a failed call raises, the
transaction rolls back and the outbox message is delivered again, so every step is safe to repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from core.audit.actions import AuditAction
from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.catalog.models import ActivationMode
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.recovery import retry_failed_cluster
from core.errors import ControlPlaneError
from core.inbox.models import InboundSource
from core.inbox.service import mark_processed
from core.marketplace.fulfillment_client import FulfillmentClient
from core.marketplace.http import MarketplaceError
from core.outbox.dead_letters import GiveUp
from core.outbox.service import enqueue
from core.settings import Settings
from core.subscriptions.models import (
    MarketplaceOperation,
    MarketplaceReconciliationReport,
    MarketplaceSubscription,
    OperationAction,
    OperationState,
    SubscriptionStatus,
)
from core.subscriptions.reconciliation import finish_report, reconcile_subscription, start_report
from core.subscriptions.service import (
    WORKER_ACTOR,
    NextStep,
    adopt_operation,
    adopt_subscription,
    apply_operation,
    close_notification,
    find_subscription,
    known_status,
    lock_operation,
    lock_subscription,
    mark_reported,
    next_step_for_applied,
    offer_activation,
    operations_covered_by,
    transition_subscription,
    undelivered_accepted_changes,
    verify_operation,
)
from core.task_payloads import ConvergenceOutcome, RetryAcceptedChange

logger = logging.getLogger(__name__)


@contextmanager
def unknown_to_marketplace_gives_up(what: str) -> Iterator[None]:
    """Marketplace's 404 for the operation or subscription is final: no retry will make it known."""
    try:
        yield
    except MarketplaceError as error:
        if error.status != 404:
            raise
        raise GiveUp(
            f"Marketplace does not know {what} (404 {error.error_code or 'NotFound'}): {error.message}",
            details=error.details,
        ) from error


class SubscriptionOrchestrator:
    """Takes subscriptions and their operations through Marketplace's fulfilment API, one step per call."""

    def __init__(self, settings: Settings, fulfillment_client: Callable[[], FulfillmentClient]) -> None:
        self.settings = settings
        # Asked for on first use only: the steps that never reach Marketplace (a convergence of a cluster without
        # subscription, a retry of an accepted change) must not need the publisher credential.
        self._fulfillment_client = fulfillment_client

    def process_operation(self, session: Session, operation_id: str, subscription_id: str) -> None:
        """Verify an operation with Marketplace, decide it, apply it to the desired spec and report the verdict now.

        Runs on the verdict queue (core.messaging.VERDICT_QUEUE): Marketplace accepts a ChangePlan/ChangeQuantity
        on its own 10 s after the webhook, so this never waits for provisioning, neither in the queue nor for the
        cluster.
        """
        with unknown_to_marketplace_gives_up(f"operation {operation_id} of subscription {subscription_id}"):
            self._process_operation(session, operation_id, subscription_id)

    def _process_operation(self, session: Session, operation_id: str, subscription_id: str) -> None:
        client = self._fulfillment_client()
        operation = lock_operation(session, operation_id)
        if operation is None:
            # The webhook named a subscription we did not hold yet: take both from Marketplace itself.
            remote_operation = client.get_operation(subscription_id, operation_id)
            if find_subscription(session, remote_operation.subscription_id) is None:
                adopt_subscription(
                    session, client.get_subscription(remote_operation.subscription_id), actor=WORKER_ACTOR
                )
            adopt_operation(session, remote_operation, actor=WORKER_ACTOR)
            operation = lock_operation(session, operation_id)
            assert operation is not None
        self.drive_operation(session, operation)
        mark_processed(session, InboundSource.MARKETPLACE_WEBHOOK, operation_id)

    def drive_operation(self, session: Session, operation: MarketplaceOperation) -> None:
        """Take the operation as far as it can go now: received -> verified -> applied -> reported."""
        if operation.state in (OperationState.REPORTED, OperationState.FAILED):
            return
        client = self._fulfillment_client()
        if operation.state == OperationState.RECEIVED:
            verified = verify_operation(
                session, operation, client.get_operation(operation.subscription_id, operation.id), actor=WORKER_ACTOR
            )
            if verified is OperationState.FAILED:
                return
        if operation.state == OperationState.VERIFIED:
            remote_subscription = (
                client.get_subscription(operation.subscription_id)
                if operation.action == OperationAction.RENEW.value
                else None
            )
            step = apply_operation(session, operation, actor=WORKER_ACTOR, remote_subscription=remote_subscription)
        else:
            step = next_step_for_applied(operation)
        if step == NextStep.DONE:
            close_notification(session, operation, actor=WORKER_ACTOR)
        elif step == NextStep.REPORT_SUCCESS:
            self.report(session, operation, "Success")
        elif step == NextStep.REPORT_FAILURE:
            self.report(session, operation, "Failure")

    def report(self, session: Session, operation: MarketplaceOperation, result: str) -> None:
        """PATCH the operation's result; Marketplace having completed it already (409) is recorded, not an error."""
        client = self._fulfillment_client()
        note = None
        try:
            client.patch_operation(operation.subscription_id, operation.id, result)
        except MarketplaceError as error:
            if error.status != 409:
                raise
            remote = client.get_operation(operation.subscription_id, operation.id)
            operation.marketplace_status = remote.status[:32]
            completed_as = "Success" if remote.status == "Succeeded" else "Failure"
            note = f"Marketplace had already completed the operation: {remote.status}"
            if result == "Failure" and completed_as == "Success":
                # Our refusal came after Marketplace's 10 s: the change stands and is billed. Kept failed (the
                # stuck-work page shows it) with the reason, for an operator to settle with the customer.
                operation.failure_reason = (
                    "Marketplace accepted the change before our refusal reached it and bills it; "
                    f"an operator must settle it: {operation.failure_reason or ''}"
                )[:2048]
                logger.error("a refusal reached Marketplace too late", extra={"operation_id": operation.id})
            result = completed_as
        else:
            operation.marketplace_status = "Succeeded" if result == "Success" else "Failed"
        mark_reported(session, operation, result, actor=WORKER_ACTOR, note=note)

    def cluster_converged(
        self,
        session: Session,
        cluster_id: str,
        generation: int,
        outcome: ConvergenceOutcome,
        reason: str | None = None,
    ) -> None:
        """A cluster reached (or failed) a desired generation: activate when ready; alert when an accepted change
        failed.

        Operations are reported when decided (process_operation); the loop below only finishes ones applied before
        that rule (or whose report was lost), whose verdict Marketplace has taken by now anyway.
        """
        cluster = session.get(Cluster, cluster_id)
        if cluster is None or cluster.subscription_id is None:
            return
        converged = outcome is ConvergenceOutcome.CONVERGED
        record_audit_event(
            session,
            actor=WORKER_ACTOR,
            action=AuditAction.SUBSCRIPTION_CLUSTER_CONVERGED if converged else AuditAction.SUBSCRIPTION_CLUSTER_FAILED,
            subject_type="marketplace_subscription",
            subject_id=cluster.subscription_id,
            tenant_id=cluster.tenant_id,
            outcome=AuditOutcome.SUCCESS if converged else AuditOutcome.FAILURE,
            details={"cluster_id": cluster_id, "generation": generation, "outcome": outcome, "reason": reason},
        )
        for operation in operations_covered_by(session, cluster.subscription_id, generation):
            if not converged:
                operation.failure_reason = (reason or "the cluster failed to converge")[:2048]
            self.report(session, operation, "Success" if converged else "Failure")
        if not converged:
            alert_undelivered_changes(session, cluster, generation, reason, self.settings.accepted_change_retry_seconds)
        subscription = lock_subscription(session, cluster.subscription_id)
        if (
            converged
            and subscription.status == SubscriptionStatus.PENDING_FULFILLMENT_START
            and offer_activation(session, subscription.offer_id) == ActivationMode.WHEN_READY
        ):
            self.activate_subscription(session, subscription)

    def activate(self, session: Session, subscription_id: str) -> None:
        """Activate a subscription that is still PendingFulfillmentStart (the "immediately" activation mode)."""
        subscription = lock_subscription(session, subscription_id)
        if subscription.status != SubscriptionStatus.PENDING_FULFILLMENT_START:
            return
        with unknown_to_marketplace_gives_up(f"subscription {subscription_id}"):
            self.activate_subscription(session, subscription)

    def activate_subscription(self, session: Session, subscription: MarketplaceSubscription) -> None:
        """Call activate, confirm with Get Subscription, and follow the status Marketplace reports."""
        client = self._fulfillment_client()
        client.activate(subscription.id, subscription.plan_id, subscription.quantity)
        remote = client.get_subscription(subscription.id)
        target = known_status(remote.status)
        record_audit_event(
            session,
            actor=WORKER_ACTOR,
            action=AuditAction.SUBSCRIPTION_ACTIVATED,
            subject_type="marketplace_subscription",
            subject_id=subscription.id,
            tenant_id=subscription.tenant_id,
            outcome=AuditOutcome.SUCCESS if target == SubscriptionStatus.SUBSCRIBED else AuditOutcome.FAILURE,
            details={"marketplace_status": remote.status},
        )
        if target is not None:
            transition_subscription(session, subscription, target, actor=WORKER_ACTOR, reason="activated")

    def reconcile_requested(self, session: Session, report_id: int) -> None:
        """A reconciliation an operator forced through the API: its report row is already written."""
        report_row = session.get(MarketplaceReconciliationReport, report_id)
        if report_row is None or report_row.finished_at is not None:
            return
        self.reconcile(session, report_row)

    def reconcile_scheduled(self, session: Session) -> None:
        """The periodic reconciliation: starts its own report."""
        self.reconcile(session, start_report(session, "schedule"))

    def reconcile(self, session: Session, report_row: MarketplaceReconciliationReport) -> None:
        """List everything from Marketplace first, then repair in this transaction and write the report.

        Any failure, expected or not, ends in a failed report naming the error, never in a retried task or a report
        that says completed. A subscription whose repair fails is rolled back to its savepoint and named; the others
        are repaired and the report is committed.
        """
        client = self._fulfillment_client()
        listed_at = utc_now()
        try:
            remote_subscriptions = client.list_subscriptions()
            pending = {
                remote.id: client.list_pending_operations(remote.id)
                for remote in remote_subscriptions
                if remote.status != SubscriptionStatus.UNSUBSCRIBED
            }
        except Exception as error:  # every failure is the report's, whatever its class
            _fail_report(session, report_row, "could not read Marketplace", error)
            return
        redrive_before = utc_now() - timedelta(seconds=self.settings.marketplace_operation_redrive_after_seconds)
        changes: list[dict[str, Any]] = []
        failures: list[str] = []
        for remote in remote_subscriptions:
            # Each subscription's repairs in a savepoint: one that fails is rolled back alone and named in the
            # report; the others are still repaired.
            try:
                with session.begin_nested():
                    repaired = reconcile_subscription(
                        session,
                        remote,
                        pending.get(remote.id, []),
                        actor=WORKER_ACTOR,
                        redrive_before=redrive_before,
                        listed_at=listed_at,
                    )
            except Exception as error:
                text = f"{type(error).__name__}: {error.message if isinstance(error, ControlPlaneError) else error}"
                logger.warning(
                    "reconciliation could not repair a subscription",
                    exc_info=error,
                    extra={"subscription_id": remote.id},
                )
                changes.append({"subscription_id": remote.id, "change": "repair_failed", "error": text[:512]})
                failures.append(f"subscription {remote.id}: {text}")
                continue
            changes.extend(repaired)
        finish_report(
            session,
            report_row,
            changes=changes,
            subscriptions_seen=len(remote_subscriptions),
            operations_seen=sum(len(operations) for operations in pending.values()),
            error=f"could not repair {len(failures)} subscription(s); first: {failures[0]}" if failures else None,
        )
        logger.info("reconciled with Marketplace", extra={"report_id": report_row.id, "changes": len(changes)})


def alert_undelivered_changes(
    session: Session, cluster: Cluster, generation: int, reason: str | None, retry_in_seconds: float
) -> None:
    """The cluster failed to apply changes Marketplace already accepted: alert operators and keep trying.

    The customer is billed for the new plan or quantity from the verdict on, so this is an incident, not a
    refusal: an audit event for the operators (exported to Log Analytics), the failed cluster on the stuck-work
    page, and another attempt after `retry_in_seconds` (CP_ACCEPTED_CHANGE_RETRY_SECONDS), repeated until it
    converges or an operator acts.
    """
    if cluster.subscription_id is None:
        return
    operations = undelivered_accepted_changes(session, cluster.subscription_id, cluster.observed_generation)
    if not operations:
        return
    record_audit_event(
        session,
        actor=WORKER_ACTOR,
        action=AuditAction.SUBSCRIPTION_ACCEPTED_CHANGE_NOT_APPLIED,
        subject_type="marketplace_subscription",
        subject_id=cluster.subscription_id,
        tenant_id=cluster.tenant_id,
        outcome=AuditOutcome.FAILURE,
        details={
            "cluster_id": cluster.id,
            "generation": generation,
            "reason": reason,
            "operations": [{"id": operation.id, "action": operation.action} for operation in operations],
            "alert": "operator",
            "retry_in_seconds": retry_in_seconds,
        },
    )
    logger.error(
        "a change Marketplace accepted could not be applied; retrying",
        extra={"cluster_id": cluster.id, "generation": generation, "retry_in_seconds": retry_in_seconds},
    )
    enqueue(session, RetryAcceptedChange(cluster_id=cluster.id, generation=generation), delay_seconds=retry_in_seconds)


def retry_accepted_change(session: Session, cluster_id: str, generation: int) -> None:
    """Another attempt at a change Marketplace accepted, unless the cluster has moved on (retried or converged)."""
    cluster = session.get(Cluster, cluster_id)
    if cluster is None or cluster.status != ClusterStatus.FAILED:
        return  # an operator retried it, or it converged meanwhile: that chain of attempts goes on by itself
    if cluster.observed_generation >= generation:
        return
    retry_failed_cluster(
        session,
        cluster_id,
        actor=WORKER_ACTOR,
        reason=f"Marketplace accepted the change of generation {generation} and bills it; trying again",
    )


def _fail_report(session: Session, report_row: MarketplaceReconciliationReport, stage: str, error: Exception) -> None:
    message = error.message if isinstance(error, ControlPlaneError) else str(error)
    text = f"{stage}: {type(error).__name__}: {message}"
    logger.warning("reconciliation failed", exc_info=error, extra={"report_id": report_row.id, "error": text})
    finish_report(session, report_row, changes=[], subscriptions_seen=0, operations_seen=0, error=text)
