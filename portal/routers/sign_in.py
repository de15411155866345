"""Portal sign-in with Entra ID (authorization code + PKCE through msal), the callback and sign-out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.browser_session import BrowserSession, user_sign_in
from api.dependencies import SettingsDep
from api.permissions import public_route
from core.errors import Unauthenticated
from core.identity.sign_in import SignedInUser
from core.settings import Settings
from portal.pages import FormVisitorDep, PortalRoute, error_page, principal_of, render

router = APIRouter(tags=["portal"], route_class=PortalRoute, include_in_schema=False)
CALLBACK_PATH = "/auth/callback"
FLOW_KEY = "portal_sign_in_flow"
NEXT_KEY = "portal_next"


def _home_of(user: SignedInUser, settings: Settings) -> str:
    return "/portal/operator/subscriptions" if principal_of(user, settings).is_operator else "/portal/subscriptions"


def _safe_next(target: str | None) -> str | None:
    # Only our own portal paths: an open redirect after sign-in would help phishing.
    if target and target.startswith("/portal/"):
        return target
    return None


@router.get("/portal", response_class=HTMLResponse, dependencies=[public_route("the sign-in page, or a redirect home")])
def portal_home(request: Request, settings: SettingsDep) -> Response:
    """Signed in: the visitor's home (operators: all subscriptions). Otherwise the sign-in page."""
    session = BrowserSession.load(request, settings)
    if session.user is not None:
        return RedirectResponse(_home_of(session.user, settings), status_code=303)
    return render(request, session, "sign_in.html", {})


@router.get("/portal/sign-in", dependencies=[public_route("starts the Entra sign-in")])
def sign_in(
    request: Request,
    settings: SettingsDep,
    next_path: Annotated[str | None, Query(alias="next", max_length=512)] = None,
) -> Response:
    """Start an authorization-code flow and send the browser to Entra ID."""
    session = BrowserSession.load(request, settings)
    flow = user_sign_in(request).begin(settings.public_base_url.rstrip("/") + CALLBACK_PATH)
    session.set(FLOW_KEY, flow)
    session.set(NEXT_KEY, _safe_next(next_path))
    response = RedirectResponse(flow["auth_uri"], status_code=302)
    session.save(response)
    return response


@router.get(CALLBACK_PATH, dependencies=[public_route("Entra's redirect back to the portal during sign-in")])
def sign_in_callback(request: Request, settings: SettingsDep) -> Response:
    """Entra ID redirects here with the code; the verified id token's tid decides what the visitor sees."""
    session = BrowserSession.load(request, settings)
    flow = session.pop(FLOW_KEY)
    target = _safe_next(session.pop(NEXT_KEY))
    if not isinstance(flow, dict):
        return error_page(request, 400, "This sign-in link has expired. Start again from the portal's sign-in page.")
    try:
        user = user_sign_in(request).complete(flow, dict(request.query_params))
    except Unauthenticated as error:
        return error_page(request, 401, error.message)
    # A new session for a new person: a new id and CSRF token, nothing left over from before.
    session.sign_in(user)
    response = RedirectResponse(target or _home_of(user, settings), status_code=303)
    session.save(response)
    return response


@router.post("/portal/sign-out")
def sign_out(request: Request, visitor: FormVisitorDep) -> Response:
    """End the session on the server and show the signed-out page."""
    session = visitor.session
    session.sign_out()
    return render(request, session, "signed_out.html", {})
