"""SaaS fulfilment API v2 of the Marketplace emulator: headers, auth, resolve, activate, changes, operations."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from emulators.entra import MARKETPLACE_APP_ID, EntraEmulator

pytestmark = pytest.mark.timeout(30)

SUBSCRIPTION_FIELDS = {
    "id", "publisherId", "offerId", "name", "saasSubscriptionStatus", "beneficiary", "purchaser", "planId",
    "quantity", "term", "autoRenew", "isTest", "isFreeTrial", "allowedCustomerOperations", "sandboxType",
    "sessionMode", "created", "lastModified",
}  # fmt: skip
OPERATION_FIELDS = {
    "id", "activityId", "subscriptionId", "offerId", "publisherId", "planId", "quantity", "action", "timeStamp",
    "status", "errorStatusCode", "errorMessage",
}  # fmt: skip

Purchase = Callable[..., dict[str, Any]]


def _activated(marketplace_api: httpx.Client, purchase: Purchase, **options: Any) -> str:
    subscription_id = purchase(**options)["subscription_id"]
    plan_id = options.get("plan_id", "standard")
    response = marketplace_api.post(f"saas/subscriptions/{subscription_id}/activate", json={"planId": plan_id})
    assert response.status_code == 200, response.text
    return str(subscription_id)


def _get_absolute(marketplace_api: httpx.Client, url: str) -> httpx.Response:
    """GET a link the service returned, exactly as given (the client's default query must not replace it)."""
    return marketplace_api.send(httpx.Request("GET", url, headers=marketplace_api.headers))


def _status(marketplace_api: httpx.Client, subscription_id: str) -> str:
    return str(marketplace_api.get(f"saas/subscriptions/{subscription_id}").json()["saasSubscriptionStatus"])


# Conventions -------------------------------------------------------------------------------------


def test_api_version_is_required_and_checked(marketplace_api: httpx.Client) -> None:
    missing = marketplace_api.get("saas/subscriptions", params={"api-version": ""})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "ApiVersionUnspecified"
    unsupported = marketplace_api.get("saas/subscriptions", params={"api-version": "2022-01-01"})
    assert unsupported.status_code == 400
    assert unsupported.json()["error"]["code"] == "UnsupportedApiVersion"


def test_request_and_correlation_ids_are_echoed_or_generated(marketplace_api: httpx.Client) -> None:
    request_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    echoed = marketplace_api.get(
        "saas/subscriptions", headers={"x-ms-requestid": request_id, "x-ms-correlationid": correlation_id}
    )
    assert echoed.headers["x-ms-requestid"] == request_id
    assert echoed.headers["x-ms-correlationid"] == correlation_id
    generated = marketplace_api.get("saas/subscriptions")
    assert uuid.UUID(generated.headers["x-ms-requestid"])
    assert uuid.UUID(generated.headers["x-ms-correlationid"])


def test_bearer_token_checks(marketplace_api: httpx.Client, entra: EntraEmulator) -> None:
    def status_with(token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {"Authorization": ""}
        return marketplace_api.get("saas/subscriptions", headers=headers).status_code

    # The specs document 403 for a token that is missing, invalid or expired (no 401 at all).
    assert status_with(None) == 403
    assert status_with("not-a-jwt") == 403
    assert status_with(entra.mint_marketplace_api_token(lifetime_seconds=-600)) == 403
    # A token for another audience is not a Marketplace token at all.
    arm_token = entra.mint_access_token(
        tenant_id=entra.publisher_tenant.id,
        audience="https://management.azure.com",
        client_id=entra.publisher_fulfillment_app.app_id,
    )
    assert status_with(arm_token) == 403
    # Right audience, but an app that is not the publisher's fulfilment app.
    assert status_with(entra.mint_marketplace_api_token(client_id=entra.control_plane_app.app_id)) == 403
    customer_tenant_token = entra.mint_access_token(
        tenant_id=entra.directory.tenant_by_key("contoso").id,
        audience=MARKETPLACE_APP_ID,
        client_id=entra.publisher_fulfillment_app.app_id,
    )
    assert status_with(customer_tenant_token) == 403
    assert status_with(entra.mint_marketplace_api_token()) == 200


# Purchase, resolve, activate ----------------------------------------------------------------------


def test_landing_token_resolves_in_every_state_and_expires_after_a_day(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    marketplace_control.put("/landing-page", json={"url": "https://127.0.0.1:9443/marketplace/landing"})
    bought = purchase(quantity=2)
    token = bought["token"]
    assert {"+", "/", "="} <= set(token)
    landing = urlsplit(bought["landing_page_url"])
    assert landing.path == "/marketplace/landing"
    assert "+" not in landing.query
    assert parse_qs(landing.query)["token"] == [token]

    resolved = marketplace_api.post("saas/subscriptions/resolve", headers={"x-ms-marketplace-token": token})
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert body["id"] == bought["subscription_id"]
    assert body["planId"] == "standard"
    assert body["quantity"] == 2
    assert body["offerId"] == "vast-blob-facade"
    assert body["subscriptionName"]
    assert body["subscription"]["saasSubscriptionStatus"] == "PendingFulfillmentStart"

    bad = marketplace_api.post("saas/subscriptions/resolve", headers={"x-ms-marketplace-token": "bm90LWEtdG9rZW4="})
    assert bad.status_code == 400
    assert marketplace_api.post("saas/subscriptions/resolve").status_code == 400

    activate = marketplace_api.post(f"saas/subscriptions/{body['id']}/activate", json={"planId": "standard"})
    assert activate.status_code == 200
    again = marketplace_api.post("saas/subscriptions/resolve", headers={"x-ms-marketplace-token": token})
    assert again.json()["subscription"]["saasSubscriptionStatus"] == "Subscribed"

    marketplace_control.put("/clock", json={"offset_seconds": 25 * 3600})
    expired = marketplace_api.post("saas/subscriptions/resolve", headers={"x-ms-marketplace-token": token})
    assert expired.status_code == 400
    # "Manage account" later: a fresh token resolves the same subscription.
    fresh = marketplace_control.post(f"/subscriptions/{body['id']}/landing-token").json()["token"]
    later = marketplace_api.post("saas/subscriptions/resolve", headers={"x-ms-marketplace-token": fresh})
    assert later.json()["id"] == body["id"]
    marketplace_control.put("/landing-page", json={"url": None})


def test_subscription_json_has_every_documented_field(marketplace_api: httpx.Client, purchase: Purchase) -> None:
    subscription_id = purchase(plan_id="performance", quantity=3, is_test=True)["subscription_id"]
    subscription = marketplace_api.get(f"saas/subscriptions/{subscription_id}").json()
    assert set(subscription) >= SUBSCRIPTION_FIELDS
    assert subscription["publisherId"] == "vastdata1234567890"
    assert subscription["isTest"] is True
    assert set(subscription["beneficiary"]) == {"emailId", "objectId", "tenantId", "puid"}
    assert set(subscription["term"]) >= {"termUnit", "startDate", "endDate"}
    assert marketplace_api.get(f"saas/subscriptions/{uuid.uuid4()}").status_code == 404


def test_list_pages_with_next_link(marketplace_api: httpx.Client, purchase: Purchase) -> None:
    bought = {purchase()["subscription_id"] for _ in range(6)}
    seen: list[str] = []
    response = marketplace_api.get("saas/subscriptions")
    pages = 1
    while True:
        body = response.json()
        seen.extend(subscription["id"] for subscription in body["subscriptions"])
        if "@nextLink" not in body:
            break
        # The next link is absolute and already carries the api-version.
        response = _get_absolute(marketplace_api, body["@nextLink"])
        pages += 1
    assert pages >= 2
    assert bought <= set(seen)
    assert len(seen) == len(set(seen))


def test_available_plans_hide_private_plans_from_public_purchases(
    marketplace_api: httpx.Client, purchase: Purchase
) -> None:
    public = purchase()["subscription_id"]
    private = purchase(plan_id="enterprise-private", quantity=2, private_offer=True)["subscription_id"]
    public_plans = marketplace_api.get(f"saas/subscriptions/{public}/listAvailablePlans").json()["plans"]
    assert {plan["planId"] for plan in public_plans} == {"standard", "performance"}
    private_plans = marketplace_api.get(f"saas/subscriptions/{private}/listAvailablePlans").json()["plans"]
    assert "enterprise-private" in {plan["planId"] for plan in private_plans}
    one = marketplace_api.get(f"saas/subscriptions/{public}/listAvailablePlans", params={"planId": "performance"})
    assert [plan["planId"] for plan in one.json()["plans"]] == ["performance"]
    dimensions = one.json()["plans"][0]["planComponents"]["meteringDimensions"]
    assert {dimension["id"] for dimension in dimensions} == {"capacity_tib", "data_transfer_gib", "api_requests_10k"}


def test_private_plan_cannot_be_bought_publicly(
    marketplace_control: httpx.Client, emulator_state: dict[str, Any]
) -> None:
    admin = emulator_state["entra"]["users"]["contoso-admin"]
    response = marketplace_control.post(
        "/purchases",
        json={
            "plan_id": "enterprise-private",
            "beneficiary": {"tenant_id": admin["tenant_id"], "email": admin["username"]},
        },
    )
    assert response.status_code == 400


def test_activate_is_idempotent_and_checks_the_plan(marketplace_api: httpx.Client, purchase: Purchase) -> None:
    subscription_id = purchase()["subscription_id"]
    wrong = marketplace_api.post(f"saas/subscriptions/{subscription_id}/activate", json={"planId": "performance"})
    assert wrong.status_code == 400
    for _ in range(2):
        response = marketplace_api.post(f"saas/subscriptions/{subscription_id}/activate", json={"planId": "standard"})
        assert response.status_code == 200
    assert _status(marketplace_api, subscription_id) == "Subscribed"


# Publisher-initiated changes and operations ---------------------------------------------------------


def test_publisher_change_is_asynchronous_and_exclusive(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    subscription_id = _activated(marketplace_api, purchase, quantity=1)
    path = f"saas/subscriptions/{subscription_id}"
    assert marketplace_api.patch(path, json={"planId": "performance", "quantity": 2}).status_code == 400
    assert marketplace_api.patch(path, json={}).status_code == 400

    accepted = marketplace_api.patch(path, json={"planId": "performance"})
    assert accepted.status_code == 202
    operation_id = accepted.headers["Operation-Id"]
    operation = _get_absolute(marketplace_api, accepted.headers["Operation-Location"]).json()
    assert set(operation) >= OPERATION_FIELDS
    assert (operation["id"], operation["action"], operation["status"]) == (operation_id, "ChangePlan", "InProgress")
    pending = marketplace_api.get(f"{path}/operations").json()["operations"]
    assert [item["id"] for item in pending] == [operation_id]

    conflict = marketplace_api.patch(path, json={"quantity": 2})
    assert conflict.status_code == 409

    marketplace_control.post("/clock/advance", json={"seconds": 5})
    assert marketplace_api.get(f"{path}/operations/{operation_id}").json()["status"] == "Succeeded"
    assert marketplace_api.get(path).json()["planId"] == "performance"
    assert marketplace_api.get(f"{path}/operations").json()["operations"] == []
    assert marketplace_api.patch(path, json={"quantity": 2}).status_code == 202


def test_delete_unsubscribes_and_then_everything_is_not_found(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    subscription_id = _activated(marketplace_api, purchase)
    path = f"saas/subscriptions/{subscription_id}"
    deleted = marketplace_api.delete(path)
    assert deleted.status_code == 202
    operation = marketplace_api.get(f"{path}/operations/{deleted.headers['Operation-Id']}").json()
    assert operation["action"] == "Unsubscribe"
    marketplace_control.post("/clock/advance", json={"seconds": 5})
    assert _status(marketplace_api, subscription_id) == "Unsubscribed"
    assert marketplace_api.post(f"{path}/activate", json={"planId": "standard"}).status_code == 404
    assert marketplace_api.patch(path, json={"quantity": 2}).status_code == 404
    assert marketplace_api.delete(path).status_code == 404


# Customer-initiated operations ----------------------------------------------------------------------


def test_customer_change_plan_waits_for_the_publisher(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    subscription_id = _activated(marketplace_api, purchase)
    operation = marketplace_control.post(
        f"/subscriptions/{subscription_id}/change-plan", json={"plan_id": "performance"}
    )
    assert operation.status_code == 201
    operation_id = operation.json()["id"]
    operation_path = f"saas/subscriptions/{subscription_id}/operations/{operation_id}"
    assert marketplace_api.get(operation_path).json()["status"] == "InProgress"
    assert marketplace_api.get(f"saas/subscriptions/{subscription_id}").json()["planId"] == "standard"
    # Another change while this one is in progress is refused.
    busy = marketplace_control.post(f"/subscriptions/{subscription_id}/change-quantity", json={"quantity": 3})
    assert busy.status_code == 409
    assert marketplace_api.patch(f"saas/subscriptions/{subscription_id}", json={"quantity": 3}).status_code == 409

    assert marketplace_api.patch(operation_path, json={"status": "Bogus"}).status_code == 400
    patched = marketplace_api.patch(operation_path, json={"status": "Success"})
    assert patched.status_code == 200
    assert patched.json()["status"] == "Succeeded"
    assert marketplace_api.get(f"saas/subscriptions/{subscription_id}").json()["planId"] == "performance"
    assert marketplace_api.patch(operation_path, json={"status": "Failure"}).status_code == 409


def test_customer_change_reported_as_failure_changes_nothing(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    subscription_id = _activated(marketplace_api, purchase, quantity=1)
    operation_id = marketplace_control.post(
        f"/subscriptions/{subscription_id}/change-quantity", json={"quantity": 4}
    ).json()["id"]
    operation_path = f"saas/subscriptions/{subscription_id}/operations/{operation_id}"
    assert marketplace_api.patch(operation_path, json={"status": "Failure"}).json()["status"] == "Failed"
    assert marketplace_api.get(f"saas/subscriptions/{subscription_id}").json()["quantity"] == 1


def test_unpatched_customer_change_is_accepted_after_the_timeout(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase, emulator_state: dict[str, Any]
) -> None:
    subscription_id = _activated(marketplace_api, purchase, quantity=1)
    operation_id = marketplace_control.post(
        f"/subscriptions/{subscription_id}/change-quantity", json={"quantity": 5}
    ).json()["id"]
    timeout = emulator_state["marketplace"]["operation_timeout_seconds"]
    marketplace_control.post("/clock/advance", json={"seconds": timeout - 1})
    operation_path = f"saas/subscriptions/{subscription_id}/operations/{operation_id}"
    assert marketplace_api.get(operation_path).json()["status"] == "InProgress"
    marketplace_control.post("/clock/advance", json={"seconds": 2})
    assert marketplace_api.get(operation_path).json()["status"] == "Succeeded"
    assert marketplace_api.get(f"saas/subscriptions/{subscription_id}").json()["quantity"] == 5
    assert marketplace_api.patch(operation_path, json={"status": "Success"}).status_code == 409


def test_suspend_reinstate_unsubscribe(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    subscription_id = _activated(marketplace_api, purchase)
    suspend = marketplace_control.post(f"/subscriptions/{subscription_id}/suspend").json()
    assert (suspend["action"], suspend["status"]) == ("Suspend", "Succeeded")
    assert _status(marketplace_api, subscription_id) == "Suspended"
    activate = marketplace_api.post(f"saas/subscriptions/{subscription_id}/activate", json={"planId": "standard"})
    assert activate.status_code == 400
    assert marketplace_api.patch(f"saas/subscriptions/{subscription_id}", json={"quantity": 2}).status_code == 400

    reinstate = marketplace_control.post(f"/subscriptions/{subscription_id}/reinstate").json()
    assert reinstate["status"] == "InProgress"
    assert _status(marketplace_api, subscription_id) == "Suspended"
    marketplace_api.patch(
        f"saas/subscriptions/{subscription_id}/operations/{reinstate['id']}", json={"status": "Success"}
    ).raise_for_status()
    assert _status(marketplace_api, subscription_id) == "Subscribed"

    renew = marketplace_control.post(f"/subscriptions/{subscription_id}/renew").json()
    assert (renew["action"], renew["status"]) == ("Renew", "Succeeded")
    unsubscribe = marketplace_control.post(f"/subscriptions/{subscription_id}/unsubscribe").json()
    assert (unsubscribe["action"], unsubscribe["status"]) == ("Unsubscribe", "Succeeded")
    assert _status(marketplace_api, subscription_id) == "Unsubscribed"
    assert marketplace_control.post(f"/subscriptions/{subscription_id}/suspend").status_code == 409
