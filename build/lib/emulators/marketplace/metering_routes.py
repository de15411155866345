"""Metering API under /api: usageEvent, batchUsageEvent and usageEvents retrieval."""

from __future__ import annotations

import datetime
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from emulators.marketplace.clock import parse_timestamp
from emulators.marketplace.http_conventions import MarketplaceApiError, PublisherAuthenticator, require_api_version
from emulators.marketplace.metering import MAX_BATCH_SIZE, UsageLedger

RETRIEVAL_FILTERS = ("offerId", "planId", "dimension", "azureSubscriptionId", "reconStatus")


def bad_argument(message: str, target: str, details: list[dict[str, Any]] | None = None) -> MarketplaceApiError:
    """400 BadArgument in the metering service's error shape."""
    return MarketplaceApiError(
        400,
        {
            "message": message,
            "target": target,
            "details": details or [{"message": message, "target": target, "code": "BadArgument"}],
            "code": "BadArgument",
        },
    )


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except UnicodeDecodeError as error:
        raise bad_argument("The request body is not UTF-8 text.", "usageEventRequest") from error
    except json.JSONDecodeError as error:
        raise bad_argument(f"The request body is not valid JSON: {error.msg}.", "usageEventRequest") from error


def _query_date(value: str | None, name: str, end_of_day: bool) -> datetime.datetime:
    """A date or timestamp query value; a bare date used as an end bound covers the whole day."""
    if not value:
        raise bad_argument(f"The {name} is required.", name)
    try:
        moment = parse_timestamp(value)
    except ValueError as error:
        raise bad_argument(f"The {name} is not a valid date.", name) from error
    if end_of_day and len(value) == 10:
        moment += datetime.timedelta(days=1)
    return moment


def build_metering_router(ledger: UsageLedger, authenticate: PublisherAuthenticator) -> APIRouter:
    """The three metering endpoints."""
    router = APIRouter(
        prefix="/api",
        dependencies=[Depends(require_api_version), Depends(authenticate)],
        tags=["metering"],
        redirect_slashes=False,
    )

    @router.post("/usageEvent")
    async def usage_event(request: Request) -> JSONResponse:
        result = ledger.submit(await _json_body(request))
        status = result["status"]
        if status == "Accepted":
            return JSONResponse(result)
        if status == "Duplicate":
            return JSONResponse(result["error"], status_code=409)
        error = result["error"]
        raise bad_argument("One or more errors have occurred.", "usageEventRequest", [error])

    @router.post("/batchUsageEvent")
    async def batch_usage_event(request: Request) -> JSONResponse:
        body = await _json_body(request)
        events = body.get("request") if isinstance(body, dict) else None
        if not isinstance(events, list) or not events:
            raise bad_argument("The request must contain a non-empty 'request' array.", "request")
        if len(events) > MAX_BATCH_SIZE:
            raise bad_argument(f"The batch may contain at most {MAX_BATCH_SIZE} usage events.", "request")
        results = [ledger.submit(event) for event in events]
        return JSONResponse({"count": len(results), "result": results})

    @router.get("/usageEvents")
    def usage_events(request: Request) -> JSONResponse:
        parameters = request.query_params
        start = _query_date(parameters.get("usageStartDate"), "usageStartDate", end_of_day=False)
        # The spec spells the end bound UsageEndDate, the documentation's examples usageEndDate; the service
        # binds query names without regard to case, so both are read.
        end_value = next((value for name, value in parameters.items() if name.lower() == "usageenddate"), None)
        end = (
            _query_date(end_value, "usageEndDate", end_of_day=True)
            if end_value
            else ledger.clock.now() + datetime.timedelta(hours=1)
        )
        filters = {name: parameters[name] for name in RETRIEVAL_FILTERS if parameters.get(name)}
        return JSONResponse(ledger.usage_report(start, end, filters))

    return router
