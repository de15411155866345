"""Each named domain error answers with its one HTTP status, through web.errors, whoever raises or catches it."""

from __future__ import annotations

import json

import pytest

from core.clusters.key_rotation import KeyNotRotatable, KeyRotationInProgress
from core.errors import Conflict, ControlPlaneError, IllegalTransition, TooManyRequests, Unauthenticated
from core.marketplace.http import MarketplaceError
from core.outbox.dead_letters import NotADeadLetter
from core.subscriptions.errors import (
    ChangeRefused,
    PurchaseTokenAlreadyUsed,
    PurchaseWithoutBeneficiary,
    SubscriptionAlreadyPlaced,
    SubscriptionAlreadySetUp,
    SubscriptionCancelled,
)
from web.errors import error_answer, http_status


@pytest.mark.parametrize(
    ("error_type", "status"),
    [
        (SubscriptionAlreadySetUp, 409),
        (PurchaseTokenAlreadyUsed, 409),
        (PurchaseWithoutBeneficiary, 502),
        (SubscriptionAlreadyPlaced, 409),
        (SubscriptionCancelled, 409),
        (ChangeRefused, 400),
        (KeyNotRotatable, 409),
        (KeyRotationInProgress, 409),
        (NotADeadLetter, 409),
        (IllegalTransition, 409),
    ],
)
def test_each_named_error_has_its_status_and_its_own_code(error_type: type[ControlPlaneError], status: int) -> None:
    error = error_type("refused", details={"id": "x"})
    answer = error_answer(error)
    assert http_status(error) == answer.status_code == status
    body = json.loads(bytes(answer.body))
    assert body["error"] == {"code": error_type.code, "message": "refused", "details": {"id": "x"}}


def test_the_causes_of_one_status_are_told_apart_by_type() -> None:
    causes = [SubscriptionAlreadySetUp, PurchaseTokenAlreadyUsed, SubscriptionAlreadyPlaced, SubscriptionCancelled]
    causes += [KeyNotRotatable, KeyRotationInProgress, NotADeadLetter, IllegalTransition]
    assert all(issubclass(cause, Conflict) for cause in causes)
    assert len({cause.code for cause in causes}) == len(causes)
    assert not issubclass(IllegalTransition, (KeyNotRotatable, KeyRotationInProgress))


@pytest.mark.parametrize("marketplace_status", [401, 403, 404, 409, 429, 500, 503])
def test_a_marketplace_error_is_a_bad_gateway_whatever_marketplace_answered(marketplace_status: int) -> None:
    # Marketplace's 401 or 404 is about our call to it, not about the request we answer.
    error = MarketplaceError(marketplace_status, "no", error_code=None, request_id="r", body=None)
    answer = error_answer(error)
    assert (error.status, http_status(error), answer.status_code) == (marketplace_status, 502, 502)
    assert "WWW-Authenticate" not in answer.headers


def test_only_a_401_carries_the_bearer_challenge_and_extra_headers_are_kept() -> None:
    assert error_answer(Unauthenticated("who?")).headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    throttled = error_answer(TooManyRequests("slow down"), headers={"Retry-After": "3"})
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")
    assert "WWW-Authenticate" not in throttled.headers
