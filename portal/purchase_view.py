"""What the purchase page shows: the purchase as the customer bought it, and the form's problems in plain words.

Validation stays in the domain schemas (core.subscriptions.schemas); this module only says, per form field, what
the customer should type instead. Regexes and pydantic's wording ("Value error, ...") never reach the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError
from sqlmodel import Session, col, select

from core.catalog.models import ActivationMode, MeteredDimension, Offer, Plan, PlanIncludedQuantity
from core.clusters.ownership import PlacementRefused, ResourceGroupNotOwned
from core.errors import ControlPlaneError

# The form's field for each part of DeploymentChoices (its validation locations).
FIELD_OF_LOCATION = {
    ("placement", "region"): "region",
    ("placement", "azure_subscription_id"): "azure_subscription_id",
    ("placement", "resource_group"): "resource_group",
    ("private_link", "visibility_subscriptions"): "pls_visibility_subscriptions",
    ("private_link", "auto_approval_subscriptions"): "pls_auto_approval_subscriptions",
    ("key_policy", "key_vault_sku"): "key_vault_sku",
    ("key_policy", "key_type"): "key_type",
    ("key_policy", "key_size"): "key_size",
    ("key_policy", "rotation_days"): "rotation_days",
}
# What to type instead, per field: the same words whatever rule the value broke.
FIELD_HELP = {
    "region": "Choose a region from the list; its name is written in lower-case letters and digits, like westeurope.",
    "azure_subscription_id": (
        "Choose one of your Azure subscriptions, or enter its ID: 32 hexadecimal digits in five groups, like "
        "00000000-0000-0000-0000-000000000000."
    ),
    "resource_group": (
        "Use up to 90 letters, digits, hyphens, underscores, periods or parentheses, not ending in a period; or leave "
        "it empty."
    ),
    "pls_visibility_subscriptions": (
        "List Azure subscription IDs separated by commas or spaces (at most 100), or * for every subscription."
    ),
    "pls_auto_approval_subscriptions": (
        "List Azure subscription IDs separated by commas or spaces (at most 100). Approving every subscription (*) "
        "is turned on later in the portal, where you confirm it."
    ),
    "key_vault_sku": "Choose Standard or Premium.",
    "key_type": "Choose RSA or RSA-HSM.",
    "key_size": "Choose 2048, 3072 or 4096 bits.",
    "rotation_days": "Enter a whole number of days from 7 to 730.",
}
FIELD_LABELS = {
    "region": "Azure region",
    "azure_subscription_id": "Azure subscription",
    "resource_group": "Resource group",
    "pls_visibility_subscriptions": "Who may see the Private Link service",
    "pls_auto_approval_subscriptions": "Whose connections are approved automatically",
    "key_vault_sku": "Key Vault tier",
    "key_type": "Key type",
    "key_size": "Key size",
    "rotation_days": "Rotate the key every",
}


@dataclass
class FormProblems:
    """The form's problems: one sentence beside each field it concerns, and those that concern no single field."""

    by_field: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.by_field or self.general)

    def summary(self) -> list[tuple[str, str, str]]:
        """(field, label, problem) of each field in form order, for the list at the top of the form."""
        return [(name, FIELD_LABELS[name], self.by_field[name]) for name in FIELD_LABELS if name in self.by_field]


def problems_of_choices(error: ValidationError) -> FormProblems:
    """The plain-language problems of deployment choices DeploymentChoices refused."""
    problems = FormProblems()
    for issue in error.errors():
        location = [str(part) for part in issue["loc"]]
        name = FIELD_OF_LOCATION.get((location[0], location[1])) if len(location) >= 2 else None
        if name is None:
            problems.general.append("Some of the choices could not be read; please check the form and send it again.")
        else:
            problems.by_field[name] = FIELD_HELP[name]
    return problems


def problems_of_placement(error: ControlPlaneError) -> FormProblems:
    """A placement Azure refused: beside the field it concerns when it names one (the message is already plain)."""
    if isinstance(error, ResourceGroupNotOwned):
        return FormProblems(by_field={"resource_group": error.message})
    named = error.details.get("field") if isinstance(error, PlacementRefused) else None
    if isinstance(named, str) and named in FIELD_LABELS:
        return FormProblems(by_field={named: error.message})
    return FormProblems(general=[error.message])


@dataclass(frozen=True)
class PurchaseSummary:
    """The purchase as the customer bought it, from Marketplace's answer and our catalog."""

    subscription_name: str
    offer_name: str
    plan_id: str
    plan_name: str
    plan_description: str
    quantity: int
    size: str
    term: str
    billing_starts: str
    included: list[str]


def purchase_summary(
    session: Session,
    *,
    subscription_name: str,
    offer_id: str,
    plan_id: str,
    quantity: int,
    term_unit: str | None,
    term_start: datetime | None,
    term_end: datetime | None,
) -> PurchaseSummary:
    """The summary of a purchase; a plan our catalog does not hold shows Marketplace's ids."""
    offer = session.get(Offer, offer_id)
    plan = session.exec(select(Plan).where(Plan.offer_id == offer_id, Plan.plan_id == plan_id)).first()
    included: list[str] = []
    size = f"{quantity} unit{'s' if quantity != 1 else ''}"
    if plan is not None:
        nodes = plan.nodes_per_unit * quantity
        size += f": {nodes} nodes, {plan.capacity_tib_per_unit * quantity:g} TiB usable"
        rows = session.exec(
            select(MeteredDimension, PlanIncludedQuantity)
            .where(PlanIncludedQuantity.plan_pk == plan.id, PlanIncludedQuantity.dimension_pk == MeteredDimension.id)
            .order_by(col(MeteredDimension.id))
        ).all()
        included = [
            f"{dimension.display_name}: {amount.included_per_hour_per_unit * quantity:g} {dimension.unit} per hour"
            for dimension, amount in rows
        ]
    return PurchaseSummary(
        subscription_name=subscription_name,
        offer_name=offer.display_name if offer else offer_id,
        plan_id=plan_id,
        plan_name=plan.display_name if plan else plan_id,
        plan_description=plan.description if plan else "",
        quantity=quantity,
        size=size,
        term=term_words(term_unit, term_start, term_end),
        billing_starts=BILLING_STARTS[ActivationMode(offer.activation)] if offer else "",
        included=included,
    )


# When Azure Marketplace starts billing: we activate the subscription when the cluster is ready, or on confirmation.
BILLING_STARTS = {
    ActivationMode.WHEN_READY: "Billing starts when your cluster is ready, not before.",
    ActivationMode.IMMEDIATELY: "Billing starts when you confirm below; your cluster is ready a few minutes later.",
}
TERM_UNITS = {"P1M": "Monthly", "P1Y": "Yearly", "P2Y": "Two years", "P3Y": "Three years"}


def term_words(unit: str | None, start: datetime | None, end: datetime | None) -> str:
    """The billing term as people read it, e.g. "Monthly, 7 March 2026 to 6 April 2026"."""
    kind = TERM_UNITS.get(unit or "", unit or "")
    if start is None:
        return f"{kind}, starting when your cluster is ready" if kind else "Starts when your cluster is ready"
    dates = f"{_day(start)} to {_day(end)}" if end is not None else f"from {_day(start)}"
    return f"{kind}, {dates}" if kind else dates.capitalize()


def _day(value: datetime) -> str:
    return f"{value.day} {value.strftime('%B %Y')}"
