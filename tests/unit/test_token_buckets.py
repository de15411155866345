"""The in-process token buckets, the surface and client of a request, and the cached outbox backlog, on a test clock."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from core.db import Database
from core.messaging import TaskNames
from tests.support.factories import create_outbox_row
from web.rate_limits import (
    BucketMode,
    BucketPolicy,
    InProcessTokenBuckets,
    OutboxBacklog,
    Surface,
    claimed_client,
    peer_of,
    surface_of,
)

POLICY = BucketPolicy(per_second=2.0, burst=3)


class ManualClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settle(buckets: InProcessTokenBuckets, keys: list[str], mode: BucketMode = BucketMode.ACQUIRE) -> float:
    return asyncio.run(buckets.settle(keys, POLICY, mode))


def test_a_bucket_admits_its_burst_then_names_the_wait_and_refills_at_its_rate() -> None:
    clock = ManualClock()
    buckets = InProcessTokenBuckets(clock=clock)
    assert [settle(buckets, ["a"]) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert settle(buckets, ["a"]) == pytest.approx(0.5)  # one token at 2/s
    assert settle(buckets, ["b"]) == 0.0  # another client is unaffected
    clock.now += 0.5
    assert settle(buckets, ["a"]) == 0.0
    assert settle(buckets, ["a"]) == pytest.approx(0.5)
    clock.now += 60
    assert [settle(buckets, ["a"]) for _ in range(4)][-1] > 0  # refilled to the burst, never beyond


def test_acquire_needs_every_bucket_and_takes_from_the_first_only() -> None:
    clock = ManualClock()
    buckets = InProcessTokenBuckets(clock=clock)
    for _ in range(3):
        settle(buckets, ["address"], BucketMode.CHARGE)
    assert settle(buckets, ["client", "address"]) == pytest.approx(0.5)  # the address is empty: refused
    clock.now += 0.5
    assert settle(buckets, ["client", "address"]) == 0.0
    assert settle(buckets, ["address"]) == 0.0  # the client paid, not the address


def test_charge_goes_into_debt_and_refund_gives_back_up_to_the_burst() -> None:
    clock = ManualClock()
    buckets = InProcessTokenBuckets(clock=clock)
    for _ in range(5):
        settle(buckets, ["a"], BucketMode.CHARGE)
    assert settle(buckets, ["a"]) == pytest.approx(1.5)  # 3 - 5 = -2 tokens: 3 tokens short at 2/s
    for _ in range(10):
        settle(buckets, ["a"], BucketMode.REFUND)
    assert [settle(buckets, ["a"]) for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.5)]


def test_memory_stays_bounded_when_many_clients_appear() -> None:
    clock = ManualClock()
    buckets = InProcessTokenBuckets(max_buckets=100, clock=clock)

    async def many_clients(prefix: str, count: int) -> None:
        for index in range(count):
            await buckets.settle([f"{prefix}-{index}"], POLICY, BucketMode.ACQUIRE)

    asyncio.run(many_clients("client", 1000))
    assert len(buckets) <= 100
    # Making room drops idle clients (full again) and keeps one that is still short of tokens.
    clock.now += 2
    for _ in range(3):
        settle(buckets, ["busy"])
    asyncio.run(many_clients("late", 60))
    assert len(buckets) <= 100
    assert settle(buckets, ["busy"]) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("path", "surface"),
    [
        ("/healthz", None),
        ("/readyz", None),
        ("/metrics", None),
        ("/portal/static/portal.css", None),
        ("/marketplace/webhook", Surface.WEBHOOK),
        ("/managedapp/notifications", Surface.WEBHOOK),
        ("/portal", Surface.PORTAL),
        ("/portal/clusters", Surface.PORTAL),
        ("/auth/callback", Surface.PORTAL),
        ("/marketplace/landing", Surface.PORTAL),
        ("/marketplace/subscriptions/x/progress", Surface.PORTAL),
        ("/api/clusters/x", Surface.API),
        ("/api/publisher/subscriptions", Surface.API),
        ("/openapi.json", Surface.API),
    ],
)
def test_every_path_has_its_surface(path: str, surface: Surface | None) -> None:
    assert surface_of(path) == surface


def _token(claims: object) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJl"


def test_claims_name_the_client_of_a_token() -> None:
    claims = {"tid": "tenant", "azp": "marketplace", "oid": "user"}
    assert claimed_client(_token(claims), Surface.WEBHOOK) == "tenant/marketplace"
    assert claimed_client(_token({"tid": "tenant", "appid": "app"}), Surface.WEBHOOK) == "tenant/app"
    assert claimed_client(_token(claims), Surface.API) == "tenant/user"
    assert claimed_client(_token({"tid": "t" * 500, "oid": "u"}), Surface.API) == "t" * 64 + "/u"
    for unreadable in ("", "a.b", "a.!!!.c", _token(["not", "an", "object"]), _token({"tid": 1, "oid": "u"})):
        assert claimed_client(unreadable, Surface.API) is None
    assert claimed_client(_token({"tid": "t", "oid": "u", "pad": "x" * 20_000}), Surface.API) is None


def test_the_peer_is_the_address_and_ipv6_counts_by_its_64_prefix() -> None:
    assert peer_of({"client": ("192.0.2.7", 5000)}) == "192.0.2.7"
    assert peer_of({"client": ("2001:db8:1:2:aaaa::1", 5000)}) == peer_of({"client": ("2001:db8:1:2:bbbb::9", 1)})
    assert peer_of({"client": None}) == "unknown"


def test_the_backlog_is_read_at_most_once_per_interval(database: Database) -> None:
    clock = ManualClock()
    backlog = OutboxBacklog(database, refresh_seconds=1.0, clock=clock)

    def add_messages(count: int) -> None:
        with database.session() as session:
            for _ in range(count):
                create_outbox_row(session, TaskNames.MARKETPLACE_PROCESS_OPERATION, {})

    async def scenario() -> list[int]:
        seen = [await backlog.count()]
        add_messages(2)
        seen.append(await backlog.count())  # cached: the interval has not passed
        clock.now += 1.0
        seen.append(await backlog.count())
        return seen

    assert asyncio.run(scenario()) == [0, 0, 2]
