"""What a failed cluster means to its customer: one message saying who must act and exactly how.

The progress page and the portal both show this; ARM's own text stays out of it (operators read it folded away).
When Azure refused us for lack of access, the message names the application, the role and its scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.audit.sentences import STEP_NAMES
from core.clusters.models import Cluster

# The role the controller needs: it creates the cluster's resource group, so on the whole Azure subscription.
REQUIRED_ROLE = "Contributor"
APPLICATION_NAME = "VAST control plane"
ACCESS_DENIED = "ArmAccessDenied"


class WhoMustAct(StrEnum):
    """Whom the next move belongs to."""

    NOBODY = "nobody"
    CUSTOMER = "customer"
    PUBLISHER = "publisher"


@dataclass(frozen=True)
class FailureAdvice:
    headline: str
    explanation: str
    who_must_act: WhoMustAct
    what_to_do: str


# ARM error codes that only the customer (the owner of the target Azure subscription) can clear, and how.
CUSTOMER_FIXES = {
    "SubscriptionNotFound": "check that the Azure subscription you chose exists and belongs to your tenant",
    "QuotaExceeded": "raise the virtual machine quota of the chosen region in your Azure subscription",
    "OperationNotAllowed": "raise the virtual machine quota of the chosen region in your Azure subscription",
    "SkuNotAvailable": "ask Azure support to enable the cluster's VM size in the chosen region",
    "RequestDisallowedByPolicy": "ask your Azure administrator to let an Azure Policy allow the cluster's resources",
    "ResourceGroupBeingDeleted": "wait until the resource group you chose is deleted, or tell us another one",
}
ACCESS_CODES = frozenset({ACCESS_DENIED, "AuthorizationFailed", "LinkedAuthorizationFailed"})


def role_scope(azure_subscription_id: str) -> str:
    """The scope the role must be assigned at, as Azure writes it."""
    return f"/subscriptions/{azure_subscription_id}"


def access_fix(azure_subscription_id: str, application_id: str | None) -> str:
    """How a customer administrator gives us the access we lack (consent, then the role at its scope)."""
    named = f" (application id {application_id})" if application_id else ""
    application = f"the {APPLICATION_NAME} application{named}"
    return (
        f"ask an administrator of your organisation to consent to {application} in your Microsoft Entra tenant and "
        f"to assign it the {REQUIRED_ROLE} role on Azure subscription {azure_subscription_id} (scope "
        f"{role_scope(azure_subscription_id)}; in the Azure portal: Subscriptions, Access control (IAM), Add role "
        "assignment; this needs the Owner or User Access Administrator role there)"
    )


def failure_advice(cluster: Cluster, application_id: str | None) -> FailureAdvice:
    """Who must act on a failed cluster and how; anything not known to be the customer's is ours."""
    codes = error_codes(cluster.last_error_code, cluster.last_error_details)
    if any(code in ACCESS_CODES for code in codes):
        return FailureAdvice(
            "Setting up your cluster needs your action",
            f"Azure refused our application access to your Azure subscription {cluster.azure_subscription_id}, "
            "so the cluster could not be set up.",
            WhoMustAct.CUSTOMER,
            f"Please {access_fix(cluster.azure_subscription_id, application_id)}. Then contact us so that we start "
            "again; our operators were alerted.",
        )
    fix = next((CUSTOMER_FIXES[code] for code in codes if code in CUSTOMER_FIXES), None)
    if fix is not None:
        step = STEP_NAMES.get(cluster.current_step or "", "the cluster") if cluster.current_step else None
        where = f" while setting up {step}" if step else ""
        return FailureAdvice(
            "Setting up your cluster needs your action",
            f"Azure refused a deployment in your subscription{where}.",
            WhoMustAct.CUSTOMER,
            f"Please {fix}, then contact us so that we start again; our operators were alerted.",
        )
    return FailureAdvice(
        "Setting up your cluster failed on our side",
        "Our operators were alerted and will start it again; you are not billed until the cluster is ready.",
        WhoMustAct.PUBLISHER,
        "Nothing is needed from you: this page shows the cluster once it is ready (reload it later).",
    )


def error_codes(code: str | None, details: object) -> list[str]:
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
