"""The one place where domain errors become HTTP answers: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from core.errors import ControlPlaneError

logger = logging.getLogger(__name__)
# When to try again after the database failed to answer (a restart or failover takes seconds).
DATABASE_RETRY_AFTER_SECONDS = 10
# A browser's error page for (request, status, message, headers), or None when the caller gets the JSON body.
ErrorPage = Callable[[Request, int, str, Mapping[str, str] | None], Response | None]
# What each error status means on the JSON API unless a route says more precisely.
ERROR_DESCRIPTIONS = {
    401: "Missing or invalid bearer token",
    403: "The caller may not do this",
    404: "No such resource, or it belongs to another tenant",
    422: "A parameter or the body is invalid; `details` says which and why",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable error code, e.g. NotFound or ValidationFailed")
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    """The body of every JSON error answer."""

    error: ErrorDetail


def error_body(code: str, message: str, details: object = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(description: str) -> dict[str, Any]:
    """A `responses=` entry: an error status with the error body and what it means on this route."""
    return {"model": ErrorResponse, "description": description}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these error statuses with their usual meaning."""
    return {status: error_response(ERROR_DESCRIPTIONS[status]) for status in statuses}


# What the request middlewares (web/body_limits.py, web/rate_limits.py) may answer on any route, before it runs.
MIDDLEWARE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: error_response("A NUL character in the URL or body, JSON nested too deeply, or a body that cannot be parsed"),
    413: error_response("The body is larger than this deployment accepts"),
    429: {
        **error_response("The caller is over its rate limit, or webhook intake is over its backlog"),
        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    },
}


def http_status(error: ControlPlaneError) -> int:
    """The HTTP status of a domain error: its class's, so every error of one type gets the same answer.

    Every answer to a domain error takes its status from here, HTML pages that choose their own page included.
    """
    return type(error).status_code


def error_answer(error: ControlPlaneError, *, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON answer to a domain error; a 401 carries the bearer challenge."""
    status = http_status(error)
    challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else {}
    body = error_body(error.code, error.message, error.details)
    return JSONResponse(body, status_code=status, headers={**challenge, **(headers or {})})


def no_error_page(request: Request, status: int, message: str, headers: Mapping[str, str] | None) -> None:
    """Every caller gets the JSON error body (an app without the portal's pages)."""
    return None


def install_error_handlers(app: FastAPI, error_page: ErrorPage = no_error_page) -> None:
    """Map ControlPlaneError subclasses and request validation failures to precise statuses.

    A browser navigating to a page gets `error_page`'s HTML with the same status and headers instead of JSON.
    """

    @app.exception_handler(ControlPlaneError)
    async def domain_error(request: Request, error: ControlPlaneError) -> Response:
        if http_status(error) >= 500:
            logger.error("request failed", extra={"code": error.code, "path": request.url.path})
        return error_page(request, http_status(error), error.message, None) or error_answer(error)

    async def database_unavailable(request: Request, error: Exception) -> Response:
        """The database could not be reached or is busy: nothing was stored, the caller should retry (503)."""
        # The driver's message may quote SQL and values: only its type is logged.
        logger.error("database unavailable", extra={"path": request.url.path, "error": type(error).__name__})
        headers = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}
        page = error_page(request, 503, "Our database is not answering, so nothing was stored.", headers)
        return page or JSONResponse(
            error_body("DatabaseUnavailable", "the database is unavailable; nothing was stored, retry later"),
            status_code=503,
            headers=headers,
        )

    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(InterfaceError, database_unavailable)

    @app.exception_handler(HTTPException)
    async def framework_error(request: Request, error: HTTPException) -> Response:
        """What the framework refuses itself (unknown path, wrong method, a body it cannot parse), in our shape."""
        code = HTTPStatus(error.status_code).phrase.replace(" ", "").replace("-", "")
        page = error_page(request, error.status_code, framework_message(error), error.headers)
        return page or JSONResponse(
            error_body(code, str(error.detail)), status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        problems = [
            {"field": ".".join(str(part) for part in issue["loc"]), "message": issue["msg"]} for issue in error.errors()
        ]
        summary = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
        page = error_page(request, 422, unreadable_values(error), None)
        return page or JSONResponse(
            error_body("ValidationFailed", f"invalid request: {summary}", {"problems": problems}), status_code=422
        )


def unreadable_values(error: RequestValidationError) -> str:
    """For a person: which values could not be used, by name, never in the validator's wording."""
    names = sorted({str(issue["loc"][-1]).replace("_", " ") for issue in error.errors() if issue["loc"]})
    return f"Some of what was sent could not be used ({', '.join(names) or 'the request'}). Check it and try again."


def framework_message(error: HTTPException) -> str:
    """The framework's refusal in a sentence for a page ("Not Found" says less than what to check)."""
    if error.status_code == 404:
        return "There is no page at this address. Check the link, or start again from your subscriptions."
    if error.status_code == 405:
        return "This address does not take that kind of request."
    return f"{str(error.detail).rstrip('.')}."
