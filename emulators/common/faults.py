"""Deterministic, bounded fault injection shared by every emulator.

A fault rule matches requests by method and path pattern and either delays them, answers
with an error status (429 carries Retry-After), answers 200 with a malformed body (a shape
the API's contract does not allow, for the client's contract checks), or lets the request
take effect and then breaks the connection before the response is complete ("dropped after effect"). Rules fire
with a probability drawn from a seeded generator and stop after `count` hits, so a test is
repeatable and a fault storm always ends.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["latency", "status", "drop", "malformed"]
CONTROL_PREFIX = "/_emulator"


class FaultRule(BaseModel):
    """One injectable fault. `count` bounds how many requests it hits (None: unbounded)."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    method: str | None = Field(default=None, description="HTTP method to match; any when omitted")
    path_pattern: str = Field(default=".*", description="regular expression searched in the path")
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=1)
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    status: int = Field(default=500, ge=400, le=599)
    retry_after_seconds: int | None = Field(default=None, ge=0, le=3600)
    error_code: str | None = None
    body: str = Field(default="", max_length=65_536, description="the 200 answer's raw body (malformed kind)")
    id: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return re.search(self.path_pattern, path) is not None


class FaultInjector:
    """Holds the rules of one emulator; thread-safe, seeded."""

    def __init__(self, seed: int = 0, rules: list[FaultRule] | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._next_id = 1
        for rule in rules or []:
            self.add(rule)

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.id = self._next_id
            rule.hits = 0
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._random = random.Random(seed)

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [rule.model_copy() for rule in self._rules]

    def pick(self, method: str, path: str) -> list[FaultRule]:
        """The rules that fire for this request (each counted as a hit)."""
        fired: list[FaultRule] = []
        with self._lock:
            for rule in self._rules:
                if rule.count is not None and rule.hits >= rule.count:
                    continue
                if not rule.matches(method, path):
                    continue
                if self._random.random() >= rule.probability:
                    continue
                rule.hits += 1
                fired.append(rule.model_copy())
        return fired


class FaultInjectionMiddleware:
    """ASGI middleware applying an injector's rules; the control API path is never faulted."""

    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        fired = self.injector.pick(scope["method"], scope["path"])
        drop = False
        for rule in fired:
            if rule.kind == "latency":
                await asyncio.sleep(rule.latency_ms / 1000)
            elif rule.kind == "drop":
                drop = True
        for rule in fired:
            if rule.kind == "status":
                await _send_error(send, rule)
                return
            if rule.kind == "malformed":
                await _send_malformed(send, rule)
                return
        if not drop:
            await self.app(scope, receive, send)
            return

        # Let the request take effect, then break the connection mid-response.
        async def swallow(message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise ConnectionAbortedError("emulator fault: response dropped after the action took effect")


async def _send_error(send: Send, rule: FaultRule) -> None:
    code = rule.error_code or ("TooManyRequests" if rule.status == 429 else "InternalServerError")
    body = json.dumps({"error": {"code": code, "message": f"Injected fault: HTTP {rule.status}"}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if rule.retry_after_seconds is not None:
        headers.append((b"retry-after", str(rule.retry_after_seconds).encode()))
    elif rule.status == 429:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": rule.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_malformed(send: Send, rule: FaultRule) -> None:
    body = rule.body.encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def fault_control_router(injector: FaultInjector) -> Any:
    """Control endpoints under /_emulator/faults: list, add, clear, reseed."""
    from fastapi import APIRouter

    router = APIRouter(prefix=f"{CONTROL_PREFIX}/faults", tags=["emulator control"])

    @router.get("")
    def list_faults() -> list[FaultRule]:
        return injector.rules()

    @router.post("", status_code=201)
    def add_fault(rule: FaultRule) -> FaultRule:
        return injector.add(rule)

    @router.delete("", status_code=204)
    def clear_faults() -> None:
        injector.clear()

    @router.post("/seed", status_code=204)
    def reseed(seed: int) -> None:
        injector.reseed(seed)

    return router
