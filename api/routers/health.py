"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from core.messaging import ping_broker
from core.migrator import SchemaBehind, require_schema_at_head
from web.dependencies import DatabaseDep, SettingsDep
from web.permissions import public_route

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get(
    "/healthz", summary="The process is up", dependencies=[public_route("liveness for the orchestrator; no data")]
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    dependencies=[public_route("readiness for the orchestrator; names dependencies, no tenant data")],
    summary="The database and the broker are reachable, and the schema is not behind this release",
    response_model=Readiness,
    responses={503: {"description": "A dependency is unreachable; the body names it", "model": Readiness}},
)
async def readyz(database: DatabaseDep, settings: SettingsDep) -> JSONResponse:
    checks: dict[str, str] = {}
    for name, check in (
        ("database", database.ping),
        # A schema older than this code fails its queries: not ready until `controlplane migrate` has run.
        ("schema", lambda: require_schema_at_head(database.engine)),
        ("broker", lambda: ping_broker(settings.resolved_broker_url)),
    ):
        try:
            await asyncio.to_thread(check)
            checks[name] = "ok"
        except SchemaBehind as error:
            checks[name] = f"behind: {error.message}"[:300]
        except Exception as error:  # any failure means not ready; the message tells which and why
            checks[name] = f"unreachable: {type(error).__name__}: {error}"[:300]
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )
