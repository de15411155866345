"""What every portal page shares: the signed-in visitor, CSRF-checked forms, rendering and error pages.

Portal routes use `PortalRoute`, which turns domain errors into HTML pages with the same precise status
the JSON API answers (404 for another tenant's ids, 409 for an action the state forbids, ...). Handlers
open their own unit of work (`database.session()`), so a failed action is rolled back before the error
page is rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from core.audit.sentences import STEP_NAMES, actor_in_words, sentence_of
from core.clock import utc_now
from core.correlation import current_correlation_id
from core.errors import ControlPlaneError, NotFound
from core.identity.principal import Principal
from core.identity.sign_in import SignedInUser
from core.settings import Settings
from portal.readable import budget_used, duration, percent, plural, utc_time
from portal.sign_in_flow import SIGN_IN_PATH
from web.browser_session import BrowserSession
from web.dependencies import SettingsDep
from web.errors import error_answer, error_body, http_status, unreadable_values
from web.permissions import Permission, declares

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
FLASH_KEY = "portal_flash"
ERROR_HEADINGS = {
    400: "That request was not understood",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "That cannot be done with this address",
    409: "That cannot be done right now",
    413: "That was too large",
    422: "Please check the form",
    429: "Too many requests",
    500: "Something went wrong on our side",
    502: "A service we depend on answered with an error",
    503: "A service we depend on is unavailable",
}
NEXT_STEPS = {
    404: "It may not exist, or it may belong to another organisation. Go back to your subscriptions.",
    405: "Go back to the page you came from and use its links and buttons.",
    409: "Reload the page to see the current state, then try again if it still applies.",
    403: "Reload the page and try again. If this keeps happening, sign out and sign in again.",
    413: "Send less at once, then try again.",
    429: "Wait a minute, then try again.",
    500: "Our operators can see what happened from the reference below. Try again in a few minutes; if it keeps "
    "happening, contact us and quote the reference.",
    502: "Wait a minute and try again; if it keeps happening, contact us and quote the reference below.",
    503: "Wait a minute and try again; nothing was changed.",
}


def format_age(value: datetime | None) -> str:
    """How long ago, in the two largest units people read at a glance (e.g. "3 h 12 min")."""
    if value is None:
        return "—"
    minutes = max(0, int((utc_now() - value).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


# One set of words for every page: instants in UTC to the second, bounded percentages, counts that agree with
# their noun, and audit events as sentences.
templates.env.filters["when"] = utc_time
templates.env.filters["percent"] = percent
templates.env.filters["budget_used"] = budget_used
templates.env.filters["duration"] = duration
templates.env.filters["plural"] = plural
templates.env.filters["sentence"] = sentence_of
templates.env.filters["who"] = actor_in_words
templates.env.filters["step_name"] = lambda step: STEP_NAMES.get(step, step)
templates.env.filters["age"] = format_age


class SignInRequired(Exception):
    """The request needs a signed-in visitor and has none."""


@dataclass(frozen=True)
class Visitor:
    """The signed-in person: their browser session, who they are and what they may do."""

    session: BrowserSession
    user: SignedInUser
    principal: Principal


def principal_of(user: SignedInUser, settings: Settings) -> Principal:
    """The Principal the services authorize: the id token's tenant and roles (operator only in the publisher tenant)."""
    claims = {
        "tid": user.tenant_id,
        "oid": user.object_id,
        "name": user.display_name or user.username,
        "roles": list(user.roles),
        "wids": list(user.directory_roles),
        "idtyp": "user",
    }
    return Principal.from_claims(
        claims, operator_role=settings.operator_app_role, publisher_tenant_id=settings.publisher_tenant_id
    )


@declares(Permission.READ)
def current_visitor(request: Request, settings: SettingsDep) -> Visitor:
    """The signed-in visitor, or SignInRequired (a page then redirects to sign-in)."""
    session = BrowserSession.load(request, settings)
    if session.user is None:
        raise SignInRequired()
    return Visitor(session, session.user, principal_of(session.user, settings))


VisitorDep = Annotated[Visitor, Depends(current_visitor)]


@declares(Permission.READ)
def form_visitor(visitor: VisitorDep, csrf_token: Annotated[str | None, Form()] = None) -> Visitor:
    """The visitor of a POSTed form; Forbidden (403) unless the form carries the session's CSRF token."""
    visitor.session.check_csrf(csrf_token)
    return visitor


FormVisitorDep = Annotated[Visitor, Depends(form_visitor)]


@declares(Permission.ACT)
def admin_form_visitor(visitor: FormVisitorDep) -> Visitor:
    """A CSRF-checked form of a customer admin (or an operator); a reader gets 403."""
    visitor.principal.require_admin()
    return visitor


AdminFormDep = Annotated[Visitor, Depends(admin_form_visitor)]


@declares(Permission.OPERATE)
def operator_visitor(visitor: VisitorDep) -> Visitor:
    """Only publisher operators pass; to anyone else the operator pages do not exist (404, like other tenants' ids)."""
    if not visitor.principal.is_operator:
        raise NotFound("there is no such page")
    return visitor


@declares(Permission.OPERATE)
def operator_form_visitor(visitor: FormVisitorDep) -> Visitor:
    """A CSRF-checked form of a publisher operator."""
    return operator_visitor(visitor)


OperatorDep = Annotated[Visitor, Depends(operator_visitor)]
OperatorFormDep = Annotated[Visitor, Depends(operator_form_visitor)]


def render(
    request: Request,
    session: BrowserSession,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    *,
    with_flash: bool = True,
) -> HTMLResponse:
    """Render a page with the layout's context (visitor, CSRF token, flash message) and save the session.

    An error page leaves a pending flash for the next page: a success message never shares a page with a refusal
    (a double-submitted form's first request succeeds and its second is refused).
    """
    signed_in = session.user
    settings: Settings = request.app.state.settings
    principal = principal_of(signed_in, settings) if signed_in is not None else None
    page_context = {
        "user": signed_in,
        "is_operator": principal is not None and principal.is_operator,
        "can_act": principal is not None and principal.can_act,
        "csrf_token": session.csrf_token(),
        "flash": session.pop(FLASH_KEY) if with_flash else None,
        **context,
    }
    response = templates.TemplateResponse(
        request, template, page_context, status_code=status_code, headers={"Cache-Control": "no-store"}
    )
    session.save(response)
    return response


def redirect_with_message(session: BrowserSession, location: str, message: str) -> RedirectResponse:
    """Post/redirect/get: the next page shows `message` once."""
    session.set(FLASH_KEY, message)
    response = RedirectResponse(location, status_code=303)
    session.save(response)
    return response


@dataclass(frozen=True)
class PageLink:
    """A link an error page offers as the way on."""

    href: str
    text: str


def error_page(
    request: Request,
    status_code: int,
    message: str,
    *,
    heading: str | None = None,
    next_step: str | None = None,
    link: PageLink | None = None,
) -> HTMLResponse:
    """An error page that says what happened and what to do next (a page may say both more precisely)."""
    session = BrowserSession.load(request, request.app.state.settings)
    context = {
        "heading": heading or ERROR_HEADINGS.get(status_code, "Something went wrong"),
        "message": message,
        "next_step": next_step or NEXT_STEPS.get(status_code, "Go back and try again."),
        "link": link,
        "status_code": status_code,
        "correlation_id": current_correlation_id(),
    }
    return render(request, session, "error.html", context, status_code, with_flash=False)


class PortalRoute(APIRoute):
    """A route whose domain errors become HTML error pages and whose missing sign-in becomes a redirect."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_page(request: Request) -> Response:
            wants_json = "application/json" in request.headers.get("accept", "")
            try:
                return await handle(request)
            except SignInRequired:
                if wants_json:
                    return JSONResponse(error_body("Unauthenticated", "sign in to the portal first"), status_code=401)
                if request.method == "GET":
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse(f"{SIGN_IN_PATH}?next={quote(target, safe='')}", status_code=303)
                return error_page(request, 401, "Your session ended. Sign in again, then repeat the action.")
            except ControlPlaneError as error:
                if wants_json:
                    return error_answer(error)
                return error_page(request, http_status(error), error.message)
            except RequestValidationError as error:
                # A path or query value of the wrong type or out of range (e.g. "²" or 20 digits for an id).
                if wants_json:
                    raise
                return error_page(request, 422, unreadable_values(error))

        return handle_page
