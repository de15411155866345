"""The one Entra sign-in of every browser page: the portal's and the purchase pages' (authorization code + PKCE).

A page that needs a signed-in person starts the flow with where to go afterwards; the callback (/auth/callback)
completes it and goes there. Where to go is kept sealed in the server-side session, never in the URL.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse

from core.settings import Settings
from web.browser_paths import LANDING_PATH, PURCHASE_PATH_PREFIX, SIGN_IN_CALLBACK_PATH
from web.browser_session import BrowserSession, user_sign_in

FLOW_KEY = "sign_in_flow"
NEXT_KEY = "sign_in_next"
# Where the last sign-in went: back (to Entra, then the callback again) while signed in lands there once more.
SIGNED_IN_TO_KEY = "signed_in_to"
SIGN_IN_PATH = "/portal/sign-in"


def safe_next(target: object) -> str | None:
    """Our own browser pages only: an open redirect after sign-in would help phishing."""
    if not isinstance(target, str) or target.startswith("//"):
        return None
    if target.startswith(("/portal/", PURCHASE_PATH_PREFIX)) or target.split("?", 1)[0] == LANDING_PATH:
        return target
    return None


def begin_sign_in(
    request: Request,
    session: BrowserSession,
    settings: Settings,
    after: str | None,
    extra_scopes: list[str] | None = None,
) -> RedirectResponse:
    """Send the browser to Entra; the callback brings it back to `after` (a page of ours) once signed in."""
    flow = user_sign_in(request).begin(settings.public_base_url.rstrip("/") + SIGN_IN_CALLBACK_PATH, extra_scopes)
    session.set(FLOW_KEY, flow)
    session.set(NEXT_KEY, safe_next(after))
    response = RedirectResponse(flow["auth_uri"], status_code=302)
    session.save(response)
    return response


def restart_link(target: str | None) -> str:
    """Where starting the sign-in again begins: a purchase page signs in by itself, a portal page through sign-in."""
    if target is not None and not target.startswith("/portal/"):
        return target
    return SIGN_IN_PATH if target is None else f"{SIGN_IN_PATH}?next={quote(target, safe='')}"
