"""Interactive sign-in: the authorize page (pick or type a user), its form post, and logout.

The page is plain HTML with labelled controls so a browser test or httpx can drive it. The
authorization request is kept server-side under a random id; the form only carries that id.
"""

from __future__ import annotations

import html
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi.responses import HTMLResponse, RedirectResponse, Response

from emulators.entra.directory import TENANT_ALIASES, AppRegistration, Directory, Tenant, User
from emulators.entra.grants import GrantStore, UserGrant, delegated_scope_name

PENDING_REQUEST_SECONDS = 900


class SignInPageError(Exception):
    """An error Entra shows on its own page because the redirect URI cannot be trusted."""

    def __init__(self, aadsts: int, message: str) -> None:
        super().__init__(f"AADSTS{aadsts}: {message}")
        self.aadsts = aadsts
        self.message = message


@dataclass
class AuthorizationRequest:
    """A validated /authorize request waiting for the user to sign in."""

    tenant: Tenant | None
    app: AppRegistration
    redirect_uri: str
    scopes: list[str]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    response_mode: str
    login_hint: str | None
    created_at: float


def _redirect_with(request: AuthorizationRequest, parameters: dict[str, str]) -> Response:
    """Send the result back to the app in the requested response mode (query or form_post)."""
    if request.state is not None:
        parameters = {**parameters, "state": request.state}
    if request.response_mode == "form_post":
        fields = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
            for name, value in parameters.items()
        )
        body = (
            "<!doctype html><html lang=en><head><title>Working...</title></head>"
            '<body onload="document.forms[0].submit()">'
            f'<form method="post" action="{html.escape(request.redirect_uri)}">'
            f"{fields}<noscript><button type=submit>Continue</button></noscript></form></body></html>"
        )
        return HTMLResponse(body)
    separator = "&" if "?" in request.redirect_uri else "?"
    return RedirectResponse(f"{request.redirect_uri}{separator}{urlencode(parameters)}", status_code=302)


def error_page(error: SignInPageError, status_code: int = 400) -> HTMLResponse:
    """Entra's own error page (no redirect back to the app)."""
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Sign in error</title></head><body>"
        f"<main><h1>Sorry, but we're having trouble signing you in.</h1><p role=alert>AADSTS{error.aadsts}: "
        f"{html.escape(error.message)}</p></main></body></html>"
    )
    return HTMLResponse(body, status_code=status_code)


class SignInService:
    """Validates authorization requests, renders the sign-in page and turns a chosen user into a code."""

    def __init__(self, directory: Directory, grants: GrantStore) -> None:
        self.directory = directory
        self.grants = grants
        self._lock = threading.Lock()
        self._pending: dict[str, AuthorizationRequest] = {}

    def begin(self, tenant_segment: str, query: dict[str, str]) -> Response:
        """GET /authorize: validate, then show the page (or redirect errors the app can handle)."""
        tenant = self.directory.resolve_tenant(tenant_segment)
        if tenant is None and tenant_segment.lower() not in TENANT_ALIASES:
            raise SignInPageError(90002, f"Tenant '{tenant_segment}' not found.")
        client_id = query.get("client_id", "")
        app = self.directory.apps.get(client_id)
        if app is None:
            raise SignInPageError(
                700016, f"Application with identifier '{client_id}' was not found in the directory '{tenant_segment}'."
            )
        redirect_uri = query.get("redirect_uri", "")
        if not app.accepts_redirect_uri(redirect_uri):
            raise SignInPageError(
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
                f"configured for the application '{app.app_id}'.",
            )
        request = AuthorizationRequest(
            tenant=tenant,
            app=app,
            redirect_uri=redirect_uri,
            scopes=query.get("scope", "openid").split(),
            state=query.get("state"),
            nonce=query.get("nonce"),
            code_challenge=query.get("code_challenge"),
            code_challenge_method=query.get("code_challenge_method"),
            response_mode=query.get("response_mode", "query"),
            login_hint=query.get("login_hint"),
            created_at=time.time(),
        )
        if query.get("response_type") != "code":
            return _redirect_with(
                request,
                {
                    "error": "unsupported_response_type",
                    "error_description": "AADSTS700054: Only response_type 'code' is supported by this emulator.",
                },
            )
        if request.code_challenge and (request.code_challenge_method or "plain") != "S256":
            return _redirect_with(
                request,
                {
                    "error": "invalid_request",
                    "error_description": "AADSTS501491: code_challenge_method must be 'S256'.",
                },
            )
        if query.get("prompt") == "none":
            # No browser session is kept, so silent sign-in always needs interaction.
            return _redirect_with(
                request,
                {"error": "login_required", "error_description": "AADSTS50058: A silent sign-in request was sent."},
            )
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            self._pending[request_id] = request
        return HTMLResponse(self._page(request_id, request))

    def complete(self, form: dict[str, str]) -> Response:
        """POST of the sign-in form: find the user, check tenant and consent, redirect with a code."""
        with self._lock:
            request = self._pending.get(form.get("request_id", ""))
        if request is None or time.time() - request.created_at > PENDING_REQUEST_SECONDS:
            raise SignInPageError(50058, "The sign-in request is unknown or has expired; start again.")
        if form.get("action") == "cancel":
            self._forget(form["request_id"])
            return _redirect_with(
                request,
                {
                    "error": "access_denied",
                    "error_description": "AADSTS65004: User declined to consent to access the app.",
                },
            )
        typed_name = form.get("typed_username", "").strip()
        user = self.directory.user_by_name(typed_name or form.get("username", ""))
        if user is None:
            return HTMLResponse(
                self._page(form["request_id"], request, "We couldn't find an account with that username."),
                status_code=200,
            )
        refusal = self._refusal(request, user)
        if refusal is not None:
            self._forget(form["request_id"])
            return _redirect_with(request, refusal)
        self._forget(form["request_id"])
        self._consent_to_requested_scopes(request, user)
        code = self.grants.issue_code(
            UserGrant(
                client_id=request.app.app_id,
                user=user,
                scopes=request.scopes,
                redirect_uri=request.redirect_uri,
                nonce=request.nonce,
                code_challenge=request.code_challenge,
            )
        )
        return _redirect_with(request, {"code": code, "session_state": secrets.token_hex(16)})

    def _refusal(self, request: AuthorizationRequest, user: User) -> dict[str, str] | None:
        """Why this user may not sign in to this app here, as redirect error parameters (None: allowed)."""
        app = request.app
        if request.tenant is not None and request.tenant.id != user.tenant_id:
            return {
                "error": "access_denied",
                "error_description": f"AADSTS50020: User account '{user.user_principal_name}' does not exist in "
                f"tenant '{request.tenant.display_name}' and cannot access the application '{app.app_id}'.",
            }
        if user.tenant_id != app.home_tenant_id and not app.is_multi_tenant:
            return {
                "error": "access_denied",
                "error_description": f"AADSTS50020: User account '{user.user_principal_name}' from another tenant "
                f"cannot access the single-tenant application '{app.app_id}'.",
            }
        if not self.directory.has_service_principal(user.tenant_id, app.app_id):
            if not user.is_tenant_admin:
                return {
                    "error": "consent_required",
                    "error_description": "AADSTS65001: The user or administrator has not consented to use the "
                    f"application with ID '{app.app_id}' named '{app.display_name}'. An administrator of the "
                    "tenant must grant consent first.",
                }
            # An administrator signing in consents on behalf of the organisation.
            self.directory.grant_consent(user.tenant_id, app.app_id)
        return None

    def _consent_to_requested_scopes(self, request: AuthorizationRequest, user: User) -> None:
        """The user accepts the Microsoft resource permissions the app asked for (incremental consent).

        Entra lets users consent to low-risk delegated permissions such as Azure Resource Manager's
        user_impersonation; the grant is the user's own, so it covers their later refresh-token requests.
        """
        for scope in request.scopes:
            named = delegated_scope_name(scope)
            resource = self.directory.resource_for(named[0]) if named else None
            if named is not None and resource is not None and resource.app_id in self.directory.resources:
                self.directory.grant_delegated(
                    user.tenant_id, request.app.app_id, resource.app_id, {named[1]}, principal=user.object_id
                )

    def _forget(self, request_id: str) -> None:
        with self._lock:
            self._pending.pop(request_id, None)

    def _page(self, request_id: str, request: AuthorizationRequest, error: str | None = None) -> str:
        users = [
            user
            for user in self.directory.users.values()
            if request.tenant is None or user.tenant_id == request.tenant.id
        ]
        choices = "".join(
            f'<div><input type="radio" id="user-{index}" name="username" '
            f'value="{html.escape(user.user_principal_name)}"{" checked" if index == 0 else ""}>'
            f' <label for="user-{index}">{html.escape(user.display_name)} '
            f"({html.escape(user.user_principal_name)})</label></div>"
            for index, user in enumerate(users)
        )
        error_html = f'<p role="alert" id="sign-in-error">{html.escape(error)}</p>' if error else ""
        hint = html.escape(request.login_hint or "")
        return (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<title>Sign in to your account</title></head><body><main>"
            f"<h1>Sign in</h1><p>to continue to {html.escape(request.app.display_name)}</p>{error_html}"
            '<form method="post" action="authorize">'
            f'<input type="hidden" name="request_id" value="{html.escape(request_id)}">'
            f"<fieldset><legend>Pick an account</legend>{choices}</fieldset>"
            '<p><label for="typed_username">Or type a username</label> '
            f'<input type="email" id="typed_username" name="typed_username" value="{hint}" autocomplete="username">'
            "</p>"
            '<p><button type="submit" name="action" value="sign-in">Sign in</button> '
            '<button type="submit" name="action" value="cancel">Cancel</button></p>'
            "</form></main></body></html>"
        )

    def logout(self, query: dict[str, str]) -> Response:
        """Redirect to a registered post-logout URI (with state), or show a signed-out page."""
        target = query.get("post_logout_redirect_uri")
        if target and any(app.accepts_post_logout_redirect_uri(target) for app in self.directory.apps.values()):
            state = query.get("state")
            separator = "&" if "?" in target else "?"
            location = f"{target}{separator}{urlencode({'state': state})}" if state else target
            return RedirectResponse(location, status_code=302)
        return HTMLResponse(
            "<!doctype html><html lang=en><head><title>Signed out</title></head><body><main>"
            "<h1>You signed out of your account</h1><p>It's a good idea to close all browser windows.</p>"
            "</main></body></html>"
        )
