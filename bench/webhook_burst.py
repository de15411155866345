"""Benchmark: a burst of Marketplace webhooks absorbed by a rate-limited API without loss.

A sender plays Marketplace: `--count` webhooks with distinct operation ids, `--concurrency` in flight,
each retried on 429/5xx after the answer's Retry-After (else a short backoff) up to a bounded number of
attempts. The API runs with a per-client webhook limit low enough that the burst is throttled. At the end
the inbox and outbox rows are counted: every operation id stored once, none lost, none duplicated.

A second part measures what the rate-limit middleware costs per request, in process (no sockets, so the
figure is the middleware's own CPU time): a bare ASGI app against the same app behind the middleware, for
an anonymous request, a bearer-token request and a portal request with a signed session cookie.

Prints figures; asserts nothing. `python bench/webhook_burst.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlmodel import col, select
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import core.models  # registers every table
from bench.entra_for_webhooks import api_environment, start_entra
from bench.termination import exit_cleanly_on_sigterm
from core import migrator
from core.browser_sessions.service import SignedInIdentity, new_cookie_id, sign_in
from core.clock import utc_now
from core.db import Database, make_engine
from core.outbox.models import OutboxMessage
from core.outbox.service import claim_for_completion
from core.settings import Settings
from emulators.marketplace.webhooks import retry_after_seconds
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig
from harness.processes import free_port, wait_until_listening
from web.rate_limits import RateLimitMiddleware

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_SECONDS = 0.5
OVERHEAD_ROUNDS = 5
CALIBRATION_DOCUMENT = json.dumps({"tid": str(uuid.UUID(int=1)), "oid": str(uuid.UUID(int=2)), "exp": 2_000_000_000})


@dataclass
class BurstResult:
    """What the sender saw."""

    seconds: float = 0.0
    delivered: int = 0
    throttled: int = 0  # 429 answers
    retries: int = 0  # attempts after the first, for any retryable answer or connection error
    given_up: list[str] = field(default_factory=list)  # operation ids never answered 200
    statuses: Counter[int] = field(default_factory=Counter)


def webhook_body(operation_id: str, subscription_id: str) -> bytes:
    """A Renew notification as Marketplace sends it."""
    return json.dumps(
        {
            "id": operation_id,
            "activityId": str(uuid.uuid4()),
            "subscriptionId": subscription_id,
            "offerId": "vast-blob-facade",
            "planId": "standard",
            "quantity": 2,
            "action": "Renew",
            "timeStamp": "2026-11-26T00:00:00Z",
            "status": "Succeeded",
            "operationRequestSource": "Azure",
            "subscription": {"id": subscription_id},
        }
    ).encode()


async def send_burst(
    url: str,
    token: str,
    operation_ids: list[str],
    *,
    subscription_id: str,
    concurrency: int,
    max_attempts: int = 30,
    local_address: str | None = None,
    result: BurstResult | None = None,
) -> BurstResult:
    """Send one webhook per operation id, `concurrency` at a time, retrying the way Marketplace does.

    Pass `result` to watch the figures while the burst runs.
    """
    result = result or BurstResult()
    pending = iter(operation_ids)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def deliver(client: httpx.AsyncClient, operation_id: str) -> None:
        body = webhook_body(operation_id, subscription_id)
        for attempt in range(1, max_attempts + 1):
            wait = BACKOFF_SECONDS
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError:
                response = None
            if response is not None:
                result.statuses[response.status_code] += 1
                if response.status_code == 200:
                    result.delivered += 1
                    return
                if response.status_code not in RETRYABLE_STATUSES:
                    break
                if response.status_code == 429:
                    result.throttled += 1
                wait = retry_after_seconds(response.headers.get("retry-after")) or BACKOFF_SECONDS
            if attempt < max_attempts:
                result.retries += 1
                await asyncio.sleep(wait)
        result.given_up.append(operation_id)

    async def sender(client: httpx.AsyncClient) -> None:
        for operation_id in pending:
            await deliver(client, operation_id)

    transport = httpx.AsyncHTTPTransport(local_address=local_address) if local_address else None
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=30, limits=limits, transport=transport) as client:
        await asyncio.gather(*(sender(client) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


def stored_rows(database: Database) -> dict[str, int]:
    """Inbox rows, distinct inbox natural ids and outbox rows."""
    with database.engine.connect() as connection:
        return {
            name: int(connection.execute(sa.text(statement)).scalar_one())
            for name, statement in (
                ("inbox", "SELECT count(*) FROM inbound_events"),
                ("inbox_distinct", "SELECT count(DISTINCT natural_id) FROM inbound_events"),
                ("outbox", "SELECT count(*) FROM outbox_messages"),
            )
        }


def pending_outbox_ids(database: Database) -> list[int]:
    """Outbox messages not completed yet."""
    with database.session() as session:
        statement = select(OutboxMessage.id).where(col(OutboxMessage.completed_at).is_(None))
        return [message_id for message_id in session.exec(statement).all() if message_id is not None]


def complete_outbox(database: Database, message_ids: list[int]) -> None:
    """What the outbox consumer does when it finishes a message."""
    with database.session() as session:
        for message_id in message_ids:
            claim_for_completion(session, message_id)


async def drain_after_each_refusal(database: Database, result: BurstResult, finished: asyncio.Event) -> int:
    """The workers catching up, but only after the API has refused, so the backlog bound is crossed on any machine.

    Stands in for workers because the burst's operations exist nowhere in Marketplace (a worker would retry
    them, never complete them). Returns how many times the backlog was drained.
    """
    drained_at_refusals = 0
    drains = 0
    while not finished.is_set():
        if result.throttled > drained_at_refusals:
            drained_at_refusals = result.throttled
            await asyncio.to_thread(lambda: complete_outbox(database, pending_outbox_ids(database)))
            drains += 1
        await asyncio.sleep(0.2)
    return drains


async def burst_and_drain(
    url: str, token: str, operation_ids: list[str], database: Database, *, concurrency: int, local_address: str | None
) -> tuple[BurstResult, int]:
    """`send_burst` with `drain_after_each_refusal` alongside; returns the result and the number of drains."""
    result = BurstResult()
    finished = asyncio.Event()
    drainer = asyncio.create_task(drain_after_each_refusal(database, result, finished))
    try:
        await send_burst(
            url,
            token,
            operation_ids,
            subscription_id=str(uuid.uuid4()),
            concurrency=concurrency,
            local_address=local_address,
            result=result,
        )
    finally:
        finished.set()
    return result, await drainer


def _burst(options: argparse.Namespace) -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    schema = None
    admin = None
    if options.database == "sqlite":
        url = f"sqlite:///{state_dir / 'controlplane.db'}"
    else:
        schema = f"bench_burst_{uuid.uuid4().hex[:8]}"
        admin = make_engine(options.database)
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{options.database}?options=-csearch_path%3D{schema}"
    suite = EmulatorSuite(EmulatorSuiteConfig(state_dir=state_dir))
    process: subprocess.Popen[bytes] | None = None
    try:
        migrator.upgrade(url)
        entra, entra_environment = start_entra(suite)
        port = free_port()
        environment = {
            **api_environment(entra_environment, state_dir, port),
            "CP_DATABASE_URL": url,
            "CP_RATE_LIMIT_WEBHOOK_PER_SECOND": str(options.webhook_rate),
            "CP_RATE_LIMIT_WEBHOOK_BURST": str(options.webhook_burst),
            "CP_WEBHOOK_BACKLOG_LIMIT": str(options.backlog_limit),
            "CP_WEBHOOK_BACKLOG_REFRESH_SECONDS": "0.1",
            "CP_WEBHOOK_BACKLOG_RETRY_AFTER_SECONDS": "1",
        }
        log = (state_dir / "api.log").open("ab")
        process = subprocess.Popen([sys.executable, "-m", "cli.main", "api"], env=environment, stdout=log, stderr=log)
        log.close()
        wait_until_listening(f"http://127.0.0.1:{port}", timeout_seconds=180)
        operation_ids = [str(uuid.uuid4()) for _ in range(options.count)]
        database = Database(url)
        url_of_webhook = f"http://127.0.0.1:{port}/marketplace/webhook"
        token = entra.mint_marketplace_webhook_token()
        if options.backlog_limit:
            result, drains = asyncio.run(
                burst_and_drain(
                    url_of_webhook, token, operation_ids, database, concurrency=options.concurrency, local_address=None
                )
            )
        else:
            result = asyncio.run(
                send_burst(
                    url_of_webhook,
                    token,
                    operation_ids,
                    subscription_id=str(uuid.uuid4()),
                    concurrency=options.concurrency,
                )
            )
            drains = 0
        rows = stored_rows(database)
        database.dispose()
        backlog = (
            f"backlog bound {options.backlog_limit} ({drains} drains)" if options.backlog_limit else "no backlog bound"
        )
        print(
            f"webhook burst on {options.database.split(':')[0]}: {options.count} webhooks, concurrency "
            f"{options.concurrency}, limit {options.webhook_rate:g}/s burst {options.webhook_burst}, {backlog}, "
            "1 API process"
        )
        print(f"  time {result.seconds:.1f} s ({options.count / result.seconds:.0f} webhooks/s stored)")
        print(f"  answers {dict(sorted(result.statuses.items()))}; 429s {result.throttled}; retries {result.retries}")
        print(
            f"  stored: {rows['inbox']} inbox rows ({rows['inbox_distinct']} distinct), {rows['outbox']} outbox rows; "
            f"lost {options.count - rows['inbox_distinct']}, duplicated {rows['inbox'] - rows['inbox_distinct']}, "
            f"given up by the sender {len(result.given_up)}"
        )
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=15)
        suite.stop()
        if admin is not None:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


async def _bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    await Response(b"{}", media_type="application/json")(scope, receive, send)


def _per_request_microseconds(app: ASGIApp, scope: Scope, repeat: int) -> float:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: Message) -> None:
        return None

    async def loop() -> float:
        started = time.perf_counter()
        for _ in range(repeat):
            await app(dict(scope), receive, send)
        return time.perf_counter() - started

    return asyncio.run(loop()) / repeat * 1e6


def _overhead(options: argparse.Namespace) -> None:
    settings = Settings(
        _env_file=None,
        database_url="sqlite://",
        publisher_tenant_id="00000000-0000-0000-0000-00000000aaaa",
        publisher_client_id="00000000-0000-0000-0000-00000000bbbb",
        publisher_client_secret=secrets.token_urlsafe(16),
        session_secret=secrets.token_urlsafe(32),
        # Never refuse during the measurement: the figure is the cost of admitting.
        rate_limit_api_per_second=1e9,
        rate_limit_api_burst=1_000_000,
        rate_limit_portal_per_second=1e9,
        rate_limit_portal_burst=1_000_000,
        webhook_backlog_limit=0,
    )
    # Sessions live in the database: a file the portal case's session record is written to.
    database = Database(f"sqlite:///{tempfile.mkdtemp(prefix='overhead-')}/sessions.db")
    core.models.metadata.create_all(database.engine)
    limited = RateLimitMiddleware(_bare_app, settings=settings, database=database)
    tenant_id, object_id = str(uuid.uuid4()), str(uuid.uuid4())
    claims = {"tid": tenant_id, "oid": object_id, "aud": "x", "exp": 2_000_000_000}
    token = "eyJhbGciOiJSUzI1NiJ9." + _base64url(json.dumps(claims).encode()) + "." + "s" * 342
    cookie_id = new_cookie_id()
    identity = SignedInIdentity(tenant_id, object_id, "u", "u", (), ())
    with database.session() as db:
        sign_in(db, None, identity, cookie_id, utc_now())
    cookie = f"{settings.session_cookie_name}={cookie_id}"
    base: Scope = {"type": "http", "method": "GET", "client": ("127.0.0.1", 50000), "query_string": b""}
    cases: dict[str, Scope] = {
        "anonymous api request": {**base, "path": "/api/clusters/x", "headers": []},
        "bearer token api request": {
            **base,
            "path": "/api/clusters/x",
            "headers": [(b"authorization", f"Bearer {token}".encode())],
        },
        "portal request with session": {**base, "path": "/portal", "headers": [(b"cookie", cookie.encode())]},
    }
    print(
        f"rate-limit middleware cost per request, in process: best of {OVERHEAD_ROUNDS} alternating rounds "
        f"of {options.repeat} requests per case (the machine's other load inflates single rounds)"
    )
    calibration = min(timeit.repeat(lambda: json.loads(CALIBRATION_DOCUMENT), number=options.repeat, repeat=5))
    print(f"  (calibration: json.loads of a 120-byte document takes {calibration / options.repeat * 1e6:.1f} us here)")
    for name, scope in cases.items():
        bare = min(_per_request_microseconds(_bare_app, scope, options.repeat) for _ in range(OVERHEAD_ROUNDS))
        with_limits = min(_per_request_microseconds(limited, scope, options.repeat) for _ in range(OVERHEAD_ROUNDS))
        print(f"  {name:30s} bare {bare:6.1f} us  with limits {with_limits:6.1f} us  cost {with_limits - bare:5.1f} us")


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    """Run the burst, then the per-request overhead, and print the figures."""
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL URL (a throwaway schema)")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--webhook-rate", type=float, default=200.0, help="per-client webhooks per second")
    parser.add_argument("--webhook-burst", type=int, default=200)
    parser.add_argument(
        "--backlog-limit", type=int, default=0, help="outbox backlog bound; >0 drains it after each 429, as workers"
    )
    parser.add_argument("--repeat", type=int, default=5_000, help="requests per overhead case")
    parser.add_argument("--skip-burst", action="store_true")
    options = parser.parse_args()
    if not options.skip_burst:
        _burst(options)
    _overhead(options)


if __name__ == "__main__":
    main()
