"""Security headers on every HTML response, from one list, driven by the app's route table.

Every route of the app is called against the real API process (wired to the emulators), anonymously and as a
signed-in operator; every answer that is HTML, whatever its status (pages, error pages, sign-in pages), must
carry the whole list, and every route that declares HTML must have been seen answering with it. The
templates hold no inline script or style, so the CSP needs no 'unsafe-inline'.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts

from core.db import Database
from server.app import create_app
from tests.integration.lifecycle.conftest import ControlPlane
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.integration.security.visitors import OPERATOR_USERNAME, PortalVisitor, sign_in_to_portal
from web.security_headers import SECURITY_HEADERS

pytestmark = pytest.mark.timeout(180)

REPOSITORY = Path(__file__).resolve().parents[3]
TEMPLATE_FOLDERS = (REPOSITORY / "api" / "templates", REPOSITORY / "portal" / "templates")
PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=|\son[a-z]+\s*=", re.IGNORECASE)


@pytest.fixture(scope="module")
def operator(control_plane: ControlPlane, emulators: Emulators) -> Iterator[PortalVisitor]:
    visitor = sign_in_to_portal(emulators, control_plane.base_url, OPERATOR_USERNAME)
    yield visitor
    visitor.close()


def html_routes(control_plane: ControlPlane, database_url: str) -> list[tuple[str, str]]:
    """(method, path) of every route that declares an HTML answer: its response class or a text/html response."""
    database = Database(database_url)
    try:
        app = create_app(control_plane.settings, database)
    finally:
        database.dispose()
    routes = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or context.path is None:
            continue
        declares_html = route.response_class is HTMLResponse or any(
            "text/html" in (response.get("content") or {}) for response in route.responses.values()
        )
        if declares_html:
            routes.extend((method, context.path) for method in sorted((context.methods or set()) - {"HEAD"}))
    return routes


def concrete(path: str) -> str:
    """The path with every parameter filled with an id nobody has."""
    return PATH_PARAMETER.sub(lambda _: str(uuid.uuid4()), path)


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.method, response.request.url.path, name)
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy


def call(http: httpx.Client, method: str, url: str, csrf_token: str | None = None) -> httpx.Response:
    if method == "GET":
        return http.get(url, params={"token": "not-a-purchase-token"} if url.endswith("/landing") else None)
    return http.request(method, url, data={"csrf_token": csrf_token or "", "token": "not-a-purchase-token"})


def test_every_html_route_carries_the_security_headers(
    control_plane: ControlPlane, operator: PortalVisitor, database_url: str
) -> None:
    routes = html_routes(control_plane, database_url)
    assert {"GET /marketplace/landing", "POST /marketplace/landing", "GET /portal"} <= {
        f"{method} {path}" for method, path in routes
    }
    seen_html: set[str] = set()
    with httpx.Client(timeout=30) as anonymous:
        for method, path in routes:
            url = control_plane.base_url + concrete(path)
            for response in (
                call(anonymous, method, url),
                call(operator.browser.http, method, url, operator.csrf_token),
            ):
                if response.headers.get("content-type", "").startswith("text/html"):
                    assert_security_headers(response)
                    seen_html.add(f"{method} {path}")
    assert sorted({f"{method} {path}" for method, path in routes} - seen_html) == []


def test_a_progress_page_and_an_error_page_outside_the_portal_carry_them(control_plane: ControlPlane) -> None:
    with httpx.Client(timeout=30) as http:
        progress = http.get(f"{control_plane.base_url}/marketplace/subscriptions/{uuid.uuid4()}")
        landing_without_token = http.get(f"{control_plane.base_url}/marketplace/landing")
    for response in (progress, landing_without_token):
        assert response.headers["content-type"].startswith("text/html"), response.status_code
        assert_security_headers(response)


def test_json_answers_are_not_sniffed(control_plane: ControlPlane) -> None:
    response = httpx.get(f"{control_plane.base_url}/healthz", timeout=10)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_templates_hold_no_inline_script_or_style() -> None:
    templates = [path for folder in TEMPLATE_FOLDERS for path in folder.rglob("*.html")]
    assert templates
    offenders = [
        str(path.relative_to(REPOSITORY))
        for path in templates
        if INLINE_SCRIPT.search(path.read_text()) or INLINE_STYLE.search(path.read_text())
    ]
    assert offenders == []
