"""Correlation id per request: taken from x-ms-correlationid when the caller sent one, echoed back; and the answer
to an error nothing else handled (a 500 carrying that id, logged with it)."""

from __future__ import annotations

import logging
import re
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.correlation import CORRELATION_HEADER, correlation_scope, current_correlation_id
from web.errors import ErrorPage, error_body, no_error_page

logger = logging.getLogger("api.access")
error_logger = logging.getLogger("web.errors")
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


class UnhandledErrorMiddleware:
    """Turn an exception no handler took into a 500 that names the request's correlation id, and log it with it.

    It sits inside CorrelationMiddleware, so the id is still bound when the error is logged and the answer carries
    it in its header; the customer quotes the id from the page and an operator finds the traceback by it.
    Once the answer has started nothing can be said any more: the error is raised on to the server.
    """

    def __init__(self, app: ASGIApp, error_page: ErrorPage = no_error_page) -> None:
        self.app = app
        self.error_page = error_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as error:
            if started:
                raise
            # The message may quote SQL or values: the traceback goes to the log, never to the caller.
            error_logger.error(
                "unhandled error", exc_info=error, extra={"path": scope["path"], "error": type(error).__name__}
            )
            request = Request(scope)
            correlation_id = current_correlation_id()
            page = self.error_page(request, 500, "The request failed because of an error on our side.", None)
            answer = page or JSONResponse(
                error_body(
                    "InternalError",
                    "the request failed because of an error on our side; quote the correlation id to support",
                    {"correlation_id": correlation_id},
                ),
                status_code=500,
            )
            await answer(scope, receive, send)
