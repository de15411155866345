"""The routes of the app as the API process builds them, for suites that must cover every one."""

from __future__ import annotations

from fastapi.routing import iter_route_contexts

from core.db import Database
from core.settings import Settings
from server.app import create_app


def app_route_keys(settings: Settings, database_url: str) -> set[str]:
    """`METHOD path` of every route (HEAD left out; a mount as `MOUNT path`)."""
    database = Database(database_url)
    try:
        app = create_app(settings, database)
        keys: set[str] = set()
        for route in iter_route_contexts(app.routes):
            methods = route.methods or {"MOUNT"}
            keys.update(f"{method} {route.path}" for method in methods if method != "HEAD")
        return keys
    finally:
        database.dispose()
