"""Branded error pages for browsers, on every status, each with the request's correlation id to quote to us.

Whether a request gets a page or JSON is decided once here: a browser (its Accept names text/html) asking for
anything but a JSON route gets the page in the portal's layout; API clients and JSON routes keep the JSON error
body. These pages never touch the database: a 500 or 503 may be the database failing, and the page must still
render.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from core.correlation import current_correlation_id
from portal.pages import ERROR_HEADINGS, NEXT_STEPS, templates

# Routes that answer JSON whatever the caller accepts: the JSON API, Marketplace's and Azure's callbacks.
JSON_PATH_PREFIXES = (
    "/api/",
    "/managedapp/",
    "/marketplace/webhook",
    "/marketplace/landing/placement",
    "/openapi.json",
    "/metrics",
    "/healthz",
    "/readyz",
)
JSON_PATH_SUFFIXES = ("/timeline", "/progress")


def wants_html(request: Request) -> bool:
    """True for a browser navigating to a page: it accepts HTML and the path is not a JSON route."""
    path = request.url.path
    if path.startswith(JSON_PATH_PREFIXES) or path.endswith(JSON_PATH_SUFFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def branded_error_page(
    request: Request, status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response | None:
    """The error page for a browser, or None when the caller should get the JSON error body."""
    if not wants_html(request):
        return None
    return render_error_page(request, status_code, message, headers)


def render_error_page(
    request: Request, status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    """The page itself: what happened, what to do next, and the correlation id; no signed-in navigation."""
    context = {
        "heading": ERROR_HEADINGS.get(status_code, "Something went wrong"),
        "message": message,
        "next_step": NEXT_STEPS.get(status_code, "Go back and try again."),
        "status_code": status_code,
        "correlation_id": current_correlation_id(),
        "user": None,
    }
    return templates.TemplateResponse(
        request,
        "error.html",
        context,
        status_code=status_code,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
