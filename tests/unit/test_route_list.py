"""The README's route table is the app's route table, and every JSON route of ours is under one prefix.

The URLs others call keep their own paths: Marketplace's webhook and landing page, Azure's managed-application
notifications, the browser's portal and sign-in callback, and the operational probes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from core.db import Database
from core.settings import Settings
from harness.checkout import REPOSITORY_ROOT
from server.app import create_app

JSON_API_PREFIX = "/api/"
# Paths whose callers are not clients of our JSON API, so they stay where those callers know them.
OTHER_SURFACES = ("/marketplace/", "/managedapp/", "/portal", "/auth/callback")
OPERATIONAL = {"/healthz", "/readyz", "/metrics", "/openapi.json"}
README_ROUTE = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE|MOUNT) (/[^` ]*)` \|")


@pytest.fixture(scope="module")
def app(base_settings: Settings, database_url: str) -> Iterator[FastAPI]:
    database = Database(database_url)
    yield create_app(base_settings, database)
    database.dispose()


def app_routes(app: FastAPI) -> set[str]:
    """`METHOD path` of every route the app serves (HEAD left out; a mount as `MOUNT path`)."""
    return {
        f"{method} {route.path}"
        for route in iter_route_contexts(app.routes)
        for method in (route.methods or {"MOUNT"})
        if method != "HEAD"
    }


def readme_routes() -> list[str]:
    """The first column of the README's "Routes" table."""
    text = (REPOSITORY_ROOT / "README.md").read_text()
    section = text.split("\n## Routes\n", 1)[1].split("\n## ", 1)[0]
    return [" ".join(match.groups()) for line in section.splitlines() if (match := README_ROUTE.match(line))]


def test_the_readme_lists_every_route_the_app_serves_and_no_other(app: FastAPI) -> None:
    listed = readme_routes()
    assert len(listed) == len(set(listed)), "a route listed twice"
    served = app_routes(app)
    assert sorted(served - set(listed)) == [], "served but missing from the README's route table"
    assert sorted(set(listed) - served) == [], "in the README's route table but not served"


def test_every_json_route_of_ours_is_under_the_api_prefix(app: FastAPI) -> None:
    elsewhere = sorted(
        key
        for key in app_routes(app)
        if not (path := key.split(" ", 1)[1]).startswith(JSON_API_PREFIX)
        and not path.startswith(OTHER_SURFACES)
        and path not in OPERATIONAL
    )
    assert elsewhere == []
