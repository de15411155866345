"""Per-client rate limits and webhook back-pressure, answered with 429, Retry-After and a JSON error.

Each request belongs to a surface with its own token-bucket policy: `webhook` (the Marketplace webhook and
managed-app notifications), `portal` (browser pages) and `api` (the JSON API); health checks, `/metrics`
and static files are never throttled. The client is who the request says it is:

- a bearer token's claims (webhook: tid + azp/appid, so Marketplace is one client; api: tid + oid). They
  are read unverified, so they only name the bucket: a request is admitted when both the token's bucket
  and the peer address's bucket have a token, and takes it from the token's bucket. When the answer is
  401 (the token was refused) the token goes back and the address's bucket pays instead, so forged tokens
  spend their sender's address; the principal they claim only lends a token while the check runs;
- a portal request's session cookie: the tid + oid of the person its server-side record names (one read by
  primary key, remembered per cookie for a few minutes);
- otherwise the peer address (IPv6 by /64), charged up front.

Buckets live in each API process, or in Redis (`CP_RATE_LIMIT_STORAGE_URL`) so every process shares
them; a Redis outage fails open. Webhook intake is also refused while the outbox backlog (messages not
completed) is above `CP_WEBHOOK_BACKLOG_LIMIT`; the count is cached and read at most once per refresh
interval per process, so it may overshoot by what one interval admits. Refusals are counted in
`cp_requests_throttled` by surface and reason only: nothing per request is written anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import anyio
import redis.asyncio
from fastapi import FastAPI
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.browser_sessions.models import BrowserSessionRecord
from core.browser_sessions.service import record_key
from core.db import Database
from core.errors import TooManyRequests
from core.outbox.service import pending_count
from core.settings import Settings
from core.telemetry.metrics import REQUESTS_THROTTLED
from web.browser_paths import STATIC_PATH_PREFIX, is_browser_path
from web.errors import ErrorPage, error_answer, no_error_page

logger = logging.getLogger(__name__)

UNTHROTTLED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
UNTHROTTLED_PREFIXES = (STATIC_PATH_PREFIX,)
WEBHOOK_PREFIXES = ("/marketplace/webhook", "/managedapp")
# Longer bearer tokens are not parsed for claims (they are charged to the address like anonymous calls).
MAX_TOKEN_CHARACTERS = 16_384
# Claim values in bucket keys are cut to this length, so a token cannot make a key arbitrarily long.
MAX_CLAIM_CHARACTERS = 64
IN_PROCESS_MAX_BUCKETS = 100_000
SESSION_CACHE_SIZE = 10_000
SESSION_CACHE_SECONDS = 300.0
MAX_SESSION_COOKIE_CHARACTERS = 128
# Clients read from recent tokens, by signature (tokens are reused for their lifetime); emptied when full.
TOKEN_CACHE_SIZE = 4_096
STORAGE_WARNING_INTERVAL_SECONDS = 30.0
UNAUTHENTICATED = 401


class Surface(StrEnum):
    """Which door a request came through; each has its own limit."""

    API = "api"
    PORTAL = "portal"
    WEBHOOK = "webhook"


class BucketMode(StrEnum):
    """What a bucket operation does with the tokens it finds."""

    ACQUIRE = "acquire"  # when every bucket named has a token, take one from the first; else take nothing
    CHARGE = "charge"  # take one token from every bucket named, into debt if need be
    REFUND = "refund"  # give one token back to every bucket named


@dataclass(frozen=True)
class BucketPolicy:
    """A token bucket: `burst` tokens at most, refilled at `per_second`."""

    per_second: float
    burst: int


class TokenBuckets(Protocol):
    """Buckets by key; every operation is atomic across the keys it names."""

    async def settle(self, keys: Sequence[str], policy: BucketPolicy, mode: BucketMode) -> float:
        """Apply `mode`; return 0 when every bucket had a token, else seconds until each has one."""
        ...  # pragma: no cover


class InProcessTokenBuckets:
    """Buckets in this process's memory. Single-threaded on the event loop, so no lock is needed.

    Memory is bounded: past `max_buckets`, buckets that are full again (idle clients) are dropped, then
    the oldest, until a quarter of the room is free, so the sweep runs at most once per that many new keys.
    """

    def __init__(self, max_buckets: int = IN_PROCESS_MAX_BUCKETS, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_buckets = max_buckets
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, refilled at, full again at]

    async def settle(self, keys: Sequence[str], policy: BucketPolicy, mode: BucketMode) -> float:
        now = self.clock()
        states = [self._refilled(key, policy, now) for key in keys]
        wait = max((1.0 - state[0]) / policy.per_second if state[0] < 1.0 else 0.0 for state in states)
        if mode is BucketMode.ACQUIRE:
            if wait == 0.0:
                self._add(states[0], -1.0, policy, now)
        else:
            for state in states:
                self._add(state, 1.0 if mode is BucketMode.REFUND else -1.0, policy, now)
        return wait

    @staticmethod
    def _add(state: list[float], tokens: float, policy: BucketPolicy, now: float) -> None:
        state[0] = min(float(policy.burst), state[0] + tokens)
        state[2] = now + (policy.burst - state[0]) / policy.per_second

    def __len__(self) -> int:
        return len(self._buckets)

    def _refilled(self, key: str, policy: BucketPolicy, now: float) -> list[float]:
        state = self._buckets.get(key)
        if state is None:
            if len(self._buckets) >= self.max_buckets:
                self._make_room(now)
            state = [float(policy.burst), now, now]
            self._buckets[key] = state
        else:
            state[0] = min(float(policy.burst), state[0] + (now - state[1]) * policy.per_second)
            state[1] = now
        return state

    def _make_room(self, now: float) -> None:
        # A full bucket holds no information: dropping it changes nothing for its client.
        for key in [key for key, state in self._buckets.items() if state[2] <= now]:
            del self._buckets[key]
        target = self.max_buckets * 3 // 4
        for key in list(self._buckets)[: max(0, len(self._buckets) - target)]:
            del self._buckets[key]


# Token buckets in Redis hashes, with Redis's clock so every API process agrees on time.
# KEYS: the buckets; ARGV: per_second, burst, mode. Returns the wait in seconds as a string (keeps the fraction).
_REDIS_SETTLE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local mode = ARGV[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local wait = 0
local levels = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  levels[i] = tokens
  if tokens < 1 then wait = math.max(wait, (1 - tokens) / rate) end
end
local function store(i, tokens)
  redis.call('HSET', KEYS[i], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil((burst - tokens) / rate * 1000) + 1000)
end
if mode == 'acquire' then
  if wait == 0 then store(1, levels[1] - 1) end
else
  for i = 1, #KEYS do
    if mode == 'charge' then store(i, levels[i] - 1) else store(i, math.min(burst, levels[i] + 1)) end
  end
end
return tostring(wait)
"""


class RedisTokenBuckets:
    """Buckets shared by every API process through one Redis; an unreachable Redis admits (fails open)."""

    def __init__(self, url: str, key_prefix: str = "cp:ratelimit:") -> None:
        self.client = redis.asyncio.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.key_prefix = key_prefix
        self._script = self.client.register_script(_REDIS_SETTLE)
        self._last_warning = float("-inf")

    async def settle(self, keys: Sequence[str], policy: BucketPolicy, mode: BucketMode) -> float:
        try:
            wait = await self._script(
                keys=[self.key_prefix + key for key in keys], args=[policy.per_second, policy.burst, mode.value]
            )
        except (RedisError, OSError) as error:
            # Throttling is protection, not correctness: serving unthrottled beats refusing everything.
            now = time.monotonic()
            if now - self._last_warning >= STORAGE_WARNING_INTERVAL_SECONDS:
                self._last_warning = now
                logger.warning("rate limit storage unavailable, admitting", extra={"error": type(error).__name__})
            return 0.0
        return float(wait)


def token_buckets(settings: Settings) -> TokenBuckets:
    """The bucket storage the settings name."""
    if settings.rate_limit_storage_url:
        return RedisTokenBuckets(settings.rate_limit_storage_url)
    return InProcessTokenBuckets()


class OutboxBacklog:
    """The number of outbox messages not completed, read from the database at most once per interval.

    One request refreshes a stale value (on a worker thread); requests arriving meanwhile use the last value.
    """

    def __init__(self, database: Database, refresh_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.database = database
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._value = 0
        self._read_at = float("-inf")
        self._refreshing = False

    async def count(self) -> int:
        """The backlog as of at most `refresh_seconds` ago (or as of the read in flight)."""
        if self._refreshing or self.clock() - self._read_at < self.refresh_seconds:
            return self._value
        self._refreshing = True
        try:
            self._value = await anyio.to_thread.run_sync(self._read)
        except SQLAlchemyError as error:
            # The webhook itself will fail on a database that cannot count; keep the last known value.
            logger.warning("outbox backlog unreadable", extra={"error": type(error).__name__})
        finally:
            self._read_at = self.clock()
            self._refreshing = False
        return self._value

    def _read(self) -> int:
        with self.database.session() as session:
            return pending_count(session)


@dataclass(frozen=True)
class Identity:
    """Whose buckets a request spends: its client's when it names one, else its address's."""

    address_key: str
    client_key: str | None = None
    claimed: bool = False  # the client comes from unverified token claims (settled by the answer's status)

    def buckets(self) -> list[str]:
        """The buckets that must hold a token; the first one pays. Unverified claims also need the address's."""
        if self.client_key is None:
            return [self.address_key]
        return [self.client_key, self.address_key] if self.claimed else [self.client_key]


class SessionClients:
    """Portal session cookies already checked, by digest: cookie -> `tid/oid` or None (anonymous)."""

    def __init__(self, settings: Settings, database: Database, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock
        self._entries: OrderedDict[bytes, tuple[str | None, float]] = OrderedDict()

    def client_of(self, scope: Scope, cookie: str) -> str | None:
        """The signed-in user of this cookie, or None when it is absent, forged or expired."""
        digest = hashlib.blake2b(cookie.encode(), digest_size=16).digest()
        now = self.clock()
        entry = self._entries.get(digest)
        if entry is not None and entry[1] > now:
            self._entries.move_to_end(digest)
            return entry[0]
        client = None
        if len(cookie) <= MAX_SESSION_COOKIE_CHARACTERS:
            # Only names the bucket: whether the session is still valid is the page's own check.
            with self.database.session() as session:
                record = session.get(BrowserSessionRecord, record_key(cookie))
                if record is not None and record.ended_at is None and record.signed_in:
                    client = _user_key(str(record.entra_tenant_id), str(record.object_id))
        self._entries[digest] = (client, now + SESSION_CACHE_SECONDS)
        self._entries.move_to_end(digest)
        if len(self._entries) > SESSION_CACHE_SIZE:
            self._entries.popitem(last=False)
        return client


def _user_key(tenant_id: str, object_id: str) -> str:
    return f"{tenant_id[:MAX_CLAIM_CHARACTERS]}/{object_id[:MAX_CLAIM_CHARACTERS]}"


def surface_of(path: str) -> Surface | None:
    """The surface of a request path; None for what is never throttled."""
    if path in UNTHROTTLED_PATHS or path.startswith(UNTHROTTLED_PREFIXES):
        return None
    if path.startswith(WEBHOOK_PREFIXES):
        return Surface.WEBHOOK
    if is_browser_path(path):
        return Surface.PORTAL
    return Surface.API


def peer_of(scope: Scope) -> str:
    """The peer address (as the server saw it, after any trusted proxy headers); IPv6 by its /64."""
    client = scope.get("client")
    host = str(client[0]) if client else "unknown"
    if ":" in host:
        try:
            return str(ipaddress.ip_network(f"{host}/64", strict=False))
        except ValueError:
            return host[:MAX_CLAIM_CHARACTERS]
    return host


def claimed_client(token: str, surface: Surface) -> str | None:
    """`tid/appid` (webhook) or `tid/oid` (api) from a JWT's payload, unverified; None when unreadable."""
    if len(token) > MAX_TOKEN_CHARACTERS:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(claims, dict):
        return None
    tenant = claims.get("tid")
    party = (claims.get("azp") or claims.get("appid")) if surface is Surface.WEBHOOK else claims.get("oid")
    if not isinstance(tenant, str) or not isinstance(party, str):
        return None
    return f"{tenant[:MAX_CLAIM_CHARACTERS]}/{party[:MAX_CLAIM_CHARACTERS]}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RateLimitMiddleware:
    """Admit or refuse each request by its surface's policy (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, settings: Settings, database: Database, error_page: ErrorPage = no_error_page
    ) -> None:
        self.app = app
        self.settings = settings
        self.error_page = error_page
        self.buckets = token_buckets(settings)
        self.backlog = OutboxBacklog(database, settings.webhook_backlog_refresh_seconds)
        self.sessions = SessionClients(settings, database)
        self._token_clients: dict[tuple[Surface, str], str | None] = {}
        self.policies = {
            Surface.API: BucketPolicy(settings.rate_limit_api_per_second, settings.rate_limit_api_burst),
            Surface.PORTAL: BucketPolicy(settings.rate_limit_portal_per_second, settings.rate_limit_portal_burst),
            Surface.WEBHOOK: BucketPolicy(settings.rate_limit_webhook_per_second, settings.rate_limit_webhook_burst),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        surface = surface_of(scope["path"]) if scope["type"] == "http" else None
        if surface is None:
            await self.app(scope, receive, send)
            return
        if surface is Surface.WEBHOOK and self.settings.webhook_backlog_limit:
            backlog = await self.backlog.count()
            if backlog > self.settings.webhook_backlog_limit:
                retry_after = self.settings.webhook_backlog_retry_after_seconds
                message = f"webhook intake is {backlog} messages behind; retry after {retry_after} s"
                await self._refuse(scope, receive, send, surface, "backlog", retry_after, message)
                return
        policy = self.policies[surface]
        identity = self._identify(scope, surface)
        wait = await self.buckets.settle(identity.buckets(), policy, BucketMode.ACQUIRE)
        if wait:
            await self._refuse_over_limit(scope, receive, send, surface, wait)
            return
        if identity.client_key is None or not identity.claimed:
            await self.app(scope, receive, send)
            return
        await self._serve_then_settle(scope, receive, send, policy, identity.client_key, identity.address_key)

    def _identify(self, scope: Scope, surface: Surface) -> Identity:
        address_key = f"{surface.value}:address:{peer_of(scope)}"
        if surface is Surface.PORTAL:
            cookies = _header(scope, b"cookie")
            cookie = cookie_parser(cookies).get(self.settings.session_cookie_name) if cookies else None
            client = self.sessions.client_of(scope, cookie) if cookie else None
            return Identity(address_key, f"{surface.value}:user:{client}" if client else None)
        authorization = _header(scope, b"authorization")
        if authorization is None:
            return Identity(address_key)
        scheme, _, token = authorization.partition(" ")
        client = self._token_client(token.strip(), surface) if scheme.lower() == "bearer" else None
        return Identity(address_key, f"{surface.value}:client:{client}" if client else None, claimed=True)

    def _token_client(self, token: str, surface: Surface) -> str | None:
        # The signature differs for every token the authority issues; a forged one only names a bucket anyway.
        cache_key = (surface, token[token.rfind(".") + 1 :])
        if cache_key in self._token_clients:
            return self._token_clients[cache_key]
        client = claimed_client(token, surface)
        if len(self._token_clients) >= TOKEN_CACHE_SIZE:
            self._token_clients.clear()
        self._token_clients[cache_key] = client
        return client

    async def _serve_then_settle(
        self, scope: Scope, receive: Receive, send: Send, policy: BucketPolicy, client_key: str, address_key: str
    ) -> None:
        async def send_and_settle(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == UNAUTHENTICATED:
                # The token was refused: its claims named someone else's bucket, so the sender's address pays.
                await self.buckets.settle([client_key], policy, BucketMode.REFUND)
                await self.buckets.settle([address_key], policy, BucketMode.CHARGE)
            await send(message)

        await self.app(scope, receive, send_and_settle)

    async def _refuse_over_limit(
        self, scope: Scope, receive: Receive, send: Send, surface: Surface, wait: float
    ) -> None:
        retry_after = max(1, math.ceil(wait))
        message = f"too many {surface.value} requests from this client; retry after {retry_after} s"
        await self._refuse(scope, receive, send, surface, "client_limit", retry_after, message)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, surface: Surface, reason: str, retry_after: int, message: str
    ) -> None:
        REQUESTS_THROTTLED.labels(surface=surface.value, reason=reason).inc()
        details: dict[str, Any] = {"reason": reason, "retry_after_seconds": retry_after}
        headers = {"Retry-After": str(retry_after)}
        # A browser over the portal's limit gets the page (with the same Retry-After); API clients get JSON.
        sentence = f"{message[:1].upper()}{message[1:].rstrip('.')}."
        page = self.error_page(Request(scope), 429, sentence, headers)
        response = page or error_answer(TooManyRequests(message, details=details), headers=headers)
        await response(scope, receive, send)


def install_rate_limits(
    app: FastAPI, settings: Settings, database: Database, error_page: ErrorPage = no_error_page
) -> None:
    """Add the middleware unless the settings switch rate limiting off."""
    if settings.rate_limits_enabled:
        app.add_middleware(RateLimitMiddleware, settings=settings, database=database, error_page=error_page)
