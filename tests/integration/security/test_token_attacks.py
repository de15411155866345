"""Token attacks on the Marketplace webhook and the JSON API, against real API processes and the Entra emulator.

Every forged or misdirected token must be refused with 401 and a message naming the failed check; on the
webhook a refusal also stores nothing (no inbound event, no Marketplace operation, no outbox work) and leaves
a `refused` audit event. Forged tokens start from the claims of a genuine emulator token, so the only thing
wrong with each of them is the attack itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlmodel import col, select

from core.audit.models import AuditEvent, AuditOutcome
from core.db import Database
from core.inbox.models import InboundEvent
from core.outbox.models import OutboxMessage
from core.settings import Settings
from core.subscriptions.models import MarketplaceOperation
from harness.marketplace_demo import CONTOSO_TENANT_ID
from tests.conftest import start_api
from tests.integration.lifecycle.conftest import ActiveSubscription, ControlPlane
from tests.integration.lifecycle.marketplace_driver import OPERATOR_OBJECT_ID, Emulators
from tests.support.factories import webhook_payload

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]  # some tests start an API process of their own
MARKETPLACE_APP_ID = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
WEBHOOK_REFUSED = "marketplace.webhook_refused"
# Comfortably beyond the verifier's 30 s clock skew, so the lifetime checks cannot pass by leeway.
BEYOND_SKEW_SECONDS = 600
BURST_SIZE = 50


@dataclass(frozen=True)
class Recipient:
    """Who a genuine token is for: the claims an attack starts from, for one receiving endpoint."""

    tenant_id: str
    audience: str
    client_id: str
    extra_claims: dict[str, Any]
    wrong_audience: str


def webhook_recipient(emulators: Emulators) -> Recipient:
    """Marketplace calling the publisher's fulfilment app: audience, tenant and calling app (azp) as it sends them."""
    return Recipient(
        tenant_id=emulators.entra["publisher_tenant_id"],
        audience=emulators.entra["publisher_fulfillment_app_id"],
        client_id=MARKETPLACE_APP_ID,
        extra_claims={},
        wrong_audience=emulators.entra["control_plane_app_id"],
    )


def json_api_recipient(emulators: Emulators) -> Recipient:
    """A publisher operator calling the control-plane app's JSON API."""
    app_id = emulators.entra["control_plane_app_id"]
    return Recipient(
        tenant_id=emulators.entra["publisher_tenant_id"],
        audience=app_id,
        client_id=app_id,
        extra_claims={
            "idtyp": "user",
            "scp": "user_impersonation",
            "roles": ["Operator"],
            "oid": OPERATOR_OBJECT_ID,
            "name": "Test operator",
        },
        wrong_audience=emulators.entra["publisher_fulfillment_app_id"],
    )


def genuine_token(emulators: Emulators, recipient: Recipient, **changes: Any) -> str:
    """A token the emulator signs with its published key; `changes` override the usual claims."""
    return emulators.mint_token(
        tenant_id=changes.pop("tenant_id", recipient.tenant_id),
        audience=changes.pop("audience", recipient.audience),
        client_id=changes.pop("client_id", recipient.client_id),
        extra_claims={**recipient.extra_claims, **changes},
    )


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(document: dict[str, Any]) -> str:
    return _base64url(json.dumps(document, separators=(",", ":")).encode())


def _genuine_parts(emulators: Emulators, recipient: Recipient) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Header, claims and signature segment of a genuine token."""
    token = genuine_token(emulators, recipient)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return header, claims, token.rsplit(".", 1)[1]


def forged_signature(emulators: Emulators, recipient: Recipient) -> str:
    """A genuine token whose payload was altered after signing (a longer life), signature kept."""
    header, claims, signature = _genuine_parts(emulators, recipient)
    claims["exp"] += 86_400
    return f"{_segment(header)}.{_segment(claims)}.{signature}"


def algorithm_none(emulators: Emulators, recipient: Recipient) -> str:
    """The genuine claims, `alg: none` and an empty signature."""
    header, claims, _ = _genuine_parts(emulators, recipient)
    return f"{_segment({**header, 'alg': 'none'})}.{_segment(claims)}."


def hs256_with_public_key(emulators: Emulators, recipient: Recipient) -> str:
    """The algorithm-confusion attack: HMAC-SHA256 keyed with the authority's published RSA key as PEM.

    Built by hand because PyJWT itself refuses a PEM key as an HMAC secret.
    """
    header, claims, _ = _genuine_parts(emulators, recipient)
    keys_url = emulators.entra["jwks_uri_template"].format(tenant_id=recipient.tenant_id)
    key_set = emulators.http.get(keys_url).raise_for_status().json()
    published = next(key for key in key_set["keys"] if key["kid"] == header["kid"])
    public_key = jwt.PyJWK(published).key
    secret = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{_segment({**header, 'alg': 'HS256'})}.{_segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_base64url(signature)}"


def unknown_key(emulators: Emulators, recipient: Recipient) -> str:
    """The genuine claims, RS256-signed by a key of our own under a kid the authority never published."""
    _, claims, _ = _genuine_parts(emulators, recipient)
    return sign_with_unknown_key(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def sign_with_unknown_key(claims: dict[str, Any], private_key: rsa.RSAPrivateKey) -> str:
    """RS256 with our own key and a fresh random kid."""
    return jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": uuid.uuid4().hex})


def wrong_issuer(emulators: Emulators, recipient: Recipient) -> str:
    """Signed by the authority, but claims another tenant's issuer while keeping the expected tid."""
    return genuine_token(
        emulators, recipient, iss=emulators.entra["issuer_v2_template"].format(tenant_id=CONTOSO_TENANT_ID)
    )


def wrong_audience(emulators: Emulators, recipient: Recipient) -> str:
    """Issued for another application of the publisher."""
    return genuine_token(emulators, recipient, audience=recipient.wrong_audience)


def wrong_tenant(emulators: Emulators, recipient: Recipient) -> str:
    """Issued in a customer's tenant instead of the publisher's."""
    return genuine_token(emulators, recipient, tenant_id=CONTOSO_TENANT_ID)


def wrong_caller_app(emulators: Emulators, recipient: Recipient) -> str:
    """Issued to the publisher's own app rather than Marketplace (azp is not Marketplace)."""
    return genuine_token(emulators, recipient, client_id=emulators.entra["publisher_fulfillment_app_id"])


def expired(emulators: Emulators, recipient: Recipient) -> str:
    """Expired well beyond the clock skew."""
    now = int(time.time())
    return genuine_token(emulators, recipient, iat=now - 7200, nbf=now - 7200, exp=now - BEYOND_SKEW_SECONDS)


def not_yet_valid(emulators: Emulators, recipient: Recipient) -> str:
    """Valid only from a moment well beyond the clock skew."""
    now = int(time.time())
    return genuine_token(emulators, recipient, iat=now, nbf=now + BEYOND_SKEW_SECONDS, exp=now + 3600)


TokenFactory = Callable[[Emulators, Recipient], str]
# Attack -> (how the token is made, the exact message of the 401).
COMMON_ATTACKS: dict[str, tuple[TokenFactory, str]] = {
    "forged signature": (forged_signature, "token rejected: Signature verification failed"),
    "alg none": (algorithm_none, "token algorithm 'none' is not accepted"),
    "HS256 keyed with the public key": (hs256_with_public_key, "token algorithm 'HS256' is not accepted"),
    "unknown key": (unknown_key, "token signed by an unknown key"),
    "wrong issuer": (wrong_issuer, "token issuer is not the expected authority"),
    "wrong audience": (wrong_audience, "token audience is not this application"),
    "expired": (expired, "token expired"),
    "not yet valid": (not_yet_valid, "token not yet valid"),
}
# The JSON API serves every tenant and is called by its own app, so only the webhook pins tenant and caller.
WEBHOOK_ATTACKS: dict[str, tuple[TokenFactory, str]] = {
    **COMMON_ATTACKS,
    "wrong tenant": (wrong_tenant, "token issued for another tenant"),
    "wrong caller app": (wrong_caller_app, "token was not issued to an accepted client application"),
}


def webhook_body() -> dict[str, Any]:
    """A well-formed ChangeQuantity webhook, so a refusal can only come from the token."""
    return webhook_payload()


def post_webhook(base_url: str, token: str, body: dict[str, Any]) -> httpx.Response:
    """POST the body to the webhook with this bearer token."""
    return httpx.post(
        f"{base_url}/marketplace/webhook",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        timeout=15,
    )


@dataclass(frozen=True)
class StoredWebhooks:
    """What the database holds about webhooks at one moment."""

    refusals: list[AuditEvent]
    inbound_events: int
    operations: int
    outbox_messages: int


def stored_webhooks(database: Database) -> StoredWebhooks:
    """Read refusal audit events and the rows an accepted webhook would create."""
    with database.session() as session:
        refused = select(AuditEvent).where(AuditEvent.action == WEBHOOK_REFUSED).order_by(col(AuditEvent.id))
        refusals = list(session.exec(refused).all())
        inbound_events = len(session.exec(select(InboundEvent)).all())
        operations = len(session.exec(select(MarketplaceOperation)).all())
        outbox_messages = len(session.exec(select(OutboxMessage)).all())
    return StoredWebhooks(refusals, inbound_events, operations, outbox_messages)


def assert_refused_and_nothing_stored(
    database: Database, before: StoredWebhooks, responses: list[httpx.Response], message: str
) -> None:
    """Each response is a 401 with `message`, each left one refused audit event, and nothing else was stored."""
    for response in responses:
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert (error["code"], error["message"]) == ("Unauthenticated", message), response.text
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    after = stored_webhooks(database)
    assert (after.inbound_events, after.operations, after.outbox_messages) == (
        before.inbound_events,
        before.operations,
        before.outbox_messages,
    )
    # Refusals are tallied (one row per source, reason and minute): each response is one occurrence.
    counted_before = {event.id: event.occurrences for event in before.refusals}
    new_refusals = [event for event in after.refusals if counted_before.get(event.id) != event.occurrences]
    assert sum(event.occurrences - counted_before.get(event.id, 0) for event in new_refusals) == len(responses)
    for event in new_refusals:
        assert event.outcome == AuditOutcome.REFUSED
        assert event.actor == "marketplace:unverified"
        assert event.details["status"] == 401
        assert event.details["reason"] == message


@pytest.mark.parametrize("attack", list(WEBHOOK_ATTACKS))
def test_webhook_refuses_the_attack_and_stores_nothing(
    attack: str, control_plane: ControlPlane, emulators: Emulators, database: Database
) -> None:
    make_token, message = WEBHOOK_ATTACKS[attack]
    token = make_token(emulators, webhook_recipient(emulators))
    before = stored_webhooks(database)
    response = post_webhook(control_plane.base_url, token, webhook_body())
    assert_refused_and_nothing_stored(database, before, [response], message)


def test_webhook_accepts_a_replayed_valid_token_once_per_operation(
    control_plane: ControlPlane, emulators: Emulators, database: Database, active_subscription: ActiveSubscription
) -> None:
    """Replaying a captured valid token with the same operation is answered 200 and has no second effect.

    Replay is allowed by design: Marketplace itself redelivers an unanswered webhook many times with the
    same token, and a bearer token cannot tell a redelivery from a replay. Safety comes from storage being
    idempotent on the operation id and from the worker reading the operation back from Marketplace.
    """
    subscription_id = active_subscription.subscription_id
    emulators.set_webhook(None)  # we deliver this real operation ourselves, then replay it
    try:
        operation = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 3})
        emulators.wait_until_not_delivered({operation["id"]})
    finally:
        emulators.set_webhook(f"{control_plane.base_url}/marketplace/webhook")
    body = {**operation, "subscription": emulators.marketplace_subscription(subscription_id), "purchaseToken": None}
    token = emulators.webhook_token()
    first = post_webhook(control_plane.base_url, token, body)
    replay = post_webhook(control_plane.base_url, token, body)
    assert (first.status_code, replay.status_code) == (200, 200), (first.text, replay.text)
    assert first.json() == {"operation_id": operation["id"], "status": "accepted"}
    assert replay.json() == {"operation_id": operation["id"], "status": "duplicate"}
    with database.session() as session:
        inbound = session.exec(select(InboundEvent).where(InboundEvent.natural_id == operation["id"])).all()
        operations = session.exec(select(MarketplaceOperation).where(MarketplaceOperation.id == operation["id"])).all()
        work = [
            message
            for message in session.exec(select(OutboxMessage)).all()
            if message.arguments.get("operation_id") == operation["id"]
        ]
        received = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "marketplace.webhook_received", AuditEvent.subject_id == operation["id"]
            )
        ).all()
        refusals = session.exec(select(AuditEvent).where(AuditEvent.action == WEBHOOK_REFUSED)).all()
    assert (len(inbound), len(operations), len(work), len(received), len(refusals)) == (1, 1, 1, 1, 0)


@pytest.mark.parametrize("attack", list(COMMON_ATTACKS))
def test_json_api_refuses_the_attack(attack: str, control_plane: ControlPlane, emulators: Emulators) -> None:
    recipient = json_api_recipient(emulators)
    url = f"{control_plane.base_url}/api/publisher/subscriptions"
    # The genuine operator token passes, so the 401 below is the attack's doing.
    genuine = httpx.get(url, headers={"Authorization": f"Bearer {genuine_token(emulators, recipient)}"}, timeout=15)
    assert genuine.status_code == 200, genuine.text
    make_token, message = COMMON_ATTACKS[attack]
    response = httpx.get(url, headers={"Authorization": f"Bearer {make_token(emulators, recipient)}"}, timeout=15)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["message"] == message
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@dataclass
class KeysEndpointProbe:
    """Counts requests that reach the Entra emulator's JWKS endpoint, through its own fault-rule hit counter.

    A zero-latency rule has no effect on the request; the emulator counts each match server-side, so the
    figure is what crossed the wire from the API process, not what the product says about itself.
    """

    emulators: Emulators
    rule_id: int

    @classmethod
    def install(cls, emulators: Emulators) -> KeysEndpointProbe:
        """Add the counting rule for GETs of the v2 and v1 key endpoints."""
        rule = emulators.http.post(
            f"{emulators.entra['control_url']}/faults",
            json={"kind": "latency", "latency_ms": 0, "method": "GET", "path_pattern": r"/discovery/(v2\.0/)?keys$"},
        )
        return cls(emulators, rule.raise_for_status().json()["id"])

    def fetches(self) -> int:
        """How many key-set requests the emulator has served since the rule was added."""
        rules = self.emulators.http.get(f"{self.emulators.entra['control_url']}/faults").raise_for_status().json()
        hits: int = next(rule["hits"] for rule in rules if rule["id"] == self.rule_id)
        return hits

    def remove(self) -> None:
        """The fault API clears all rules at once; these tests add no other Entra rule."""
        self.emulators.http.delete(f"{self.emulators.entra['control_url']}/faults").raise_for_status()


@pytest.fixture
def fresh_api(tmp_path: Path, app_settings: Settings) -> Iterator[str]:
    """An API process of its own whose key cache is still empty, so its key fetches can be counted exactly."""
    group, base_url = start_api(tmp_path / "api-logs", app_settings)
    yield base_url
    group.stop_all()


def test_a_burst_of_unknown_kids_fetches_the_key_set_once(
    fresh_api: str, emulators: Emulators, database: Database
) -> None:
    probe = KeysEndpointProbe.install(emulators)
    try:
        _, claims, _ = _genuine_parts(emulators, webhook_recipient(emulators))
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tokens = [sign_with_unknown_key(claims, private_key) for _ in range(BURST_SIZE)]
        before = stored_webhooks(database)
        with ThreadPoolExecutor(max_workers=10) as pool:
            responses = list(pool.map(lambda token: post_webhook(fresh_api, token, webhook_body()), tokens))
        assert_refused_and_nothing_stored(database, before, responses, "token signed by an unknown key")
        # The empty cache fetches once for the first unknown kid; the other 49 are refused from the cache.
        assert probe.fetches() == 1
        # The cache holds the real keys: a genuine token is verified without another fetch.
        operator = genuine_token(emulators, json_api_recipient(emulators))
        listed = httpx.get(
            f"{fresh_api}/api/publisher/subscriptions", headers={"Authorization": f"Bearer {operator}"}, timeout=15
        )
        assert listed.status_code == 200, listed.text
        assert probe.fetches() == 1
    finally:
        probe.remove()
