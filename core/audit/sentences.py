"""How an audit event reads to a person: one plain sentence per `AuditAction`, and whether it is a real failure.

Timelines and progress pages show these sentences instead of action codes. Every action has an entry (a unit test
holds that), so a new action cannot reach a page as `cluster.something`. The tone decides colour: only a `FAILURE`
(something stopped and someone must act) is shown as one; a retried step or a probe miss is `NOTICE`, in plain text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.arm_templates.steps import CLUSTER, DIAGNOSTICS, DNS, IDENTITY_KEY_VAULT, PRIVATE_LINK
from core.audit.actions import AuditAction
from core.audit.models import AuditEvent, AuditOutcome
from core.subscriptions.models import SubscriptionStatus


class Tone(StrEnum):
    """How much an event matters to the reader."""

    ROUTINE = "routine"
    # Worth reading, handled on its own: a step tried again, a probe check that missed, drift being repaired.
    NOTICE = "notice"
    # Something stopped and waits for a person: the only tone shown in the failure colour.
    FAILURE = "failure"


@dataclass(frozen=True)
class Sentence:
    text: str
    tone: Tone = Tone.ROUTINE


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
STATUS_NAMES: dict[str, str] = {  # keyed by value: audit details hold the status as a plain string
    SubscriptionStatus.PENDING_FULFILLMENT_START: "waiting for activation",
    SubscriptionStatus.SUBSCRIBED: "active",
    SubscriptionStatus.SUSPENDED: "suspended",
    SubscriptionStatus.UNSUBSCRIBED: "cancelled",
}
OBJECTIVE_NAMES = {"availability": "availability", "latency": "latency"}


@dataclass(frozen=True)
class EventFacts:
    """What a sentence may draw on: the event's outcome, details and after-image."""

    outcome: str
    details: Mapping[str, Any]
    after: Mapping[str, Any]

    @property
    def succeeded(self) -> bool:
        return self.outcome == AuditOutcome.SUCCESS

    def step(self) -> str:
        return STEP_NAMES.get(str(self.details.get("step")), "a deployment step")


Describe = Callable[[EventFacts], Sentence]


def _fixed(text: str, tone: Tone = Tone.ROUTINE) -> Describe:
    sentence = Sentence(text, tone)
    return lambda _facts: sentence


def _activated(facts: EventFacts) -> Sentence:
    if facts.succeeded:
        return Sentence("Subscription activated in Azure Marketplace")
    return Sentence("Azure Marketplace did not activate the subscription", Tone.FAILURE)


def _transition(facts: EventFacts) -> Sentence:
    if facts.outcome == AuditOutcome.REFUSED:
        return Sentence("A change of status was refused", Tone.NOTICE)
    status = str(facts.after.get("status", ""))
    return Sentence(f"Subscription is now {STATUS_NAMES.get(status, 'updated')}")


def _burn_alert(facts: EventFacts) -> Sentence:
    objective = OBJECTIVE_NAMES.get(str(facts.details.get("objective")), "a service level")
    if facts.details.get("severity") == "page":
        return Sentence(f"The {objective} error budget is being spent fast; our operators were paged", Tone.NOTICE)
    return Sentence(f"The {objective} error budget is being spent faster than planned", Tone.NOTICE)


def _probe_failed(facts: EventFacts) -> Sentence:
    check = str(facts.details.get("check") or "").replace("_", " ")
    what = f" (check: {check})" if check else ""
    return Sentence(f"A Blob API health check of the endpoint did not pass{what}", Tone.NOTICE)


def _drift_detected(facts: EventFacts) -> Sentence:
    if facts.details.get("remedy") == "incident":
        return Sentence("A change made outside the control plane was found; an operator decides about it", Tone.NOTICE)
    return Sentence(f"A change made outside the control plane was found; putting back {facts.step()}", Tone.NOTICE)


def _managed_app(event_type: str, state: str) -> Describe:
    verb = {"put": "Deployment", "patch": "Update", "delete": "Removal"}[event_type]
    words = {
        "accepted": ("accepted by Azure", Tone.ROUTINE),
        "succeeded": ("finished", Tone.ROUTINE),
        "failed": ("failed in Azure", Tone.FAILURE),
        "updating": ("under way", Tone.ROUTINE),
        "deleting": ("removing resources", Tone.ROUTINE),
        "deleted": ("done: the application is gone", Tone.ROUTINE),
    }
    text, tone = words[state]
    return _fixed(f"{verb} of the managed application {text}", tone)


SENTENCES: dict[AuditAction, Describe] = {
    # Marketplace subscriptions
    AuditAction.SUBSCRIPTION_ADOPTED: _fixed("Purchase found in Azure Marketplace"),
    AuditAction.SUBSCRIPTION_PURCHASE_CONFIRMED: _fixed("Deployment choices confirmed"),
    AuditAction.SUBSCRIPTION_PURCHASE_RECORDED_AWAITING_PLACEMENT: _fixed(
        "Purchase recorded; waiting for the beneficiary's administrator to choose where the cluster runs"
    ),
    AuditAction.SUBSCRIPTION_PLACEMENT_COMPLETED: _fixed("Deployment choices confirmed by the beneficiary"),
    AuditAction.SUBSCRIPTION_TRANSITION: _transition,
    AuditAction.SUBSCRIPTION_ACTIVATED: _activated,
    AuditAction.SUBSCRIPTION_CLUSTER_CONVERGED: _fixed("Cluster ready"),
    AuditAction.SUBSCRIPTION_CLUSTER_FAILED: _fixed("Setting up the cluster stopped", Tone.FAILURE),
    AuditAction.SUBSCRIPTION_ACCEPTED_CHANGE_NOT_APPLIED: _fixed(
        "An accepted change could not be applied to the cluster yet; our operators were alerted", Tone.FAILURE
    ),
    # Marketplace webhooks and operations
    AuditAction.MARKETPLACE_WEBHOOK_RECEIVED: _fixed("Azure Marketplace sent a change"),
    AuditAction.MARKETPLACE_WEBHOOK_REFUSED: _fixed("A message claiming to come from Azure Marketplace was refused"),
    AuditAction.OPERATION_ADOPTED: _fixed("Azure Marketplace change found during reconciliation"),
    AuditAction.OPERATION_REFUSED_AT_INTAKE: _fixed("Azure Marketplace change refused", Tone.NOTICE),
    AuditAction.OPERATION_RECEIVED: _fixed("Azure Marketplace change received"),
    AuditAction.OPERATION_VERIFIED: _fixed("Azure Marketplace change checked"),
    AuditAction.OPERATION_APPLIED: _fixed("Azure Marketplace change handled"),
    AuditAction.OPERATION_REPORTED: _fixed("Azure Marketplace told the change was handled"),
    AuditAction.OPERATION_FAILED: _fixed("Azure Marketplace change refused", Tone.NOTICE),
    # Clusters
    AuditAction.CLUSTER_REQUESTED: _fixed("Cluster requested"),
    AuditAction.CLUSTER_DESIRED_SPEC_CHANGED: _fixed("Change of plan or size requested"),
    AuditAction.CLUSTER_RETRY_REQUESTED: _fixed("Setting up the cluster started again"),
    AuditAction.CLUSTER_STEP_STARTED: lambda facts: Sentence(f"Setting up {facts.step()}"),
    AuditAction.CLUSTER_STEP_SUCCEEDED: lambda facts: Sentence(f"Done: {facts.step()}"),
    AuditAction.CLUSTER_STEP_FAILED: lambda facts: Sentence(
        f"A try at {facts.step()} failed; trying again", Tone.NOTICE
    ),
    AuditAction.CLUSTER_READY: _fixed("Cluster ready"),
    AuditAction.CLUSTER_SUSPENDED: _fixed("Cluster stopped while the subscription is suspended"),
    AuditAction.CLUSTER_FAILED: _fixed("Setting up the cluster stopped", Tone.FAILURE),
    AuditAction.CLUSTER_SUSPEND_STARTED: _fixed("Stopping the cluster"),
    AuditAction.CLUSTER_RESUME_STARTED: _fixed("Starting the cluster"),
    AuditAction.CLUSTER_STOPPED_FOR_RETENTION: _fixed("Cluster stopped; data kept for the retention period"),
    AuditAction.CLUSTER_DELETE_STARTED: _fixed("Removing the cluster"),
    AuditAction.CLUSTER_DELETE_RESOURCES_STARTED: _fixed("Removing the cluster's Azure resources"),
    AuditAction.CLUSTER_DELETED: _fixed("Cluster removed"),
    AuditAction.CLUSTER_KEY_ROTATION_REQUESTED: _fixed("Key rotation requested"),
    AuditAction.CLUSTER_KEY_ROTATION_COMPLETED: _fixed("Encryption key rotated"),
    AuditAction.CLUSTER_KEY_ROTATION_FAILED: _fixed("Key rotation failed; the current key stays in use", Tone.FAILURE),
    AuditAction.CLUSTER_BLOB_PROBE_REQUESTED: _fixed("Health check of the endpoint requested"),
    AuditAction.CLUSTER_BLOB_PROBE_FAILED: _probe_failed,
    AuditAction.CLUSTER_DRIFT_DETECTED: _drift_detected,
    AuditAction.CLUSTER_DRIFT_INCIDENT: _fixed(
        "A change made outside the control plane needs an operator's decision; our operators were alerted",
        Tone.FAILURE,
    ),
    AuditAction.CLUSTER_DRIFT_RESOLVED: _fixed("The change made outside the control plane was put right"),
    AuditAction.CLUSTER_AUTO_APPROVAL_ALL_SUBSCRIPTIONS_CONFIRMED: _fixed(
        "Auto-approval of private endpoints from every subscription confirmed"
    ),
    # Private endpoint connections
    AuditAction.CONNECTION_PENDING: _fixed("A private endpoint asked to connect"),
    AuditAction.CONNECTION_APPROVED: _fixed("A private endpoint connection was approved"),
    AuditAction.CONNECTION_REJECTED: _fixed("A private endpoint connection was rejected"),
    AuditAction.EXPECTED_CONNECTION_CREATED: _fixed("A service connection was announced; its endpoint is awaited"),
    AuditAction.EXPECTED_CONNECTION_MATCHED: _fixed("The announced service connection arrived and was approved"),
    AuditAction.EXPECTED_CONNECTION_EXPIRED: _fixed(
        "An announced service connection did not arrive in time; announce it again", Tone.NOTICE
    ),
    AuditAction.EXPECTED_CONNECTION_CANCELLED: _fixed("An announced service connection was withdrawn"),
    # Managed applications
    AuditAction.CLUSTER_OBSERVED_FROM_MANAGED_APP: _fixed("Cluster found in the managed application"),
    AuditAction.CLUSTER_DELETED_BY_MANAGED_APP: _fixed("Cluster removed with the managed application"),
    AuditAction.CLUSTER_DEPROVISIONING_BY_MANAGED_APP: _fixed("Cluster being removed with the managed application"),
    AuditAction.MANAGED_APP_VERIFIED: _fixed("Managed application checked with Azure"),
    AuditAction.MANAGED_APP_OBSERVATION_REFUSED: _fixed(
        "A managed application notification Azure does not back was ignored"
    ),
    AuditAction.MANAGED_APP_OBSERVATION_FAILED: _fixed(
        "Reading the managed application from Azure failed; trying again", Tone.NOTICE
    ),
    AuditAction.MANAGED_APP_NOTIFICATION_REFUSED: _fixed("A managed application notification was refused"),
    AuditAction.MANAGED_APP_NOTIFICATION_OUT_OF_ORDER: _fixed("An older managed application notification was ignored"),
    **{
        AuditAction.managed_app_notification(event_type, state): _managed_app(event_type, state)
        for event_type in ("put", "patch", "delete")
        for state in ("accepted", "succeeded", "failed", "updating", "deleting", "deleted")
    },
    # Browser sessions
    AuditAction.SESSION_SIGNED_IN: _fixed("Signed in to the portal"),
    AuditAction.SESSION_ROLES_REFRESHED: _fixed("Portal roles read again from Entra ID"),
    AuditAction.SESSION_REVOKED: _fixed("A portal session was ended by an operator"),
    # Outbox dead letters
    AuditAction.OUTBOX_DEAD_LETTERED: _fixed("A background task gave up; our operators were alerted", Tone.FAILURE),
    AuditAction.OUTBOX_DEAD_LETTER_RETRIED: _fixed("A background task that gave up was started again"),
    AuditAction.OUTBOX_DEAD_LETTER_DISMISSED: _fixed("A background task that gave up was closed by an operator"),
    # Billing
    AuditAction.LEDGER_ENTRY_EXPIRED: _fixed("An hour of usage expired before Azure Marketplace took it", Tone.NOTICE),
    AuditAction.LEDGER_ENTRY_REJECTED: _fixed("Azure Marketplace refused an hour of usage", Tone.NOTICE),
    # Monitoring
    AuditAction.SLO_BURN_RATE_ALERT: _burn_alert,
    AuditAction.PIPELINE_PROBE_COMPLETED: _fixed("Background processing checked end to end"),
}
UNKNOWN = Sentence("Update")


def describe(action: str, outcome: str, details: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> Sentence:
    """The sentence for a stored action; an action no release knows (a newer writer's) reads as "Update"."""
    try:
        known = AuditAction(action)
    except ValueError:
        return UNKNOWN
    return SENTENCES[known](EventFacts(outcome, details or {}, after or {}))


def sentence_of(event: AuditEvent) -> Sentence:
    """The sentence for one audit event; never its code."""
    return describe(event.action, event.outcome, event.details, event.after)


ACTOR_WORDS = {
    "marketplace": "Azure Marketplace",
    "azure": "Azure",
    "system": "automatic",
    "policy": "automatic",
    "user": "a person",
    "app": "an application",
}


def actor_in_words(actor: str) -> str:
    """Who did it, without internal ids: "automatic", "Azure Marketplace", "a person"."""
    return ACTOR_WORDS.get(actor.split(":", 1)[0], "automatic")
