"""Benchmark: what the request-body checks (web/body_limits.py) cost per request, in process, with no server.

Drives the ASGI middleware directly with an app that only drains the body, so the figures are the
middleware's own cost: a typical Marketplace webhook body, a large body of many small objects (the bracket
scan's worst legitimate case) and the refusals (too deep, too large). Prints microseconds per request next
to the same bodies sent through no middleware at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable

from starlette.types import Message, Receive, Scope, Send

from web.body_limits import BodyLimitMiddleware

MAX_BYTES = 256 * 1024
MAX_DEPTH = 32


def webhook_body() -> bytes:
    subscription_id = str(uuid.uuid4())
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "activityId": str(uuid.uuid4()),
            "subscriptionId": subscription_id,
            "publisherId": "vastdata1234567890",
            "offerId": "vast-blob-facade",
            "planId": "standard",
            "quantity": 3,
            "action": "ChangeQuantity",
            "timeStamp": "2026-11-26T01:00:00Z",
            "status": "InProgress",
            "operationRequestSource": "Azure",
            "subscription": {"id": subscription_id, "saasSubscriptionStatus": "Subscribed", "term": {"a": [1]}},
            "purchaseToken": None,
        }
    ).encode()


def many_objects() -> bytes:
    items = [{"name": f"item-{index}", "tags": ["a", "b"]} for index in range(4000)]
    body = json.dumps({"items": items}).encode()
    return body[: MAX_BYTES - 1] if len(body) >= MAX_BYTES else body


async def drain(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the middleware: reads the body, answers 204."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def one_request(app: Callable[[Scope, Receive, Send], object], body: bytes) -> Callable[[], object]:
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/marketplace/webhook",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }

    async def run() -> None:
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            return None

        await app(scope, receive, send)  # type: ignore[misc]

    return run


def microseconds_per_request(app: Callable[[Scope, Receive, Send], object], body: bytes, requests: int) -> float:
    request = one_request(app, body)

    async def loop() -> float:
        started = time.perf_counter()
        for _ in range(requests):
            await request()  # type: ignore[misc]
        return (time.perf_counter() - started) / requests * 1e6

    return asyncio.run(loop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per body kind")
    arguments = parser.parse_args()
    logging.disable(logging.WARNING)  # one warning per refused request would be most of what is measured
    checked = BodyLimitMiddleware(drain, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)
    bodies = {
        "webhook (typical)": webhook_body(),
        "4,000 small objects": many_objects(),
        "nested 33 deep (refused)": b"[" * 33 + b"]" * 33,
        "nested 100,000 deep (refused)": b"[" * 100_000 + b"]" * 100_000,
    }
    print(f"{'body':32} {'bytes':>9} {'no checks µs':>13} {'checked µs':>11} {'added µs':>9}")
    for name, body in bodies.items():
        count = arguments.requests if len(body) < 10_000 else max(arguments.requests // 50, 20)
        bare = microseconds_per_request(drain, body, count)
        with_checks = microseconds_per_request(checked, body, count)
        print(f"{name:32} {len(body):>9} {bare:>13.1f} {with_checks:>11.1f} {with_checks - bare:>9.1f}")


if __name__ == "__main__":
    main()
