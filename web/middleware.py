"""Correlation id per request: taken from x-ms-correlationid when the caller sent one, echoed back."""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.correlation import CORRELATION_HEADER, correlation_scope

logger = logging.getLogger("api.access")
_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class CorrelationMiddleware:
    """Bind a correlation id for the request, echo it in the response, and log one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(CORRELATION_HEADER.encode(), b"").decode("latin-1")
        started = time.perf_counter()
        status_holder = {"status": 0}
        with correlation_scope(supplied if _ACCEPTABLE_ID.match(supplied) else None) as correlation_id:

            async def send_with_header(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status_holder["status"] = message["status"]
                    message["headers"] = [
                        *message.get("headers", []),
                        (CORRELATION_HEADER.encode(), correlation_id.encode()),
                    ]
                await send(message)

            try:
                await self.app(scope, receive, send_with_header)
            finally:
                logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status_holder["status"],
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
