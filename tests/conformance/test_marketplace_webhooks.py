"""Webhook delivery from the Marketplace emulator to a small publisher receiver started by the test."""

from __future__ import annotations

import queue
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from emulators.common.server import EmulatorServer
from emulators.suite import EmulatorSuite

pytestmark = pytest.mark.timeout(30)

Purchase = Callable[..., dict[str, Any]]


@dataclass
class PublisherReceiver:
    """Verifies each webhook's bearer token as the publisher would and answers with scripted statuses."""

    jwks_url: str
    audience: str
    issuer: str
    marketplace_app_id: str
    tenant_id: str
    ssl_context: ssl.SSLContext
    statuses: list[int] = field(default_factory=list)
    received: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)

    def app(self) -> FastAPI:
        application = FastAPI()
        jwks = jwt.PyJWKClient(self.jwks_url, cache_jwk_set=False, ssl_context=self.ssl_context)

        @application.post("/webhook")
        async def webhook(request: Request) -> Response:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            claims = jwt.decode(
                token,
                jwks.get_signing_key_from_jwt(token).key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
            )
            valid = claims["azp"] == self.marketplace_app_id and claims["tid"] == self.tenant_id
            self.received.put({"body": await request.json(), "claims": claims, "valid": valid})
            return Response(status_code=self.statuses.pop(0) if self.statuses else 200)

        return application

    def next_call(self) -> dict[str, Any]:
        return self.received.get(timeout=10)


@pytest.fixture
def receiver(
    emulator_suite: EmulatorSuite, emulator_state: dict[str, Any], marketplace_control: httpx.Client
) -> Iterator[PublisherReceiver]:
    entra_state = emulator_state["entra"]
    tenant_id = entra_state["publisher_tenant_id"]
    publisher_receiver = PublisherReceiver(
        jwks_url=f"{entra_state['authority_url']}/{tenant_id}/discovery/v2.0/keys",
        audience=entra_state["publisher_fulfillment_app_id"],
        issuer=f"{entra_state['authority_url']}/{tenant_id}/v2.0",
        marketplace_app_id=entra_state["marketplace_app_id"],
        tenant_id=tenant_id,
        ssl_context=ssl.create_default_context(cafile=str(emulator_suite.tls.ca_path)),
    )
    # Served over HTTPS with the suite's CA, so the emulator's trust of that CA is exercised too.
    server = EmulatorServer("publisher-webhook", publisher_receiver.app(), emulator_suite.tls)
    base_url = server.start()
    marketplace_control.put("/webhook", json={"url": f"{base_url}/webhook"}).raise_for_status()
    yield publisher_receiver
    server.stop()


def _activated(marketplace_api: httpx.Client, purchase: Purchase) -> str:
    subscription_id = str(purchase()["subscription_id"])
    marketplace_api.post(f"saas/subscriptions/{subscription_id}/activate", json={"planId": "standard"})
    return subscription_id


def _delivery(marketplace_control: httpx.Client, operation_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Wait until the delivery of an operation is finished, and return its log entry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for delivery in marketplace_control.get("/webhook-deliveries").json():
            if delivery["operation_id"] == operation_id and delivery["outcome"] != "pending":
                return dict(delivery)
        time.sleep(0.05)
    raise AssertionError(f"delivery of {operation_id} did not finish")


def test_change_plan_webhook_carries_operation_snapshot_and_valid_token(
    receiver: PublisherReceiver,
    marketplace_api: httpx.Client,
    marketplace_control: httpx.Client,
    purchase: Purchase,
    emulator_state: dict[str, Any],
) -> None:
    subscription_id = _activated(marketplace_api, purchase)
    operation = marketplace_control.post(
        f"/subscriptions/{subscription_id}/change-plan", json={"plan_id": "performance"}
    ).json()
    call = receiver.next_call()
    assert call["valid"]
    body = call["body"]
    assert body["id"] == operation["id"]
    assert body["subscriptionId"] == subscription_id
    assert (body["action"], body["status"], body["planId"]) == ("ChangePlan", "InProgress", "performance")
    assert body["operationRequestSource"] == "Azure"
    assert body["publisherId"] == "vastdata1234567890"
    assert body["offerId"] == "vast-blob-facade"
    assert {"activityId", "timeStamp"} <= set(body)
    # Bought without a quantity (not priced per user): the field is absent, never null (the schema's integer).
    assert body.get("quantity", 0) is not None
    assert body["purchaseToken"]
    # The snapshot is the subscription before the change.
    assert body["subscription"]["planId"] == "standard"
    assert body["subscription"]["saasSubscriptionStatus"] == "Subscribed"
    assert call["claims"]["ver"] == "2.0"

    # The publisher reads the operation back before acting, then reports success.
    operation_path = f"saas/subscriptions/{subscription_id}/operations/{body['id']}"
    assert marketplace_api.get(operation_path).json()["status"] == "InProgress"
    assert marketplace_api.patch(operation_path, json={"status": "Success"}).status_code == 200
    delivery = _delivery(marketplace_control, operation["id"])
    assert delivery["outcome"] == "delivered"
    assert [attempt["status_code"] for attempt in delivery["attempts"]] == [200]


def test_webhook_is_retried_until_the_publisher_answers_200(
    receiver: PublisherReceiver, marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    subscription_id = _activated(marketplace_api, purchase)
    receiver.statuses.extend([503, 500])
    operation = marketplace_control.post(f"/subscriptions/{subscription_id}/suspend").json()
    calls = [receiver.next_call() for _ in range(3)]
    assert {call["body"]["id"] for call in calls} == {operation["id"]}
    assert all(call["body"]["status"] == "Succeeded" for call in calls)
    delivery = _delivery(marketplace_control, operation["id"])
    assert delivery["outcome"] == "delivered"
    assert [attempt["status_code"] for attempt in delivery["attempts"]] == [503, 500, 200]


def test_publisher_rejecting_a_change_fails_the_operation(
    receiver: PublisherReceiver, marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    subscription_id = _activated(marketplace_api, purchase)
    receiver.statuses.append(400)
    operation = marketplace_control.post(f"/subscriptions/{subscription_id}/change-quantity", json={"quantity": 3})
    operation_id = operation.json()["id"]
    receiver.next_call()
    assert _delivery(marketplace_control, operation_id)["outcome"] == "rejected"
    failed = marketplace_api.get(f"saas/subscriptions/{subscription_id}/operations/{operation_id}").json()
    assert failed["status"] == "Failed"
    assert failed["errorStatusCode"] == "400"


def test_unreachable_webhook_is_abandoned_after_bounded_retries(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    subscription_id = _activated(marketplace_api, purchase)
    # A loopback port nothing listens on: every attempt fails to connect.
    marketplace_control.put("/webhook", json={"url": "https://127.0.0.1:9/webhook"}).raise_for_status()
    operation = marketplace_control.post(f"/subscriptions/{subscription_id}/renew").json()
    delivery = _delivery(marketplace_control, operation["id"])
    assert delivery["outcome"] == "abandoned"
    assert len(delivery["attempts"]) == 4
    assert all("error" in attempt for attempt in delivery["attempts"])


def test_held_webhooks_are_sent_newest_first(
    receiver: PublisherReceiver, marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    first, second = _activated(marketplace_api, purchase), _activated(marketplace_api, purchase)
    marketplace_control.put("/webhook-hold", json={"size": 2}).raise_for_status()
    older = marketplace_control.post(f"/subscriptions/{first}/renew").json()
    newer = marketplace_control.post(f"/subscriptions/{second}/renew").json()
    assert [receiver.next_call()["body"]["id"] for _ in range(2)] == [newer["id"], older["id"]]
    assert marketplace_control.delete("/webhook-hold").json() == {"released": 0}


def test_a_past_delivery_is_sent_again_with_a_valid_token(
    receiver: PublisherReceiver, marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    subscription_id = _activated(marketplace_api, purchase)
    operation = marketplace_control.post(f"/subscriptions/{subscription_id}/renew").json()
    original = receiver.next_call()
    delivery = _delivery(marketplace_control, operation["id"])
    redelivered = marketplace_control.post(
        "/webhook-deliveries/redeliver", json={"delivery_ids": [delivery["id"], "no-such-delivery"]}
    ).json()["delivery_ids"]
    again = receiver.next_call()
    assert again["valid"]
    assert again["body"] == original["body"]
    [copy] = [item for item in marketplace_control.get("/webhook-deliveries").json() if item["id"] in redelivered]
    assert copy["redelivery_of"] == delivery["id"]


def test_a_webhook_answer_reported_by_a_load_generator_follows_the_senders_rule_and_its_10_seconds(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    marketplace_control.put("/webhook", json={"url": None}).raise_for_status()  # the load generator sends them
    subscription_id = _activated(marketplace_api, purchase)
    in_time = marketplace_control.post(f"/subscriptions/{subscription_id}/change-quantity", json={"quantity": 3})
    answer = marketplace_control.post(f"/operations/{in_time.json()['id']}/webhook-answer", json={"status_code": 400})
    assert answer.status_code == 200
    refused = marketplace_api.get(f"saas/subscriptions/{subscription_id}/operations/{in_time.json()['id']}").json()
    assert (refused["status"], refused["errorStatusCode"]) == ("Failed", "400")

    late = marketplace_control.post(f"/subscriptions/{subscription_id}/change-quantity", json={"quantity": 4})
    marketplace_control.post("/clock/advance", json={"seconds": 11}).raise_for_status()
    marketplace_control.post(f"/operations/{late.json()['id']}/webhook-answer", json={"status_code": 400})
    accepted = marketplace_api.get(f"saas/subscriptions/{subscription_id}/operations/{late.json()['id']}").json()
    assert accepted["status"] == "Succeeded"  # accepted on its own 10 s after it started: the 4xx came too late
