"""The landing page's progress view: where a purchase stands, in words a customer can act on.

The state is computed from our rows (subscription, cluster) and the audit trail; each state says whether more will
happen on its own (the page keeps polling) or not (terminal: ready, failed, refused, ended, or waiting on the
customer), and who must act and how. Audit action codes never reach the page: every line gets a human label.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlmodel import Session, select

from core.arm_templates.steps import CLUSTER, DIAGNOSTICS, DNS, FACADE_CLUSTER_STEPS, IDENTITY_KEY_VAULT, PRIVATE_LINK
from core.audit.actions import AuditAction
from core.audit.models import AuditEvent, AuditOutcome
from core.audit.queries import events_about
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


class WhoMustAct(StrEnum):
    """Whom the next move belongs to."""

    NOBODY = "nobody"
    CUSTOMER = "customer"
    PUBLISHER = "publisher"


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
STEP_NAMES = {
    IDENTITY_KEY_VAULT: "managed identity, Key Vault and encryption key",
    CLUSTER: "the cluster's virtual machines",
    PRIVATE_LINK: "the Private Link service",
    DNS: "the DNS records",
    DIAGNOSTICS: "diagnostics",
    "deallocate": "stopping the cluster",
    "start": "starting the cluster",
    "retention": "keeping the data for the retention period",
    "delete-resource-group": "removing the cluster",
}
STATUS_NAMES = {
    SubscriptionStatus.PENDING_FULFILLMENT_START.value: "waiting for activation",
    SubscriptionStatus.SUBSCRIBED.value: "active",
    SubscriptionStatus.SUSPENDED.value: "suspended",
    SubscriptionStatus.UNSUBSCRIBED.value: "cancelled",
}
# ARM error codes that only the customer (the owner of the target Azure subscription) can clear, and how.
CUSTOMER_FIXES = {
    "ArmAccessDenied": "consent to our application in your tenant and give it the Contributor role on the Azure "
    "subscription you chose",
    "AuthorizationFailed": "give our application the Contributor role on the Azure subscription you chose",
    "LinkedAuthorizationFailed": "give our application the Contributor role on the Azure subscription you chose",
    "SubscriptionNotFound": "check that the Azure subscription you chose exists and belongs to your tenant",
    "QuotaExceeded": "raise the virtual machine quota of the chosen region in your Azure subscription",
    "OperationNotAllowed": "raise the virtual machine quota of the chosen region in your Azure subscription",
    "SkuNotAvailable": "ask Azure support to enable the cluster's VM size in the chosen region",
    "RequestDisallowedByPolicy": "ask your Azure administrator to let an Azure Policy allow the cluster's resources",
    "ResourceGroupBeingDeleted": "wait until the resource group you chose is deleted, or tell us another one",
}
STEP_STATES = {
    DeploymentState.SUCCEEDED: StepState.DONE,
    DeploymentState.RUNNING: StepState.RUNNING,
    DeploymentState.FAILED: StepState.FAILED,
}
NO_HISTORY = "no typical time yet: we have not completed this step before"
# Keyed by action; a stored action (a plain string) finds its member's entry, as a StrEnum hashes as its value.
ACTION_LABELS: dict[str, str] = {
    AuditAction.SUBSCRIPTION_ADOPTED: "Purchase found in Azure Marketplace",
    AuditAction.SUBSCRIPTION_PURCHASE_CONFIRMED: "Deployment choices confirmed",
    AuditAction.CLUSTER_REQUESTED: "Cluster requested",
    AuditAction.CLUSTER_FAILED: "Setting up the cluster stopped",
    AuditAction.CLUSTER_RETRY_REQUESTED: "Setting up the cluster started again",
    AuditAction.CLUSTER_DESIRED_SPEC_CHANGED: "Change of plan or size requested",
    AuditAction.SUBSCRIPTION_CLUSTER_CONVERGED: "Cluster ready",
    AuditAction.SUBSCRIPTION_PURCHASE_RECORDED_AWAITING_PLACEMENT: "Purchase recorded; waiting for the beneficiary's "
    "administrator to choose where the cluster goes",
    AuditAction.SUBSCRIPTION_PLACEMENT_COMPLETED: "Deployment choices confirmed by the beneficiary's administrator",
    AuditAction.SUBSCRIPTION_CLUSTER_FAILED: "Setting up the cluster failed",
    AuditAction.CLUSTER_READY: "Every step done: the cluster is running",
    AuditAction.CLUSTER_SUSPENDED: "Cluster stopped",
    AuditAction.CLUSTER_DELETE_RESOURCES_STARTED: "Removing the cluster's resources",
    AuditAction.CLUSTER_SUSPEND_STARTED: "Stopping the cluster",
    AuditAction.CLUSTER_RESUME_STARTED: "Starting the cluster",
    AuditAction.CLUSTER_STOPPED_FOR_RETENTION: "Cluster stopped; data kept for the retention period",
    AuditAction.CLUSTER_DELETE_STARTED: "Removing the cluster",
    AuditAction.CLUSTER_DELETED: "Cluster removed",
    AuditAction.CLUSTER_KEY_ROTATION_REQUESTED: "Key rotation requested",
    AuditAction.CLUSTER_KEY_ROTATION_COMPLETED: "Encryption key rotated",
    AuditAction.CLUSTER_KEY_ROTATION_FAILED: "Key rotation failed (we retry)",
}


def purchase_progress(session: Session, subscription_id: str, entra_tenant_id: str) -> PurchaseProgress:
    """The progress view; NotFound unless the subscription is the caller tenant's (purchaser or beneficiary)."""
    subscription = session.get(MarketplaceSubscription, subscription_id)
    if subscription is None or entra_tenant_id not in {
        subscription.beneficiary_tenant_id,
        subscription.purchaser_tenant_id,
    }:
        raise NotFound("subscription not found", details={"subscription_id": subscription_id})
    cluster = session.exec(select(Cluster).where(Cluster.subscription_id == subscription_id)).first()
    events = _events(session, subscription_id, cluster)
    activation_refused = any(
        event.action == AuditAction.SUBSCRIPTION_ACTIVATED and event.outcome != AuditOutcome.SUCCESS.value
        for event in events
    )
    state = _state(subscription, cluster, activation_refused)
    headline, explanation, who, how = _words(state, subscription, cluster)
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
    if status == SubscriptionStatus.UNSUBSCRIBED.value:
        return ProgressState.REFUSED if subscription.activated_at is None else ProgressState.ENDED
    if status == SubscriptionStatus.SUSPENDED.value:
        return ProgressState.SUSPENDED
    if activation_refused and status == SubscriptionStatus.PENDING_FULFILLMENT_START.value:
        return ProgressState.REFUSED
    if cluster is None:
        return ProgressState.AWAITING_CHOICES
    if cluster.status == ClusterStatus.FAILED.value:
        return ProgressState.FAILED
    if cluster.status == ClusterStatus.READY.value:
        if status == SubscriptionStatus.PENDING_FULFILLMENT_START.value:
            return ProgressState.ACTIVATING
        return ProgressState.READY
    return ProgressState.PROVISIONING


def _words(
    state: ProgressState, subscription: MarketplaceSubscription, cluster: Cluster | None
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
    if state == ProgressState.FAILED:
        return _failure_words(cluster)
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


def _failure_words(cluster: Cluster | None) -> tuple[str, str, WhoMustAct, str]:
    codes = _error_codes(cluster.last_error_code, cluster.last_error_details) if cluster else []
    fix = next((CUSTOMER_FIXES[code] for code in codes if code in CUSTOMER_FIXES), None)
    if fix is not None:
        step = _current_step(cluster)
        where = f" while setting up {step}" if step else ""
        return (
            "Setting up your cluster needs your action",
            f"Azure refused a deployment in your subscription{where}.",
            WhoMustAct.CUSTOMER,
            f"Please {fix}, then contact us so that we start again; our operators were alerted.",
        )
    return (
        "Setting up your cluster failed on our side",
        "Our operators were alerted and will start it again; you are not billed until the cluster is ready.",
        WhoMustAct.PUBLISHER,
        "Nothing is needed from you: this page shows the cluster once it is ready (reload it later).",
    )


def _error_codes(code: str | None, details: object) -> list[str]:
    """The error's code and every nested one (ARM wraps the cause, e.g. QuotaExceeded, in DeploymentFailed)."""
    found = [code] if code else []
    pending = [details]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if isinstance(item.get("code"), str):
                found.append(item["code"])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def _steps(session: Session, cluster: Cluster | None) -> list[ProgressStep]:
    """The set-up steps in order, each with its state and how long it usually takes (from our own history)."""
    names = [step.name for step in FACADE_CLUSTER_STEPS]
    typical = typical_step_seconds(session, names)
    states = latest_step_states(session, cluster.id) if cluster is not None else {}
    ready = cluster is not None and cluster.status == ClusterStatus.READY.value
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
    """A sentence for one audit event; never its code."""
    details: dict[str, Any] = event.details or {}
    if event.action.startswith("cluster.step."):
        step = STEP_NAMES.get(str(details.get("step")), "a deployment step")
        step_labels: dict[str, str] = {
            AuditAction.CLUSTER_STEP_STARTED: f"Setting up {step}",
            AuditAction.CLUSTER_STEP_SUCCEEDED: f"Done: {step}",
            AuditAction.CLUSTER_STEP_FAILED: f"A try at {step} failed; trying again",
        }
        return step_labels.get(event.action, f"Update on {step}")
    if event.action == AuditAction.SUBSCRIPTION_ACTIVATED:
        if event.outcome == AuditOutcome.SUCCESS.value:
            return "Subscription activated in Azure Marketplace"
        return "Azure Marketplace did not activate the subscription"
    if event.action == AuditAction.SUBSCRIPTION_TRANSITION:
        status = str((event.after or {}).get("status", ""))
        if event.outcome == AuditOutcome.REFUSED.value:
            return "A change of status was refused"
        return f"Subscription is now {STATUS_NAMES.get(status, 'updated')}"
    if event.action.startswith("marketplace_operation."):
        return "Azure Marketplace change handled"
    return ACTION_LABELS.get(event.action, "Update")


def _events(session: Session, subscription_id: str, cluster: Cluster | None) -> list[AuditEvent]:
    subjects = [("marketplace_subscription", subscription_id)]
    if cluster is not None:
        subjects.append(("cluster", cluster.id))
    return events_about(session, subjects, limit=MAX_PROGRESS_EVENTS)
