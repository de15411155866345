"""The one place where domain errors become HTTP answers: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core.errors import ControlPlaneError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, details: object = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def install_error_handlers(app: FastAPI) -> None:
    """Map ControlPlaneError subclasses and request validation failures to precise statuses."""

    @app.exception_handler(ControlPlaneError)
    async def domain_error(request: Request, error: ControlPlaneError) -> JSONResponse:
        if error.status_code >= 500:
            logger.error("request failed", extra={"code": error.code, "path": request.url.path})
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if error.status_code == 401 else None
        return JSONResponse(
            error_body(error.code, error.message, error.details), status_code=error.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(part) for part in issue["loc"]), "message": issue["msg"]} for issue in error.errors()
        ]
        summary = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
        return JSONResponse(
            error_body("ValidationFailed", f"invalid request: {summary}", {"problems": problems}), status_code=422
        )
