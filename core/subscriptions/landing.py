"""Where the landing page sends a signed-in customer, whatever state the purchase is in.

A landing token (a first purchase, or a fresh one from "Configure account" / "Manage account") and a repeated
confirmation (double-click, back, reload) must each lead somewhere useful: the deployment form while the
subscription still awaits its choices, its progress page otherwise. Never "already used" for a purchase that
succeeded.
"""

from __future__ import annotations

import re
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.db import Database
from core.errors import BadRequest
from core.marketplace.fulfillment_client import ResolvedPurchase
from core.subscriptions.errors import SubscriptionAlreadySetUp
from core.subscriptions.schemas import DeploymentChoices
from core.subscriptions.service import awaits_deployment_choices, find_subscription, record_purchase

# Marketplace's landing tokens are base64 (a few hundred to a few thousand characters).
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
MAX_TOKEN_LENGTH = 8192
# A confirmation that lost an insert race to a reconciliation's adoption is applied once more, to the adopted row.
CONFIRM_ATTEMPTS = 2


class LandingStep(StrEnum):
    """What the landing page shows for a resolved purchase."""

    CHOOSE_DEPLOYMENT = "choose_deployment"
    SHOW_PROGRESS = "show_progress"


def landing_step(session: Session, subscription_id: str) -> LandingStep:
    """The form for a purchase we do not hold yet or one adopted without a cluster; the progress page otherwise."""
    subscription = find_subscription(session, subscription_id)
    if subscription is None or awaits_deployment_choices(session, subscription):
        return LandingStep.CHOOSE_DEPLOYMENT
    return LandingStep.SHOW_PROGRESS


def confirm_purchase(
    database: Database, purchase: ResolvedPurchase, *, marketplace_token: str, choices: DeploymentChoices, actor: str
) -> None:
    """Record the confirmation in its own transaction (the request boundary).

    Two confirmations of the same purchase at once (a double-click) race to insert the same subscription row or
    cluster: the loser's unique violation means the winner set it up, so it gets SubscriptionAlreadySetUp like a
    confirmation that came later. A reconciliation that adopted the subscription in the same instant leaves it
    without a cluster: the confirmation is then applied again, to the adopted row.
    """
    for attempt in range(CONFIRM_ATTEMPTS):
        try:
            with database.session() as session:
                record_purchase(session, purchase, marketplace_token=marketplace_token, choices=choices, actor=actor)
            return
        except IntegrityError:
            with database.session() as session:
                step = landing_step(session, purchase.id)
            if step == LandingStep.SHOW_PROGRESS:
                raise SubscriptionAlreadySetUp(
                    "this subscription is already set up", details={"subscription_id": purchase.id}
                ) from None
            if attempt + 1 == CONFIRM_ATTEMPTS:
                raise


def landing_token(raw: str) -> str:
    """The purchase token as Marketplace issued it, or BadRequest for something that cannot be one.

    Marketplace's token is base64: a `+` that reached us as a space came from a link that was not URL-encoded,
    so it is put back. Anything outside the base64 alphabets (standard and URL-safe) is refused here, before it
    could reach an HTTP header.
    """
    token = raw.replace(" ", "+")
    if len(token) > MAX_TOKEN_LENGTH:
        raise BadRequest("this purchase link is too long to be one of Azure Marketplace's")
    if not TOKEN_PATTERN.fullmatch(token):
        raise BadRequest("this purchase link is damaged: its token has characters a Marketplace token never has")
    return token
