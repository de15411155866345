"""Portal sign-in with Entra ID (authorization code + PKCE through msal), the callback and sign-out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.errors import Unauthenticated
from core.identity.sign_in import SignedInUser, SignInNotRecognised
from core.settings import Settings
from portal.pages import FormVisitorDep, PageLink, PortalRoute, error_page, principal_of, render
from portal.sign_in_flow import FLOW_KEY, NEXT_KEY, SIGNED_IN_TO_KEY, begin_sign_in, restart_link, safe_next
from web.browser_paths import SIGN_IN_CALLBACK_PATH
from web.browser_session import BrowserSession, user_sign_in
from web.dependencies import SettingsDep
from web.permissions import public_route

router = APIRouter(tags=["portal"], route_class=PortalRoute, include_in_schema=False)


def _home_of(user: SignedInUser, settings: Settings) -> str:
    return "/portal/operator/subscriptions" if principal_of(user, settings).is_operator else "/portal/subscriptions"


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
    return begin_sign_in(request, session, settings, next_path)


@router.get(
    SIGN_IN_CALLBACK_PATH, dependencies=[public_route("Entra's redirect back to the portal and purchase pages")]
)
def sign_in_callback(request: Request, settings: SettingsDep) -> Response:
    """Entra ID redirects here with the code; the verified id token's tid decides what the visitor sees."""
    session = BrowserSession.load(request, settings)
    flow = session.pop(FLOW_KEY)
    target = safe_next(session.pop(NEXT_KEY))
    if not isinstance(flow, dict):
        if session.user is not None:
            # Back (through Entra to this callback) after signing in: the person is signed in, so the page again.
            went_to = safe_next(session.get(SIGNED_IN_TO_KEY)) or _home_of(session.user, settings)
            response = RedirectResponse(went_to, status_code=303)
            session.save(response)
            return response
        return _start_again(request, 400, "This sign-in has expired or was already finished.", None)
    try:
        user = user_sign_in(request).complete(flow, dict(request.query_params))
    except SignInNotRecognised:
        return _start_again(
            request, 400, "This sign-in was started in another tab or window, or it was already finished.", target
        )
    except Unauthenticated as error:
        return _start_again(request, 401, f"Entra ID did not complete the sign-in ({error.message}).", target)
    # A new session for a new person: a new id and CSRF token, nothing left over from before.
    session.sign_in(user)
    went_to = target or _home_of(user, settings)
    session.set(SIGNED_IN_TO_KEY, went_to)
    response = RedirectResponse(went_to, status_code=303)
    session.save(response)
    return response


def _start_again(request: Request, status_code: int, message: str, target: str | None) -> Response:
    """A sign-in that cannot complete: say so plainly and link to starting it again."""
    return error_page(
        request,
        status_code,
        message,
        heading="Please sign in again",
        next_step="Nothing was changed. Start the sign-in again with the link below.",
        link=PageLink(restart_link(target), "Start the sign-in again"),
    )


@router.post("/portal/sign-out")
def sign_out(request: Request, visitor: FormVisitorDep) -> Response:
    """End the session on the server and show the signed-out page."""
    session = visitor.session
    session.sign_out()
    return render(request, session, "signed_out.html", {})
