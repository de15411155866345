"""The browser session of server-rendered pages: a signed, HttpOnly, SameSite=Lax cookie, and CSRF tokens.

The cookie holds a small JSON dict signed with settings.session_secret (itsdangerous); it is not
encrypted, so it never holds secrets other than the sign-in flow's one-time PKCE verifier.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from core.errors import ConfigurationError, Forbidden
from core.settings import Settings

SESSION_MAX_AGE_SECONDS = 8 * 3600
CSRF_FIELD = "csrf_token"


class BrowserSession:
    """Read once per request from the cookie; `save` writes it back when it changed."""

    def __init__(self, settings: Settings, values: dict[str, Any]) -> None:
        self.settings = settings
        self.values = values
        self.changed = False

    @classmethod
    def load(cls, request: Request, settings: Settings) -> BrowserSession:
        """The session of this request; a missing, forged or expired cookie gives an empty one."""
        raw = request.cookies.get(settings.session_cookie_name)
        values: dict[str, Any] = {}
        if raw:
            try:
                loaded = _serializer(settings).loads(raw, max_age=SESSION_MAX_AGE_SECONDS)
                values = loaded if isinstance(loaded, dict) else {}
            except BadSignature:
                values = {}
        return cls(settings, values)

    def get(self, key: str) -> Any:
        """A value, or None."""
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        """Store a value (JSON-serialisable)."""
        self.values[key] = value
        self.changed = True

    def pop(self, key: str) -> Any:
        """Remove and return a value."""
        self.changed = self.changed or key in self.values
        return self.values.pop(key, None)

    def csrf_token(self) -> str:
        """The session's CSRF token, created on first use."""
        token = self.values.get(CSRF_FIELD)
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            self.set(CSRF_FIELD, token)
        return token

    def check_csrf(self, submitted: str | None) -> None:
        """Forbidden unless the form carries this session's CSRF token."""
        expected = self.values.get(CSRF_FIELD)
        # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError, so a 500).
        if (
            not isinstance(expected, str)
            or not submitted
            or not hmac.compare_digest(expected.encode(), submitted.encode(errors="replace"))
        ):
            raise Forbidden("the form is stale or was not sent from this site; reload the page and try again")

    def save(self, response: Response) -> None:
        """Write the cookie when the session changed."""
        if not self.changed:
            return
        response.set_cookie(
            self.settings.session_cookie_name,
            _serializer(self.settings).dumps(self.values),
            max_age=SESSION_MAX_AGE_SECONDS,
            httponly=True,
            samesite="lax",
            secure=self.settings.public_base_url.startswith("https://"),
            path="/",
        )


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    if settings.session_secret is None:
        raise ConfigurationError("CP_SESSION_SECRET is required for pages with sign-in")
    return URLSafeTimedSerializer(settings.session_secret.get_secret_value(), salt="browser-session")
