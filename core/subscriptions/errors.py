"""Why a landing-page confirmation was not recorded: one named error per cause, so each gets its own answer.

The landing page turns SubscriptionAlreadySetUp into the progress page (a double-click, back or reload is not an
error for the customer), PurchaseTokenAlreadyUsed into an error page, and PurchaseWithoutBeneficiary into a page
that says the publisher must act.
"""

from __future__ import annotations

from core.errors import BadRequest, Conflict, ControlPlaneError


class SubscriptionAlreadySetUp(Conflict):
    """The subscription already has its deployment choices (and cluster): nothing more to confirm."""

    code = "SubscriptionAlreadySetUp"


class PurchaseTokenAlreadyUsed(Conflict):
    """This landing token already confirmed a purchase that is not the one it resolves to now."""

    code = "PurchaseTokenAlreadyUsed"


class SubscriptionAlreadyPlaced(Conflict):
    """The beneficiary's admin placed this purchase's cluster already (a double submit of the placement form)."""

    code = "SubscriptionAlreadyPlaced"


class SubscriptionCancelled(Conflict):
    """The subscription was unsubscribed before its cluster was placed: there is nothing to place any more."""

    code = "SubscriptionCancelled"


class PurchaseWithoutBeneficiary(ControlPlaneError):
    """Marketplace resolved the purchase without a beneficiary tenant: we cannot know whose cluster it is."""

    status_code = 502
    code = "PurchaseWithoutBeneficiary"


class ChangeRefused(BadRequest):
    """A ChangePlan/ChangeQuantity refused at webhook intake: Marketplace takes the 400 as our verdict, on time."""

    code = "ChangeRefused"
