"""Typed dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlmodel import Session

from core.db import Database
from core.settings import Settings


# The two getters below only read app state: async, so FastAPI calls them on the event loop instead of
# sending each one through the threadpool on every request.
async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_app_database(request: Request) -> Database:
    """The app's Database (one engine and pool per process)."""
    database: Database = request.app.state.database
    return database


def get_session(database: Annotated[Database, Depends(get_app_database)]) -> Iterator[Session]:
    """One unit of work per request: committed when the handler returns, rolled back when it raises."""
    with database.session() as session:
        yield session


# The largest integer every supported database binds (signed 64-bit): beyond it SQLite's driver raises instead of
# answering, so a larger id or offset is refused as invalid input before any query runs.
MAX_DATABASE_INTEGER = 2**63 - 1
# Numeric primary keys are 32-bit `integer` columns on PostgreSQL, which refuses a larger bound value outright.
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Numeric id of the row")]

SettingsDep = Annotated[Settings, Depends(get_app_settings)]
DatabaseDep = Annotated[Database, Depends(get_app_database)]
# scope="function": the unit of work commits when the handler returns, before the answer is sent. FastAPI's default
# ("request") runs the commit after the response has gone out, so a client could be told 2xx for a write that then
# failed, or read its own write back before it was committed (durable before acknowledged).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
