"""The webhook: Entra token checks, body validation, durable idempotent storage, concurrent replays."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlmodel import select

from core.audit.models import AuditEvent
from core.db import Database
from core.inbox.models import InboundEvent
from core.messaging import TaskNames
from core.outbox.models import OutboxMessage
from core.subscriptions.models import MarketplaceOperation
from tests.integration.lifecycle.conftest import ActiveSubscription, ControlPlane
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.support.factories import webhook_payload
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]
MARKETPLACE_APP_ID = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"


def _body(subscription_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A webhook carrying fields Marketplace may add later, which must be tolerated."""
    subscription_id = subscription_id or str(uuid.uuid4())
    return webhook_payload(
        subscription_id,
        subscription={"id": subscription_id, "saasSubscriptionStatus": "Subscribed", "newField": {"x": 1}},
        someFutureField="tolerated",
        **overrides,
    )


def _post(base_url: str, *, token: str | None, content: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{base_url}/marketplace/webhook", content=content, headers=headers, timeout=15)


def _counts(database: Database) -> tuple[int, int, int]:
    with database.session() as session:
        refused = session.exec(select(AuditEvent).where(AuditEvent.action == "marketplace.webhook_refused")).all()
        inbound = session.exec(select(InboundEvent)).all()
        operations = session.exec(select(MarketplaceOperation)).all()
    return len(refused), len(inbound), len(operations)


def _forged_token(emulators: Emulators) -> str:
    """Right claims, signed by a key the authority never published."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tenant_id = emulators.entra["publisher_tenant_id"]
    now = int(time.time())
    claims = {
        "aud": emulators.entra["publisher_fulfillment_app_id"],
        "iss": f"{emulators.entra['authority_url']}/{tenant_id}/v2.0",
        "tid": tenant_id,
        "azp": MARKETPLACE_APP_ID,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "not-a-published-key"})


def test_refused_webhooks_get_precise_statuses_are_audited_and_change_nothing(
    control_plane: ControlPlane, emulators: Emulators, database: Database
) -> None:
    publisher_tenant = emulators.entra["publisher_tenant_id"]
    publisher_app = emulators.entra["publisher_fulfillment_app_id"]
    valid = emulators.webhook_token()
    now = int(time.time())
    cases: list[tuple[str, str | None, bytes, int, str]] = [
        ("missing header", None, json.dumps(_body()).encode(), 401, "missing bearer token"),
        ("unknown key", _forged_token(emulators), json.dumps(_body()).encode(), 401, "unknown key"),
        (
            "wrong audience",
            emulators.mint_token(
                tenant_id=publisher_tenant,
                audience=emulators.entra["control_plane_app_id"],
                client_id=MARKETPLACE_APP_ID,
            ),
            json.dumps(_body()).encode(),
            401,
            "audience",
        ),
        (
            "expired",
            emulators.mint_token(
                tenant_id=publisher_tenant,
                audience=publisher_app,
                client_id=MARKETPLACE_APP_ID,
                extra_claims={"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600},
            ),
            json.dumps(_body()).encode(),
            401,
            "expired",
        ),
        (
            "not Marketplace",
            emulators.mint_token(tenant_id=publisher_tenant, audience=publisher_app, client_id=publisher_app),
            json.dumps(_body()).encode(),
            401,
            "client application",
        ),
        ("malformed JSON", valid, b'{"id": "x", "action": ', 400, "not valid JSON"),
        ("unknown action", valid, json.dumps(_body(action="Transmogrify")).encode(), 422, "action"),
        (
            "mismatched ids",
            valid,
            json.dumps({**_body(), "subscription": {"id": str(uuid.uuid4())}}).encode(),
            400,
            "does not match",
        ),
    ]
    for name, token, content, status, message in cases:
        before = _counts(database)
        response = _post(control_plane.base_url, token=token, content=content)
        assert response.status_code == status, (name, response.text)
        assert message in response.json()["error"]["message"], (name, response.text)
        refused, inbound, operations = _counts(database)
        assert (refused, inbound, operations) == (before[0] + 1, before[1], before[2]), name
    with database.session() as session:
        webhook_work = select(OutboxMessage).where(OutboxMessage.task_name == TaskNames.MARKETPLACE_PROCESS_OPERATION)
        assert session.exec(webhook_work).all() == []
        reasons = [event.details["reason"] for event in session.exec(select(AuditEvent)).all()]
    assert any("token expired" in reason for reason in reasons)


def test_the_same_webhook_ten_times_concurrently_has_one_effect(
    control_plane: ControlPlane, emulators: Emulators, database: Database, active_subscription: ActiveSubscription
) -> None:
    subscription_id = active_subscription.subscription_id
    emulators.set_webhook(None)  # we deliver this one ourselves, ten times at once
    try:
        operation = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 3})
        emulators.wait_until_not_delivered({operation["id"]})
    finally:
        emulators.set_webhook(f"{control_plane.base_url}/marketplace/webhook")
    body = {**operation, "subscription": emulators.marketplace_subscription(subscription_id), "purchaseToken": None}
    content = json.dumps(body).encode()
    token = emulators.webhook_token()
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: _post(control_plane.base_url, token=token, content=content), range(10)))
    assert [response.status_code for response in responses] == [200] * 10
    statuses = sorted(response.json()["status"] for response in responses)
    assert statuses == ["accepted"] + ["duplicate"] * 9
    with database.session() as session:
        inbound = session.exec(select(InboundEvent).where(InboundEvent.natural_id == operation["id"])).all()
        operations = session.exec(select(MarketplaceOperation).where(MarketplaceOperation.id == operation["id"])).all()
        work = [
            message
            for message in session.exec(
                select(OutboxMessage).where(OutboxMessage.task_name == TaskNames.MARKETPLACE_PROCESS_OPERATION)
            ).all()
            if message.arguments["operation_id"] == operation["id"]
        ]
    assert (len(inbound), len(operations), len(work)) == (1, 1, 1)

    # The inbox row says when the worker took the operation up (verified it with Marketplace and applied it).
    def processed_at() -> datetime | None:
        with database.session() as session:
            event = session.exec(select(InboundEvent).where(InboundEvent.natural_id == operation["id"])).one()
            return event.processed_at

    assert wait_for(processed_at, what="the inbox row to be marked processed") >= inbound[0].received_at
