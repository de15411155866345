"""The verdict on a ChangePlan or ChangeQuantity: accept or refuse, from what we hold locally.

Marketplace accepts these operations on its own 10 seconds after the webhook unless the publisher refuses
them by then, so the verdict reads only our database (catalog, capacity samples, subscription state) and
never waits for ARM or for the cluster to converge. Nothing here talks to Marketplace or changes state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import Session, col, select

from core.audit.actions import AuditAction
from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.catalog.models import Plan
from core.clusters.models import Cluster
from core.subscriptions.models import (
    MarketplaceOperation,
    MarketplaceSubscription,
    OperationAction,
    OperationState,
    SubscriptionStatus,
)
from core.usage.models import UsageSample

CAPACITY_DIMENSION = "capacity_tib"


class VerdictOutcome(StrEnum):
    ACCEPT = "accept"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Verdict:
    """What to tell Marketplace, and why when it is a refusal (the reason is shown to operators and kept)."""

    outcome: VerdictOutcome
    reason: str | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome == VerdictOutcome.ACCEPT


ACCEPT = Verdict(VerdictOutcome.ACCEPT)


def refuse(reason: str) -> Verdict:
    return Verdict(VerdictOutcome.REFUSE, reason)


def catalog_plan(session: Session, offer_id: str, plan_id: str | None) -> Plan | None:
    """The catalog's plan of an offer, or None."""
    if not plan_id:
        return None
    return session.exec(select(Plan).where(Plan.offer_id == offer_id, Plan.plan_id == plan_id)).first()


def stored_capacity_tib(session: Session, cluster_id: str) -> UsageSample | None:
    """The cluster's latest capacity sample: what it stores now (the latest counts, not the largest)."""
    return session.exec(
        select(UsageSample)
        .where(UsageSample.cluster_id == cluster_id, UsageSample.dimension_id == CAPACITY_DIMENSION)
        .order_by(col(UsageSample.sampled_at).desc())
        .limit(1)
    ).first()


def decide_change(
    session: Session,
    subscription: MarketplaceSubscription,
    cluster: Cluster | None,
    *,
    plan_id: str,
    quantity: int,
) -> Verdict:
    """Accept or refuse moving `subscription` to `plan_id` x `quantity`.

    Refused: a subscription already unsubscribed (its cluster is being deleted), a plan the offer's catalog
    does not hold, a quantity outside the plan's range, and a change that reduces capacity below what the
    cluster stores now. A change that does not reduce capacity is always accepted, whatever the usage: an
    upgrade is how a customer over capacity gets out of it.
    """
    unsubscribed = subscription.status == SubscriptionStatus.UNSUBSCRIBED
    if unsubscribed or (cluster is not None and cluster.desired_deleted):
        return refuse("the subscription is unsubscribed; its cluster is being deleted")
    plan = catalog_plan(session, subscription.offer_id, plan_id)
    if plan is None:
        return refuse(f"plan {plan_id} is not in the catalog of offer {subscription.offer_id}")
    if not plan.min_quantity <= quantity <= plan.max_quantity:
        return refuse(f"quantity {quantity} is outside {plan.min_quantity}..{plan.max_quantity} for plan {plan_id}")
    capacity = plan.capacity_tib_per_unit * quantity
    current = catalog_plan(session, subscription.offer_id, subscription.plan_id)
    if current is not None and capacity >= current.capacity_tib_per_unit * (subscription.quantity or 1):
        return ACCEPT
    if cluster is None:
        return ACCEPT  # nothing stored yet
    latest = stored_capacity_tib(session, cluster.id)
    if latest is not None and latest.value > capacity:
        return refuse(
            f"plan {plan_id} x {quantity} holds {capacity:g} TiB but the cluster stores {latest.value:g} TiB "
            f"(sampled {latest.sampled_at.isoformat()}); free capacity before downgrading"
        )
    return ACCEPT


def refusal_at_intake(
    session: Session, *, subscription_id: str, action: str, status: str, plan_id: str | None, quantity: int | None
) -> str | None:
    """Why a ChangePlan/ChangeQuantity webhook is refused in its own answer (a 4xx), or None to accept it.

    Marketplace takes a 4xx answer to these webhooks as the publisher's refusal, so a refusal decided here is on
    time whatever the queues hold. Only refusals are decided here, from our own rows; acceptance needs no answer
    but the 200 (Marketplace accepts after 10 s), and the worker still reads the operation back from Marketplace
    before it changes anything. A subscription we do not hold yet is never refused here.
    """
    changes = (OperationAction.CHANGE_PLAN.value, OperationAction.CHANGE_QUANTITY.value)
    if action not in changes or status != "InProgress":
        return None
    subscription = session.get(MarketplaceSubscription, subscription_id)
    if subscription is None:
        return None
    cluster = session.exec(select(Cluster).where(Cluster.subscription_id == subscription_id)).first()
    verdict = decide_change(
        session,
        subscription,
        cluster,
        plan_id=plan_id or subscription.plan_id,
        quantity=quantity or subscription.quantity or 1,
    )
    return None if verdict.accepted else verdict.reason


def record_intake_refusal(session: Session, operation_id: str, reason: str) -> None:
    """Keep the reason of a refusal answered as the webhook's 4xx on the operation, for the worker and operators."""
    operation = session.get(MarketplaceOperation, operation_id)
    if operation is None or operation.state != OperationState.RECEIVED or operation.failure_reason:
        return
    operation.failure_reason = reason[:2048]
    session.add(operation)
    subscription = session.get(MarketplaceSubscription, operation.subscription_id)
    record_audit_event(
        session,
        actor="system:webhook-intake",
        action=AuditAction.OPERATION_REFUSED_AT_INTAKE,
        subject_type="marketplace_operation",
        subject_id=operation_id,
        tenant_id=subscription.tenant_id if subscription else None,
        outcome=AuditOutcome.REFUSED,
        details={"reason": reason, "subscription_id": operation.subscription_id, "answered": 400},
    )
