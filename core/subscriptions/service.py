"""The Marketplace subscription lifecycle: purchases, webhooks, operations and their effect on the desired spec.

Nothing here talks to Marketplace: callers (the API, the workers) fetch what Marketplace says with the
fulfilment client and hand it in. Every function flushes; the request or task boundary commits.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from core.audit.actions import AuditAction
from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.catalog.models import ActivationMode, Offer
from core.clock import utc_now
from core.clusters.models import Cluster
from core.clusters.ownership import ResourceGroupNotOwned, group_in_use
from core.clusters.service import change_desired_spec, request_cluster
from core.db import lock_rows
from core.errors import Conflict, Forbidden, NotFound
from core.marketplace.fulfillment_client import FulfillmentOperation, FulfillmentSubscription, ResolvedPurchase
from core.outbox.service import enqueue
from core.subscriptions.errors import (
    PurchaseTokenAlreadyUsed,
    PurchaseWithoutBeneficiary,
    SubscriptionAlreadyPlaced,
    SubscriptionAlreadySetUp,
    SubscriptionCancelled,
)
from core.subscriptions.models import (
    OPERATION_STATES,
    SUBSCRIPTION_STATES,
    MarketplaceOperation,
    MarketplaceSubscription,
    OperationAction,
    OperationState,
    SubscriptionStatus,
)
from core.subscriptions.schemas import DeploymentChoices
from core.subscriptions.term import record_term_change
from core.subscriptions.verdict import decide_change
from core.task_payloads import ActivateSubscription, ProcessMarketplaceOperation
from core.tenants.service import get_or_create_tenant

WORKER_ACTOR = "system:subscription-controller"
# Actions Marketplace waits on: we PATCH Success or Failure as soon as the verdict is decided, never after
# convergence (Marketplace accepts ChangePlan/ChangeQuantity on its own 10 s after the webhook).
ACTIONS_AWAITING_REPORT = frozenset(
    {OperationAction.CHANGE_PLAN, OperationAction.CHANGE_QUANTITY, OperationAction.REINSTATE}
)
MARKETPLACE_FAILED_STATUSES = frozenset({"Failed", "Conflict"})
# Locking reads use populate_existing: a row read earlier in the same session would otherwise keep its
# stale attributes although the locked SELECT returned the current version.


def token_fingerprint(marketplace_token: str) -> str:
    """SHA-256 of a landing token: what we store to refuse a second confirmation with it."""
    return hashlib.sha256(marketplace_token.encode()).hexdigest()


def find_subscription(session: Session, subscription_id: str) -> MarketplaceSubscription | None:
    """Our row for a Marketplace subscription id, or None."""
    return session.get(MarketplaceSubscription, subscription_id)


def lock_subscription(session: Session, subscription_id: str) -> MarketplaceSubscription:
    """The subscription row, locked until the transaction ends."""
    subscription = session.exec(
        lock_rows(
            select(MarketplaceSubscription).where(MarketplaceSubscription.id == subscription_id)
        ).execution_options(populate_existing=True)
    ).first()
    if subscription is None:
        raise NotFound("subscription not found", details={"subscription_id": subscription_id})
    return subscription


def cluster_of(session: Session, subscription_id: str) -> Cluster | None:
    """The cluster that serves a subscription, if one was requested, locked until the transaction ends."""
    return session.exec(
        lock_rows(select(Cluster).where(Cluster.subscription_id == subscription_id)).execution_options(
            populate_existing=True
        )
    ).first()


def token_already_confirmed(session: Session, marketplace_token: str) -> bool:
    """True when this landing token already confirmed a purchase."""
    fingerprint = token_fingerprint(marketplace_token)
    statement = select(MarketplaceSubscription.id).where(MarketplaceSubscription.confirmed_token_sha256 == fingerprint)
    return session.exec(statement).first() is not None


def offer_activation(session: Session, offer_id: str) -> ActivationMode:
    """When the offer activates its subscriptions (catalog: offers.activation)."""
    offer = session.get(Offer, offer_id)
    if offer is None:
        raise NotFound("offer not in the catalog", details={"offer_id": offer_id})
    return ActivationMode(offer.activation)


def check_signed_in_party(purchase: ResolvedPurchase, signed_in_tenant_id: str) -> None:
    """Only someone from the beneficiary's or the purchaser's tenant may see or confirm a purchase."""
    allowed = {purchase.subscription.beneficiary.tenant_id, purchase.subscription.purchaser.tenant_id} - {None}
    if signed_in_tenant_id not in allowed:
        raise Forbidden(
            "the signed-in account belongs to neither the purchaser's nor the beneficiary's tenant",
            details={"subscription_id": purchase.id},
        )


def record_purchase(
    session: Session,
    purchase: ResolvedPurchase,
    *,
    marketplace_token: str,
    choices: DeploymentChoices | None,
    actor: str,
) -> MarketplaceSubscription:
    """Record a confirmed purchase with its cluster's desired spec, in the caller's transaction.

    A subscription a reconciliation adopted before the landing page was opened (no cluster yet) is completed
    like a fresh one. Refuses a subscription that already has its cluster (SubscriptionAlreadySetUp), a token that
    confirmed another subscription (PurchaseTokenAlreadyUsed) and a purchase without a beneficiary tenant
    (PurchaseWithoutBeneficiary). Enqueues the activation at once when the offer activates immediately;
    otherwise the cluster's convergence activates.

    Without choices (a purchaser of another tenant than the beneficiary's) the purchase is recorded waiting
    for placement: no cluster and no activation until an admin of the beneficiary's tenant completes it.
    """
    remote = purchase.subscription
    beneficiary_tenant_id = remote.beneficiary.tenant_id
    if not beneficiary_tenant_id:
        raise PurchaseWithoutBeneficiary(
            "Marketplace named no beneficiary tenant for this purchase", details={"subscription_id": purchase.id}
        )
    adopted = find_subscription(session, purchase.id) is not None
    existing = lock_subscription(session, purchase.id) if adopted else None
    if existing is not None and not awaits_deployment_choices(session, existing):
        raise SubscriptionAlreadySetUp("this subscription is already set up", details={"subscription_id": purchase.id})
    if token_already_confirmed(session, marketplace_token):
        raise PurchaseTokenAlreadyUsed("this purchase token was already used", details={"subscription_id": purchase.id})
    held_by = group_in_use(session, choices.placement) if choices is not None else None
    if held_by is not None and choices is not None:
        # Checked again in this transaction: a confirmation that placed a cluster there since ARM was asked.
        raise ResourceGroupNotOwned(
            f"Resource group '{choices.placement.resource_group}' already holds another VAST cluster.",
            details={"resource_group": choices.placement.resource_group},
        )
    activation = offer_activation(session, purchase.offer_id)
    tenant = get_or_create_tenant(session, beneficiary_tenant_id)
    if existing is None:
        subscription = MarketplaceSubscription(
            id=purchase.id,
            tenant_id=tenant.id,
            offer_id=purchase.offer_id,
            confirmed_token_sha256=token_fingerprint(marketplace_token),
            **subscription_fields(remote),
        )
    else:
        # Adopted by a reconciliation: take what Marketplace says now (the status moves only by transitions).
        subscription = existing
        for name, value in subscription_fields(remote).items():
            setattr(subscription, name, value)
        subscription.tenant_id = tenant.id
        subscription.confirmed_token_sha256 = token_fingerprint(marketplace_token)
        subscription.updated_at = utc_now()
    quantity = purchase.quantity or remote.quantity or 1
    subscription.placement_pending = choices is None
    session.add(subscription)
    session.flush()
    if choices is None:
        record_audit_event(
            session,
            actor=actor,
            action=AuditAction.SUBSCRIPTION_PURCHASE_RECORDED_AWAITING_PLACEMENT,
            subject_type="marketplace_subscription",
            subject_id=subscription.id,
            tenant_id=tenant.id,
            after={"plan_id": subscription.plan_id, "quantity": quantity, "status": subscription.status},
            details={
                "purchaser_tenant_id": remote.purchaser.tenant_id,
                "beneficiary_tenant_id": beneficiary_tenant_id,
            },
        )
        return subscription
    _place(session, subscription, choices, quantity=quantity, actor=actor, activation=activation)
    record_audit_event(
        session,
        actor=actor,
        action=AuditAction.SUBSCRIPTION_PURCHASE_CONFIRMED,
        subject_type="marketplace_subscription",
        subject_id=subscription.id,
        tenant_id=tenant.id,
        after={"plan_id": subscription.plan_id, "quantity": quantity, "status": subscription.status},
        details={"activation": activation.value, "adopted_before_landing": adopted},
    )
    return subscription


def complete_placement(
    session: Session, subscription_id: str, *, entra_tenant_id: str, choices: DeploymentChoices, actor: str
) -> MarketplaceSubscription:
    """The beneficiary's admin chooses where the cluster of a purchase made by another tenant goes.

    NotFound unless the subscription is the caller tenant's as beneficiary; SubscriptionAlreadyPlaced once it is
    placed, SubscriptionCancelled once it is unsubscribed.
    """
    subscription = lock_subscription(session, subscription_id)
    if subscription.beneficiary_tenant_id.lower() != entra_tenant_id.lower():
        raise NotFound("subscription not found", details={"subscription_id": subscription_id})
    if not subscription.placement_pending or cluster_of(session, subscription_id) is not None:
        raise SubscriptionAlreadyPlaced(
            "this subscription's cluster is already placed", details={"subscription_id": subscription_id}
        )
    if subscription.status == SubscriptionStatus.UNSUBSCRIBED:
        raise SubscriptionCancelled("this subscription was cancelled", details={"subscription_id": subscription_id})
    if group_in_use(session, choices.placement) is not None:
        # Checked again in this transaction: a confirmation that placed a cluster there since ARM was asked.
        raise ResourceGroupNotOwned(
            f"Resource group '{choices.placement.resource_group}' already holds another VAST cluster.",
            details={"resource_group": choices.placement.resource_group},
        )
    activation = offer_activation(session, subscription.offer_id)
    subscription.placement_pending = False
    subscription.updated_at = utc_now()
    _place(session, subscription, choices, quantity=subscription.quantity or 1, actor=actor, activation=activation)
    record_audit_event(
        session,
        actor=actor,
        action=AuditAction.SUBSCRIPTION_PLACEMENT_COMPLETED,
        subject_type="marketplace_subscription",
        subject_id=subscription.id,
        tenant_id=subscription.tenant_id,
        after={"region": choices.placement.region, "azure_subscription_id": choices.placement.azure_subscription_id},
        details={"activation": activation.value},
    )
    return subscription


def _place(
    session: Session,
    subscription: MarketplaceSubscription,
    choices: DeploymentChoices,
    *,
    quantity: int,
    actor: str,
    activation: ActivationMode,
) -> None:
    session.add(subscription)
    session.flush()
    request_cluster(
        session,
        tenant_id=subscription.tenant_id,
        subscription_id=subscription.id,
        plan_id=subscription.plan_id,
        quantity=quantity,
        placement=choices.placement,
        private_link=choices.private_link,
        key_policy=choices.key_policy,
        actor=actor,
    )
    if activation == ActivationMode.IMMEDIATELY and subscription.status == SubscriptionStatus.PENDING_FULFILLMENT_START:
        enqueue(session, ActivateSubscription(subscription_id=subscription.id))


def awaits_deployment_choices(session: Session, subscription: MarketplaceSubscription) -> bool:
    """True when the landing page should (still) ask for deployment choices: a live subscription without a cluster.

    That is a subscription adopted from Marketplace (by a reconciliation) before the customer opened the landing
    page. Suspended and Unsubscribed ones get no cluster from the landing page.
    """
    if subscription.status not in (
        SubscriptionStatus.PENDING_FULFILLMENT_START,
        SubscriptionStatus.SUBSCRIBED,
    ):
        return False
    statement = select(Cluster.id).where(Cluster.subscription_id == subscription.id)
    return session.exec(statement).first() is None


def subscription_fields(remote: FulfillmentSubscription) -> dict[str, Any]:
    """Our columns from Marketplace's representation (status excepted: it only moves through transitions)."""
    return {
        "name": remote.name[:256],
        "plan_id": remote.plan_id,
        "quantity": remote.quantity,
        "purchaser_tenant_id": remote.purchaser.tenant_id,
        "purchaser_object_id": remote.purchaser.object_id,
        "purchaser_email": remote.purchaser.email_id,
        "beneficiary_tenant_id": remote.beneficiary.tenant_id or "",
        "beneficiary_object_id": remote.beneficiary.object_id,
        "beneficiary_email": remote.beneficiary.email_id,
        "term_unit": remote.term.term_unit,
        "term_start": remote.term.start_date,
        "term_end": remote.term.end_date,
        "auto_renew": remote.auto_renew,
        "is_test": remote.is_test,
        "is_free_trial": remote.is_free_trial,
        "marketplace_snapshot": remote.model_dump(mode="json", by_alias=True),
    }


def adopt_subscription(session: Session, remote: FulfillmentSubscription, *, actor: str) -> MarketplaceSubscription:
    """Record a subscription Marketplace holds and we did not (no landing-page visit yet): no cluster."""
    existing = find_subscription(session, remote.id)
    if existing is not None:
        return existing
    tenant = get_or_create_tenant(session, remote.beneficiary.tenant_id or "unknown")
    subscription = MarketplaceSubscription(
        id=remote.id, tenant_id=tenant.id, offer_id=remote.offer_id, **subscription_fields(remote)
    )
    session.add(subscription)
    session.flush()
    record_audit_event(
        session,
        actor=actor,
        action=AuditAction.SUBSCRIPTION_ADOPTED,
        subject_type="marketplace_subscription",
        subject_id=subscription.id,
        tenant_id=tenant.id,
        details={"marketplace_status": remote.status},
    )
    target = known_status(remote.status)
    if target is not None and target != SubscriptionStatus.PENDING_FULFILLMENT_START:
        transition_subscription(session, subscription, target, actor=actor, reason="adopted from Marketplace")
    return subscription


def transition_subscription(
    session: Session, subscription: MarketplaceSubscription, target: SubscriptionStatus, *, actor: str, reason: str
) -> bool:
    """Move the subscription to `target`; an illegal move is refused and recorded (outcome refused), not applied."""
    current = SubscriptionStatus(subscription.status)
    if current == target:
        return True
    if not SUBSCRIPTION_STATES.can(current, target):
        record_audit_event(
            session,
            actor=actor,
            action=AuditAction.SUBSCRIPTION_TRANSITION,
            subject_type="marketplace_subscription",
            subject_id=subscription.id,
            tenant_id=subscription.tenant_id,
            outcome=AuditOutcome.REFUSED,
            before={"status": current.value},
            after={"status": target.value},
            details={"reason": reason, "refused": f"{current.value} -> {target.value} is not allowed"},
        )
        return False
    subscription.status = target
    subscription.updated_at = utc_now()
    if target == SubscriptionStatus.SUBSCRIBED and subscription.activated_at is None:
        subscription.activated_at = subscription.updated_at
    record_term_change(session, subscription, current, target, subscription.updated_at)
    session.add(subscription)
    session.flush()
    record_audit_event(
        session,
        actor=actor,
        action=AuditAction.SUBSCRIPTION_TRANSITION,
        subject_type="marketplace_subscription",
        subject_id=subscription.id,
        tenant_id=subscription.tenant_id,
        before={"status": current.value},
        after={"status": target.value},
        details={"reason": reason},
    )
    return True


def transition_operation(
    session: Session, operation: MarketplaceOperation, target: OperationState, *, actor: str, **details: Any
) -> None:
    """Move an operation through OPERATION_STATES (IllegalTransition otherwise) and audit it."""
    current = OperationState(operation.state)
    OPERATION_STATES.check(current, target)
    operation.state = target
    operation.updated_at = utc_now()
    session.add(operation)
    session.flush()
    record_audit_event(
        session,
        actor=actor,
        action=AuditAction.operation_entered(target.value),
        subject_type="marketplace_operation",
        subject_id=operation.id,
        tenant_id=_tenant_of(session, operation.subscription_id),
        before={"state": current.value},
        after={"state": target.value, "result": operation.result},
        details={"action": operation.action, "subscription_id": operation.subscription_id, **details},
    )


def lock_operation(session: Session, operation_id: str) -> MarketplaceOperation | None:
    """The operation row locked until the transaction ends, or None."""
    return session.exec(
        lock_rows(select(MarketplaceOperation).where(MarketplaceOperation.id == operation_id)).execution_options(
            populate_existing=True
        )
    ).first()


def adopt_operation(session: Session, remote: FulfillmentOperation, *, actor: str) -> MarketplaceOperation:
    """An operation row for an operation Marketplace holds and we never received (a lost webhook)."""
    existing = session.get(MarketplaceOperation, remote.id)
    if existing is not None:
        return existing
    operation = MarketplaceOperation(
        id=remote.id,
        subscription_id=remote.subscription_id,
        activity_id=remote.activity_id,
        action=_known_action(remote.action).value,
        plan_id=remote.plan_id,
        quantity=remote.quantity,
        marketplace_status=remote.status[:32],
        request_source=remote.request_source,
        time_stamp=remote.time_stamp,
    )
    session.add(operation)
    session.flush()
    record_audit_event(
        session,
        actor=actor,
        action=AuditAction.OPERATION_ADOPTED,
        subject_type="marketplace_operation",
        subject_id=operation.id,
        tenant_id=_tenant_of(session, operation.subscription_id),
        details={"action": operation.action, "marketplace_status": remote.status},
    )
    return operation


def verify_operation(
    session: Session, operation: MarketplaceOperation, remote: FulfillmentOperation, *, actor: str
) -> OperationState:
    """Take Marketplace's own word for the operation (never the webhook body alone); mismatches fail it.

    Returns the state the operation is in afterwards (verified or failed).
    """
    operation.attempts += 1
    mismatch = [
        name
        for name, ours, theirs in (
            ("subscriptionId", operation.subscription_id, remote.subscription_id),
            ("action", operation.action, remote.action),
        )
        if ours != theirs
    ]
    operation.marketplace_status = remote.status[:32]
    operation.plan_id = remote.plan_id
    operation.quantity = remote.quantity
    operation.activity_id = remote.activity_id or operation.activity_id
    if mismatch:
        operation.failure_reason = f"the webhook disagrees with Marketplace on {', '.join(mismatch)}"
        transition_operation(session, operation, OperationState.FAILED, actor=actor, mismatch=mismatch)
        return OperationState.FAILED
    if remote.status in MARKETPLACE_FAILED_STATUSES:
        if operation.failure_reason:
            # Our webhook answer (a 4xx with this reason) was the refusal Marketplace followed.
            operation.result = "Failure"
        else:
            operation.failure_reason = (
                f"Marketplace reports the operation {remote.status}: {remote.error_message or ''}"
            )
        transition_operation(session, operation, OperationState.FAILED, actor=actor, marketplace_status=remote.status)
        return OperationState.FAILED
    transition_operation(session, operation, OperationState.VERIFIED, actor=actor, marketplace_status=remote.status)
    return OperationState.VERIFIED


class NextStep(StrEnum):
    """What the worker does after applying an operation."""

    REPORT_SUCCESS = "report_success"
    REPORT_FAILURE = "report_failure"
    DONE = "done"


def apply_operation(
    session: Session,
    operation: MarketplaceOperation,
    *,
    actor: str,
    remote_subscription: FulfillmentSubscription | None = None,
) -> NextStep:
    """Turn a verified operation into a desired-spec change and say what to report to Marketplace.

    ChangePlan/ChangeQuantity -> plan/quantity (or refused: see core.subscriptions.verdict); Suspend -> suspended;
    Reinstate -> not suspended; Unsubscribe -> deleted; Renew -> term from `remote_subscription`. The verdict is
    reported at once; the cluster converges afterwards, and a failure to converge is an operator's incident.
    """
    subscription = lock_subscription(session, operation.subscription_id)
    cluster = cluster_of(session, subscription.id)
    action = OperationAction(operation.action)
    changes: dict[str, Any] = {}
    if action in (OperationAction.CHANGE_PLAN, OperationAction.CHANGE_QUANTITY):
        plan_id = operation.plan_id or subscription.plan_id
        quantity = operation.quantity or subscription.quantity or 1
        verdict = decide_change(session, subscription, cluster, plan_id=plan_id, quantity=quantity)
        if not verdict.accepted:
            operation.failure_reason = verdict.reason
            session.add(operation)
            return NextStep.REPORT_FAILURE
        changes = {"desired_plan_id": plan_id} if action == OperationAction.CHANGE_PLAN else {}
        if action == OperationAction.CHANGE_QUANTITY:
            changes = {"desired_quantity": quantity}
    elif action == OperationAction.SUSPEND:
        transition_subscription(session, subscription, SubscriptionStatus.SUSPENDED, actor=actor, reason="Suspend")
        changes = {"desired_suspended": True}
    elif action == OperationAction.REINSTATE:
        if not transition_subscription(
            session, subscription, SubscriptionStatus.SUBSCRIBED, actor=actor, reason="Reinstate"
        ):
            operation.failure_reason = f"a {subscription.status} subscription cannot be reinstated"
            session.add(operation)
            return NextStep.REPORT_FAILURE
        changes = {"desired_suspended": False}
    elif action == OperationAction.UNSUBSCRIBE:
        transition_subscription(
            session, subscription, SubscriptionStatus.UNSUBSCRIBED, actor=actor, reason="Unsubscribe"
        )
        changes = {"desired_deleted": True}
    elif action == OperationAction.RENEW and remote_subscription is not None:
        subscription.term_unit = remote_subscription.term.term_unit
        subscription.term_start = remote_subscription.term.start_date
        subscription.term_end = remote_subscription.term.end_date
        subscription.auto_renew = remote_subscription.auto_renew
        subscription.updated_at = utc_now()
        session.add(subscription)
    if cluster is not None and changes and not cluster.desired_deleted:
        cluster = change_desired_spec(
            session, cluster.id, actor=actor, reason=f"Marketplace {action.value} {operation.id}", **changes
        )
        operation.desired_generation = cluster.desired_generation
    elif cluster is not None:
        operation.desired_generation = cluster.desired_generation
    transition_operation(
        session,
        operation,
        OperationState.APPLIED,
        actor=actor,
        changes=changes,
        generation=operation.desired_generation,
    )
    return NextStep.REPORT_SUCCESS if action in ACTIONS_AWAITING_REPORT else NextStep.DONE


def mark_reported(
    session: Session, operation: MarketplaceOperation, result: str, *, actor: str, note: str | None = None
) -> None:
    """Record that Marketplace was told `result` (Success/Failure); a Success takes the plan/quantity over."""
    operation.result = result
    session.add(operation)
    if result == "Success":
        subscription = lock_subscription(session, operation.subscription_id)
        if operation.action == OperationAction.CHANGE_PLAN and operation.plan_id:
            subscription.plan_id = operation.plan_id
        elif operation.action == OperationAction.CHANGE_QUANTITY and operation.quantity:
            subscription.quantity = operation.quantity
        subscription.updated_at = utc_now()
        session.add(subscription)
    if OperationState(operation.state) == OperationState.VERIFIED:
        # A refusal is reported straight from verified: it never changed the desired spec.
        transition_operation(session, operation, OperationState.FAILED, actor=actor, reported=result, note=note)
        return
    transition_operation(session, operation, OperationState.REPORTED, actor=actor, reported=result, note=note)


def operations_covered_by(session: Session, subscription_id: str, generation: int) -> list[MarketplaceOperation]:
    """Applied operations waiting for a report whose desired generation the cluster has now reached."""
    statement = lock_rows(
        select(MarketplaceOperation)
        .where(
            MarketplaceOperation.subscription_id == subscription_id,
            MarketplaceOperation.state == OperationState.APPLIED,
            col(MarketplaceOperation.action).in_([action.value for action in ACTIONS_AWAITING_REPORT]),
            col(MarketplaceOperation.desired_generation) <= generation,
        )
        .order_by(col(MarketplaceOperation.received_at))
    ).execution_options(populate_existing=True)
    return list(session.exec(statement).all())


def retry_operation(session: Session, operation_id: str, *, actor: str) -> MarketplaceOperation:
    """Operator retry of a failed operation: back to received, processed again through the outbox."""
    operation = lock_operation(session, operation_id)
    if operation is None:
        raise NotFound("operation not found", details={"operation_id": operation_id})
    if operation.state != OperationState.FAILED:
        raise Conflict(
            f"only failed operations can be retried; this one is {operation.state}",
            details={"operation_id": operation_id, "state": operation.state},
        )
    operation.result = None
    operation.failure_reason = None
    transition_operation(session, operation, OperationState.RECEIVED, actor=actor, retry=True)
    enqueue(
        session,
        ProcessMarketplaceOperation(operation_id=operation.id, subscription_id=operation.subscription_id),
    )
    return operation


def next_step_for_applied(operation: MarketplaceOperation) -> NextStep:
    """For an applied operation driven again (its report was lost or failed): report the verdict now."""
    return NextStep.REPORT_SUCCESS if operation.action in ACTIONS_AWAITING_REPORT else NextStep.DONE


def undelivered_accepted_changes(
    session: Session, subscription_id: str, observed_generation: int
) -> list[MarketplaceOperation]:
    """Operations Marketplace was told Success (and now bills) whose desired generation the cluster has not reached."""
    statement = (
        select(MarketplaceOperation)
        .where(
            MarketplaceOperation.subscription_id == subscription_id,
            MarketplaceOperation.state == OperationState.REPORTED,
            MarketplaceOperation.result == "Success",
            col(MarketplaceOperation.action).in_([action.value for action in ACTIONS_AWAITING_REPORT]),
            col(MarketplaceOperation.desired_generation) > observed_generation,
        )
        .order_by(col(MarketplaceOperation.received_at))
    )
    return list(session.exec(statement).all())


def close_notification(session: Session, operation: MarketplaceOperation, *, actor: str) -> None:
    """Suspend, Unsubscribe and Renew arrive Succeeded: applied is the end, Marketplace expects no PATCH."""
    transition_operation(session, operation, OperationState.REPORTED, actor=actor, note="notification; no PATCH")


def _known_action(value: str) -> OperationAction:
    try:
        return OperationAction(value)
    except ValueError:
        raise Conflict(f"unknown Marketplace action {value!r}", details={"action": value}) from None


def known_status(value: str) -> SubscriptionStatus | None:
    """Marketplace's status as ours, or None for values we do not hold (NotStarted, future ones)."""
    try:
        return SubscriptionStatus(value)
    except ValueError:
        return None


def _tenant_of(session: Session, subscription_id: str) -> str | None:
    subscription = session.get(MarketplaceSubscription, subscription_id)
    return subscription.tenant_id if subscription else None
