"""The landing page's progress view: where a purchase stands, in words a customer can act on.

The state is computed from our rows (subscription, cluster) and the audit trail; each state says whether more will
happen on its own (the page keeps polling) or not (terminal: ready, failed, refused, ended, or waiting on the
customer), and who must act and how. Audit action codes never reach the page: every line gets a human label.
"""

from __future__ import annotations

from enum import StrEnum

from sqlmodel import Session, select

from core.arm_templates.steps import FACADE_CLUSTER_STEPS
from core.audit.actions import AuditAction
from core.audit.models import AuditEvent, AuditOutcome
from core.audit.queries import events_about
from core.audit.sentences import STATUS_NAMES, STEP_NAMES, sentence_of
from core.clusters.failure_advice import WhoMustAct, failure_advice
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import DeploymentState
from core.clusters.step_history import latest_step_states, typical_step_seconds
from core.errors import NotFound
from core.subscriptions.models import MarketplaceSubscription, SubscriptionStatus
from core.subscriptions.schemas import ProgressLine, ProgressStep, PurchaseProgress

MAX_PROGRESS_EVENTS = 500


class ProgressState(StrEnum):
    """Where a purchase stands, as the customer sees it."""

    AWAITING_CHOICES = "awaiting_choices"
    PROVISIONING = "provisioning"
    ACTIVATING = "activating"
    READY = "ready"
    FAILED = "failed"
    REFUSED = "refused"
    SUSPENDED = "suspended"
    ENDED = "ended"


class StepState(StrEnum):
    """Where one set-up step stands."""

    DONE = "done"
    RUNNING = "running"
    FAILED = "failed"
    WAITING = "waiting"


# Nothing more happens without someone acting: the page stops polling.
TERMINAL_STATES = frozenset(
    {
        ProgressState.AWAITING_CHOICES,
        ProgressState.READY,
        ProgressState.FAILED,
        ProgressState.REFUSED,
        ProgressState.SUSPENDED,
        ProgressState.ENDED,
    }
)
STEP_STATES = {
    DeploymentState.SUCCEEDED: StepState.DONE,
    DeploymentState.RUNNING: StepState.RUNNING,
    DeploymentState.FAILED: StepState.FAILED,
}
NO_HISTORY = "no typical time yet: we have not completed this step before"


def purchase_progress(
    session: Session, subscription_id: str, entra_tenant_id: str, *, application_id: str | None = None
) -> PurchaseProgress:
    """The progress view; NotFound unless the subscription is the caller tenant's (purchaser or beneficiary).

    `application_id` (the control-plane app) is named in the fix when Azure refused it access.
    """
    subscription = session.get(MarketplaceSubscription, subscription_id)
    if subscription is None or entra_tenant_id not in {
        subscription.beneficiary_tenant_id,
        subscription.purchaser_tenant_id,
    }:
        raise NotFound("subscription not found", details={"subscription_id": subscription_id})
    cluster = session.exec(select(Cluster).where(Cluster.subscription_id == subscription_id)).first()
    events = _events(session, subscription_id, cluster)
    activation_refused = any(
        event.action == AuditAction.SUBSCRIPTION_ACTIVATED and event.outcome != AuditOutcome.SUCCESS for event in events
    )
    state = _state(subscription, cluster, activation_refused)
    headline, explanation, who, how = _words(state, subscription, cluster, application_id)
    terminal = state in TERMINAL_STATES
    return PurchaseProgress(
        subscription_id=subscription_id,
        subscription_status=subscription.status,
        cluster_status=cluster.status if cluster else None,
        done=terminal,
        state=state.value,
        terminal=terminal,
        headline=headline,
        explanation=explanation,
        who_must_act=who.value,
        what_to_do=how,
        status_label=STATUS_NAMES.get(subscription.status, subscription.status),
        current_step=_current_step(cluster),
        steps=_steps(session, cluster),
        events=[
            ProgressLine(occurred_at=event.occurred_at, action=event.action, outcome=event.outcome, label=label(event))
            for event in events
        ],
    )


def _state(subscription: MarketplaceSubscription, cluster: Cluster | None, activation_refused: bool) -> ProgressState:
    status = subscription.status
    if status == SubscriptionStatus.UNSUBSCRIBED:
        return ProgressState.REFUSED if subscription.activated_at is None else ProgressState.ENDED
    if status == SubscriptionStatus.SUSPENDED:
        return ProgressState.SUSPENDED
    if activation_refused and status == SubscriptionStatus.PENDING_FULFILLMENT_START:
        return ProgressState.REFUSED
    if cluster is None:
        return ProgressState.AWAITING_CHOICES
    if cluster.status == ClusterStatus.FAILED:
        return ProgressState.FAILED
    if cluster.status == ClusterStatus.READY:
        if status == SubscriptionStatus.PENDING_FULFILLMENT_START:
            return ProgressState.ACTIVATING
        return ProgressState.READY
    return ProgressState.PROVISIONING


def _words(
    state: ProgressState, subscription: MarketplaceSubscription, cluster: Cluster | None, application_id: str | None
) -> tuple[str, str, WhoMustAct, str]:
    """Headline, what happened, who must act, and how."""
    if state == ProgressState.AWAITING_CHOICES:
        return (
            "Your purchase is waiting for its deployment choices",
            "Azure Marketplace has your purchase, but the cluster's region and Azure subscription were never chosen.",
            WhoMustAct.CUSTOMER,
            'Open the offer in the Azure portal and choose "Configure account" to pick them.',
        )
    if state == ProgressState.PROVISIONING:
        return (
            "We are setting up your cluster",
            "This usually takes a few minutes. This page updates itself.",
            WhoMustAct.NOBODY,
            "Nothing: you can close this page and come back later.",
        )
    if state == ProgressState.ACTIVATING:
        return (
            "Your cluster is ready; we are activating your subscription",
            "Azure Marketplace starts billing once it confirms the activation.",
            WhoMustAct.NOBODY,
            "Nothing: this page updates itself.",
        )
    if state == ProgressState.READY:
        return (
            "Your cluster is ready",
            f"Its endpoint is {cluster.endpoint_fqdn}." if cluster and cluster.endpoint_fqdn else "It is running.",
            WhoMustAct.NOBODY,
            "Connect through the Private Link service; the portal shows its alias and your keys.",
        )
    if state == ProgressState.FAILED and cluster is not None:
        advice = failure_advice(cluster, application_id)
        return advice.headline, advice.explanation, advice.who_must_act, advice.what_to_do
    if state == ProgressState.REFUSED:
        return (
            "Azure Marketplace did not activate this purchase",
            "The purchase was cancelled or refused in Azure Marketplace before the subscription started, so no "
            "cluster will be set up and nothing is billed.",
            WhoMustAct.CUSTOMER,
            "Buy the offer again in Azure Marketplace if you still want it.",
        )
    if state == ProgressState.SUSPENDED:
        return (
            "Your subscription is suspended",
            "Azure Marketplace suspended it (usually an unpaid invoice); the cluster is stopped and its data kept.",
            WhoMustAct.CUSTOMER,
            "Settle the payment in the Azure portal; the cluster starts again when Marketplace reinstates it.",
        )
    return (
        "Your subscription has ended",
        "It was cancelled in Azure Marketplace; the cluster is removed after the retention period.",
        WhoMustAct.NOBODY,
        "Nothing, unless you want to buy the offer again.",
    )


def _steps(session: Session, cluster: Cluster | None) -> list[ProgressStep]:
    """The set-up steps in order, each with its state and how long it usually takes (from our own history)."""
    names = [step.name for step in FACADE_CLUSTER_STEPS]
    typical = typical_step_seconds(session, names)
    states = latest_step_states(session, cluster.id) if cluster is not None else {}
    ready = cluster is not None and cluster.status == ClusterStatus.READY
    steps = []
    for name in names:
        deployment = states.get(name)
        state = StepState.DONE if ready else STEP_STATES[deployment] if deployment else StepState.WAITING
        seconds = typical.get(name)
        steps.append(
            ProgressStep(
                name=STEP_NAMES[name],
                state=state.value,
                typical_seconds=seconds,
                typical=NO_HISTORY if seconds is None else f"usually {duration_words(seconds)}",
            )
        )
    return steps


def duration_words(seconds: float) -> str:
    """A duration as people say it: "under 10 seconds", "about 40 seconds", "about 3 minutes", "about 2 hours"."""
    if seconds < 10:
        return "under 10 seconds"
    if seconds < 90:
        return f"about {round(seconds / 10) * 10} seconds"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} minutes"
    return f"about {round(seconds / 3600)} hours"


def _current_step(cluster: Cluster | None) -> str | None:
    if cluster is None or cluster.current_step is None:
        return None
    return STEP_NAMES.get(cluster.current_step, "the cluster")


def label(event: AuditEvent) -> str:
    """A sentence for one audit event; never its code (the one mapping is core.audit.sentences)."""
    return sentence_of(event).text


def _events(session: Session, subscription_id: str, cluster: Cluster | None) -> list[AuditEvent]:
    subjects = [("marketplace_subscription", subscription_id)]
    if cluster is not None:
        subjects.append(("cluster", cluster.id))
    return events_about(session, subjects, limit=MAX_PROGRESS_EVENTS)
