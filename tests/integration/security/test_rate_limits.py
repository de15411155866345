"""Rate limits and back-pressure against real API processes, the Entra emulator and the Marketplace emulator.

Each test speaks from its own loopback address (127.0.0.x), so address buckets never carry over between
tests; limits are tiny (1 request/s, a burst of 3) so a few requests cross them, and "served again after
Retry-After" waits the one real second the answer names. On CP_TEST_BROKER=redis the buckets live in Redis.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlmodel import select

from bench.webhook_burst import burst_and_drain, complete_outbox, stored_rows, webhook_body
from core.browser_sessions.service import SignedInIdentity, new_cookie_id, sign_in
from core.clock import utc_now
from core.db import Database
from core.inbox.models import InboundEvent
from core.marketplace.fulfillment_client import FulfillmentClient
from core.messaging import TaskNames
from core.settings import Settings
from tests.conftest import REDIS_URL, TEST_BROKER, migrated_database, start_api
from tests.integration.lifecycle.conftest import delete_test_rows
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.support.factories import create_outbox_row
from tests.support.waiting import wait_for
from web.rate_limits import BucketMode, BucketPolicy, RedisTokenBuckets

pytestmark = pytest.mark.timeout(120)

BURST = 3
BACKLOG_LIMIT = 100
BURST_SIZE = 1_000
BURST_CONCURRENCY = 100
# Requests sent at most while looking for the first 429 (the bucket refills a little while they run).
PROBE_REQUESTS = 12


def _storage_overrides() -> dict[str, str]:
    return {"CP_RATE_LIMIT_STORAGE_URL": REDIS_URL} if TEST_BROKER == "redis" else {}


@pytest.fixture(scope="module")
def own_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this module's own: no relay or worker of the other tests ever sees its thousand webhooks."""
    with migrated_database(tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module")
def own_database_engine(own_database_url: str) -> Iterator[Database]:
    database = Database(own_database_url)
    yield database
    database.dispose()


@pytest.fixture
def own_database(own_database_engine: Database) -> Iterator[Database]:
    """The module's database, emptied after each test."""
    yield own_database_engine
    delete_test_rows(own_database_engine)


@pytest.fixture(scope="module")
def limited_api(
    tmp_path_factory: pytest.TempPathFactory, app_settings: Settings, own_database_url: str
) -> Iterator[str]:
    """An API whose JSON API and portal allow 1 request/s with a burst of 3, and that refuses webhooks while
    more than 100 outbox messages wait, asking for a retry after 1 s (the webhook's own limit stays generous).
    """
    group, base_url = start_api(
        tmp_path_factory.mktemp("rate-limit-logs"),
        app_settings,
        CP_DATABASE_URL=own_database_url,
        CP_RATE_LIMIT_API_PER_SECOND="1",
        CP_RATE_LIMIT_API_BURST=str(BURST),
        CP_RATE_LIMIT_PORTAL_PER_SECOND="1",
        CP_RATE_LIMIT_PORTAL_BURST=str(BURST),
        CP_WEBHOOK_BACKLOG_LIMIT=str(BACKLOG_LIMIT),
        CP_WEBHOOK_BACKLOG_REFRESH_SECONDS="0.1",
        CP_WEBHOOK_BACKLOG_RETRY_AFTER_SECONDS="1",
        **_storage_overrides(),
    )
    yield base_url
    group.stop_all()


@pytest.fixture
def webhook_target(emulators: Emulators) -> Iterator[None]:
    """Whatever webhook URL the Marketplace emulator had is restored after the test."""
    previous = emulators.marketplace_control("GET", "/webhook")["url"]
    yield
    emulators.set_webhook(previous)


def client_from(address: str) -> httpx.Client:
    """An HTTP client whose requests leave from this loopback address (a distinct peer for the API)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def user_token(emulators: Emulators, object_id: str) -> dict[str, str]:
    """Authorization header of a customer admin of the publisher tenant, calling the control-plane app."""
    app_id = emulators.entra["control_plane_app_id"]
    token = emulators.mint_token(
        tenant_id=emulators.entra["publisher_tenant_id"],
        audience=app_id,
        client_id=app_id,
        extra_claims={
            "idtyp": "user",
            "scp": "user_impersonation",
            "oid": object_id,
            "roles": [],
            "name": "Rate limited user",
        },
    )
    return {"Authorization": f"Bearer {token}"}


def first_refusal(
    http: httpx.Client, url: str, headers: dict[str, str] | None = None
) -> tuple[list[int], httpx.Response]:
    """Send until the first 429; returns the statuses before it and the 429 itself."""
    statuses: list[int] = []
    for _ in range(PROBE_REQUESTS):
        response = http.get(url, headers=headers)
        if response.status_code == 429:
            return statuses, response
        statuses.append(response.status_code)
    raise AssertionError(f"no 429 after {PROBE_REQUESTS} requests: {statuses}")


def assert_precise_refusal(response: httpx.Response, reason: str) -> int:
    """A 429 names its reason and asks for a retry after a whole number of seconds; returns that number."""
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    error = response.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert error["details"] == {"reason": reason, "retry_after_seconds": retry_after}
    assert f"retry after {retry_after} s" in error["message"]
    return retry_after


def throttled_count(base_url: str, surface: str, reason: str) -> float:
    """The API's cp_requests_throttled counter for one surface and reason (0 before the first refusal)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    prefix = f'cp_requests_throttled_total{{reason="{reason}",surface="{surface}"}} '
    return next((float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix)), 0.0)


def test_a_client_over_its_limit_is_refused_others_are_not_and_it_is_served_again_after_retry_after(
    limited_api: str, emulators: Emulators
) -> None:
    url = f"{limited_api}/api/clusters/{uuid.uuid4()}"
    alice, bob = user_token(emulators, str(uuid.uuid4())), user_token(emulators, str(uuid.uuid4()))
    throttled_before = throttled_count(limited_api, "api", "client_limit")
    with client_from("127.0.0.11") as http:
        served, refused = first_refusal(http, url, alice)
        assert len(served) >= BURST
        assert set(served) == {404}  # served: an unknown cluster, not a refusal
        retry_after = assert_precise_refusal(refused, "client_limit")

        # Another principal, and an anonymous caller, from the same address: each its own client.
        assert http.get(url, headers=bob).status_code == 404
        assert http.get(url).status_code == 401

        time.sleep(retry_after)  # the bucket holds a token again exactly when Retry-After says
        assert http.get(url, headers=alice).status_code == 404
    assert throttled_count(limited_api, "api", "client_limit") >= throttled_before + 1


def test_forged_tokens_spend_their_senders_address_not_the_principal_they_claim(
    limited_api: str, emulators: Emulators
) -> None:
    url = f"{limited_api}/api/clusters/{uuid.uuid4()}"
    victim = user_token(emulators, str(uuid.uuid4()))
    header, payload, _ = victim["Authorization"].split(".")
    forged = {"Authorization": f"{header}.{payload}.{'A' * 342}"}  # the victim's claims, a made-up signature
    with client_from("127.0.0.12") as attacker:
        refused_before, refused = first_refusal(attacker, url, forged)
        assert len(refused_before) >= BURST
        assert set(refused_before) == {401}
        assert_precise_refusal(refused, "client_limit")
    with client_from("127.0.0.13") as victims_machine:
        assert [victims_machine.get(url, headers=victim).status_code for _ in range(BURST)] == [404] * BURST


def test_anonymous_portal_visitors_are_limited_by_address_and_a_signed_in_user_by_identity(
    limited_api: str, own_database_url: str
) -> None:
    url = f"{limited_api}/portal"
    identity = SignedInIdentity(
        entra_tenant_id=str(uuid.uuid4()),
        object_id=str(uuid.uuid4()),
        display_name="A",
        username="a",
        roles=(),
        directory_roles=(),
    )
    cookie_id = new_cookie_id()
    database = Database(own_database_url)
    try:
        with database.session() as session:
            sign_in(session, None, identity, cookie_id, utc_now())
    finally:
        database.dispose()
    cookie = f"cp_session={cookie_id}"
    with client_from("127.0.0.14") as http:
        _, refused = first_refusal(http, url)
        assert_precise_refusal(refused, "client_limit")
        assert http.get(url, headers={"Cookie": cookie}).status_code != 429


def fill_outbox(database: Database, count: int) -> list[int]:
    """Work the workers have not done yet: `count` outbox messages (no relay runs, so they stay)."""
    with database.session() as session:
        messages = [
            create_outbox_row(session, TaskNames.MARKETPLACE_PROCESS_OPERATION, {"operation_id": f"backlog-{index}"})
            for index in range(count)
        ]
        session.flush()
        return [message.id for message in messages if message.id is not None]


def inbox_ids(database: Database) -> list[str]:
    with database.session() as session:
        return list(session.exec(select(InboundEvent.natural_id)).all())


def wait_for_delivery(
    emulators: Emulators, operation_id: str, ready: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """The emulator's delivery log entry of this operation, once `ready` holds for it."""

    def check() -> dict[str, Any] | None:
        deliveries = emulators.marketplace_control("GET", "/webhook-deliveries")
        delivery = next((entry for entry in deliveries if entry["operation_id"] == operation_id), None)
        return delivery if delivery is not None and ready(delivery) else None

    return wait_for(check, what=what)


def test_webhooks_over_the_backlog_bound_get_429_and_marketplace_retries_until_stored(
    limited_api: str, emulators: Emulators, own_database: Database, app_settings: Settings, webhook_target: None
) -> None:
    backlog = fill_outbox(own_database, BACKLOG_LIMIT + 1)
    token = {"Authorization": f"Bearer {emulators.webhook_token()}", "Content-Type": "application/json"}
    direct_id = str(uuid.uuid4())
    with client_from("127.0.0.15") as http:
        refused = http.post(
            f"{limited_api}/marketplace/webhook", content=webhook_body(direct_id, str(uuid.uuid4())), headers=token
        )
        assert_precise_refusal(refused, "backlog")
        assert refused.headers["Retry-After"] == "1"
    assert inbox_ids(own_database) == []  # refused, so nothing was stored

    # Marketplace's own sender meets the bound on an InProgress operation: it must retry, not give up.
    purchase = emulators.purchase(plan_id="standard", quantity=2)
    subscription_id = purchase["subscription_id"]
    client = FulfillmentClient.from_settings(app_settings)
    try:
        client.activate(subscription_id, "standard", 2)
    finally:
        client.close()
    emulators.set_webhook(f"{limited_api}/marketplace/webhook")
    operation = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 3})
    throttled = wait_for_delivery(
        emulators,
        operation["id"],
        lambda delivery: len(delivery["attempts"]) >= 2,
        "the emulator retrying a throttled webhook",
    )
    assert [attempt["status_code"] for attempt in throttled["attempts"][:2]] == [429, 429]
    first, second = (datetime.fromisoformat(attempt["at"]) for attempt in throttled["attempts"][:2])
    assert throttled["attempts"][0]["retry_after_seconds"] == 1
    assert (second - first).total_seconds() >= 0.9  # Retry-After honoured, not the 0.5 s backoff

    complete_outbox(own_database, backlog)  # the workers catch up
    delivered = wait_for_delivery(
        emulators,
        operation["id"],
        lambda delivery: delivery["outcome"] == "delivered",
        "the webhook stored after the backlog drained",
    )
    assert delivered["attempts"][-1]["status_code"] == 200
    marketplace_operation = emulators.marketplace_operation(operation["id"])
    assert marketplace_operation is not None
    # A 4xx would have failed it; after 429s it waits for the publisher (or was accepted by the emulator's timeout).
    assert marketplace_operation["status"] in {"InProgress", "Succeeded"}
    with client_from("127.0.0.15") as http:
        stored = http.post(
            f"{limited_api}/marketplace/webhook", content=webhook_body(direct_id, str(uuid.uuid4())), headers=token
        )
        assert stored.status_code == 200
    assert sorted(inbox_ids(own_database)) == sorted([direct_id, operation["id"]])  # each stored once, none lost


def test_a_burst_of_webhooks_over_the_backlog_bound_is_absorbed_without_loss_or_duplicates(
    limited_api: str, emulators: Emulators, own_database: Database
) -> None:
    operation_ids = [str(uuid.uuid4()) for _ in range(BURST_SIZE)]
    result, drains = asyncio.run(
        burst_and_drain(
            f"{limited_api}/marketplace/webhook",
            emulators.webhook_token(),
            operation_ids,
            own_database,
            concurrency=BURST_CONCURRENCY,
            local_address="127.0.0.16",
        )
    )
    assert result.given_up == []
    assert result.delivered == BURST_SIZE
    assert result.throttled > 0
    assert drains >= 1
    assert set(result.statuses) == {200, 429}
    assert stored_rows(own_database) == {"inbox": BURST_SIZE, "inbox_distinct": BURST_SIZE, "outbox": BURST_SIZE}
    assert set(inbox_ids(own_database)) == set(operation_ids)


def test_health_and_metrics_are_never_throttled(limited_api: str) -> None:
    with client_from("127.0.0.17") as http:
        statuses = {http.get(f"{limited_api}{path}").status_code for path in ("/healthz", "/metrics") * 10}
    assert 429 not in statuses


@pytest.mark.skipif(TEST_BROKER != "redis", reason="the shared buckets are tested where Redis is the broker")
def test_buckets_shared_through_redis_follow_the_same_rules() -> None:
    policy = BucketPolicy(per_second=0.5, burst=2)  # slow enough that the test's own pace refills nothing
    prefix = f"cp:ratelimit-test:{uuid.uuid4().hex}:"

    async def scenario() -> list[float]:
        buckets = RedisTokenBuckets(REDIS_URL, key_prefix=prefix)
        try:
            waits = [await buckets.settle(["client", "address"], policy, BucketMode.ACQUIRE) for _ in range(3)]
            await buckets.settle(["address"], policy, BucketMode.CHARGE)
            await buckets.settle(["address"], policy, BucketMode.CHARGE)
            waits.append(await buckets.settle(["other", "address"], policy, BucketMode.ACQUIRE))
            await buckets.settle(["address"], policy, BucketMode.REFUND)
            await buckets.settle(["address"], policy, BucketMode.REFUND)
            waits.append(await buckets.settle(["other", "address"], policy, BucketMode.ACQUIRE))
            return waits
        finally:
            await buckets.client.aclose()

    waits = asyncio.run(scenario())
    assert waits[:2] == [0.0, 0.0]  # the burst
    assert 1.9 < waits[2] <= 2.0  # one token at 0.5/s; the address lent nothing
    assert 1.9 < waits[3] <= 2.0  # the address was charged into its last token: another client waits too
    assert waits[4] == 0.0  # refunded
