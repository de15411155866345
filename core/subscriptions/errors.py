"""Why a landing-page confirmation was not recorded: one named error per cause, so each gets its own answer.

The landing page turns SubscriptionAlreadySetUp into the progress page (a double-click, back or reload is not an
error for the customer), PurchaseTokenAlreadyUsed into an error page, and PurchaseWithoutBeneficiary into a page
that says the publisher must act.
"""

from __future__ import annotations

from core.errors import Conflict, ControlPlaneError


class SubscriptionAlreadySetUp(Conflict):
    """The subscription already has its deployment choices (and cluster): nothing more to confirm."""

    code = "SubscriptionAlreadySetUp"


class PurchaseTokenAlreadyUsed(Conflict):
    """This landing token already confirmed a purchase that is not the one it resolves to now."""

    code = "PurchaseTokenAlreadyUsed"


class PurchaseWithoutBeneficiary(ControlPlaneError):
    """Marketplace resolved the purchase without a beneficiary tenant: we cannot know whose cluster it is."""

    status_code = 502
    code = "PurchaseWithoutBeneficiary"
