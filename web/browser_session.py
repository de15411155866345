"""The browser session of server-rendered pages: an opaque HttpOnly cookie naming a server-side record.

The cookie holds only a random id. The record (core.browser_sessions) says who signed in and when; values
kept between requests (the sign-in flow, the purchase link being signed in for, the refresh token, a flash
message) are sealed in it with a key derived from the id. So sign-out, an operator's revocation, the idle
timeout and the absolute lifetime take effect at the next request, whatever cookie a browser still holds.
Every sign-in opens a new record under a new id, which also rotates the CSRF token (derived from the id).
Roles and tenant are read again from Entra with the person's refresh token every
settings.session_role_check_seconds, so a removed role stops working then.
"""

from __future__ import annotations

import hmac
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from fastapi import Request, Response

from core.browser_sessions import service
from core.browser_sessions.models import BrowserSessionRecord, SessionEndReason
from core.clock import utc_now
from core.db import Database
from core.errors import Forbidden, Unauthenticated, UpstreamUnavailable
from core.identity.sign_in import SignedInUser, UserSignIn
from core.settings import Settings

CSRF_FIELD = "csrf_token"
REFRESH_TOKEN_KEY = "refresh_token"  # noqa: S105  # the name of a sealed value, not a secret
_REQUEST_STATE_KEY = "browser_session"
_sign_in_lock = threading.Lock()
logger = logging.getLogger(__name__)


def user_sign_in(request: Request) -> UserSignIn:
    """The API process's sign-in helper, built on first use."""
    with _sign_in_lock:
        sign_in: UserSignIn | None = getattr(request.app.state, "user_sign_in", None)
        if sign_in is None:
            sign_in = UserSignIn(request.app.state.settings)
            request.app.state.user_sign_in = sign_in
        return sign_in


def session_policy(settings: Settings) -> service.SessionPolicy:
    """The lifetimes of sessions, from the settings."""
    return service.SessionPolicy(
        absolute_lifetime=timedelta(seconds=settings.session_absolute_lifetime_seconds),
        idle_timeout=timedelta(seconds=settings.session_idle_timeout_seconds),
    )


@dataclass(frozen=True)
class SessionSnapshot:
    """What a request needs of its session record (read once, used after the unit of work closed)."""

    signed_in_at: datetime | None
    created_at: datetime
    user: SignedInUser | None

    @classmethod
    def of(cls, record: BrowserSessionRecord) -> SessionSnapshot:
        user = None
        if record.signed_in and record.entra_tenant_id and record.object_id:
            user = SignedInUser(
                tenant_id=record.entra_tenant_id,
                object_id=record.object_id,
                display_name=record.display_name,
                username=record.username,
                roles=tuple(record.roles),
                directory_roles=tuple(record.directory_roles),
            )
        return cls(record.signed_in_at, record.created_at, user)


class BrowserSession:
    """Read once per request (and cached on it); `save` writes changed values and the cookie back."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        cookie_id: str | None,
        snapshot: SessionSnapshot | None,
        values: dict[str, Any],
    ) -> None:
        self.settings = settings
        self.database = database
        self.cookie_id = cookie_id
        self.snapshot = snapshot
        self.values = values
        self.changed = False
        self.new_cookie = False
        self.ended = False

    @classmethod
    def load(cls, request: Request, settings: Settings) -> BrowserSession:
        """The session of this request; a missing, unknown, ended or expired one gives an anonymous session."""
        cached = getattr(request.state, _REQUEST_STATE_KEY, None)
        if isinstance(cached, BrowserSession):
            return cached
        database: Database = request.app.state.database
        cookie_id = request.cookies.get(settings.session_cookie_name)
        loaded = cls(settings, database, None, None, {})
        if cookie_id and len(cookie_id) <= 128:
            with database.session() as db:
                record = service.valid_session(db, cookie_id, session_policy(settings), utc_now())
                if record is not None:
                    loaded = cls(
                        settings,
                        database,
                        cookie_id,
                        SessionSnapshot.of(record),
                        service.unseal(cookie_id, record.sealed_data),
                    )
            loaded._recheck_roles(request)
        setattr(request.state, _REQUEST_STATE_KEY, loaded)
        return loaded

    @property
    def user(self) -> SignedInUser | None:
        """The signed-in person, or None."""
        return self.snapshot.user if self.snapshot is not None else None

    def get(self, key: str) -> Any:
        """A value, or None."""
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        """Store a value (JSON-serialisable); sealed in the record."""
        self.values[key] = value
        self.changed = True

    def pop(self, key: str) -> Any:
        """Remove and return a value."""
        self.changed = self.changed or key in self.values
        return self.values.pop(key, None)

    def csrf_token(self) -> str:
        """The CSRF token of this session ("" without one: anonymous pages carry no forms that change things)."""
        if self.cookie_id is None or self.snapshot is None:
            return ""
        return service.csrf_token_of(self.cookie_id)

    def check_csrf(self, submitted: str | None) -> None:
        """Forbidden unless the form carries this session's CSRF token."""
        expected = self.csrf_token()
        # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError, so a 500).
        if (
            not expected
            or not submitted
            or not hmac.compare_digest(expected.encode(), submitted.encode(errors="replace"))
        ):
            raise Forbidden("the form is stale or was not sent from this site; reload the page and try again")

    def sign_in(self, user: SignedInUser) -> None:
        """A new session (new id, new CSRF token) for the person who just signed in; the old one ends."""
        cookie_id = service.new_cookie_id()
        values = {REFRESH_TOKEN_KEY: user.refresh_token} if user.refresh_token else {}
        with self.database.session() as db:
            previous = db.get(BrowserSessionRecord, service.record_key(self.cookie_id)) if self.cookie_id else None
            record = service.sign_in(db, previous, _identity(user), cookie_id, utc_now())
            # Sign-ins are rare enough to pay for removing dead sessions as they go.
            service.purge_dead_sessions(db, session_policy(self.settings), utc_now())
            record.sealed_data = service.seal(cookie_id, values)
            db.add(record)
            snapshot = SessionSnapshot.of(record)
        self.cookie_id, self.snapshot, self.values = cookie_id, snapshot, values
        self.new_cookie, self.changed = True, False

    def sign_out(self) -> None:
        """End the session on the server; the cookie is cleared too, but a copy of it is worthless now."""
        if self.cookie_id is not None:
            with self.database.session() as db:
                record = db.get(BrowserSessionRecord, service.record_key(self.cookie_id))
                if record is not None and record.ended_at is None:
                    service.end_session(db, record, SessionEndReason.SIGNED_OUT, utc_now())
        self.cookie_id, self.snapshot, self.values = None, None, {}
        self.ended, self.changed = True, False

    def save(self, response: Response) -> None:
        """Write changed values to the record (opening an anonymous one when needed) and set the cookie."""
        if self.ended:
            response.delete_cookie(self.settings.session_cookie_name, path="/")
            return
        if self.changed:
            with self.database.session() as db:
                if self.cookie_id is None or self.snapshot is None:
                    self.cookie_id = service.new_cookie_id()
                    record = service.open_session(db, self.cookie_id, utc_now())
                    self.snapshot = SessionSnapshot.of(record)
                    self.new_cookie = True
                else:
                    found = db.get(BrowserSessionRecord, service.record_key(self.cookie_id))
                    if found is None or found.ended_at is not None:
                        return
                    record = found
                record.sealed_data = service.seal(self.cookie_id, self.values)
                db.add(record)
            self.changed = False
        if self.new_cookie and self.cookie_id is not None and self.snapshot is not None:
            started = self.snapshot.signed_in_at or self.snapshot.created_at
            remaining = started + timedelta(seconds=self.settings.session_absolute_lifetime_seconds) - utc_now()
            response.set_cookie(
                self.settings.session_cookie_name,
                self.cookie_id,
                max_age=max(int(remaining.total_seconds()), 0),
                httponly=True,
                samesite="lax",
                secure=self.settings.public_base_url.startswith("https://"),
                path="/",
            )
            self.new_cookie = False

    def _recheck_roles(self, request: Request) -> None:
        """Read roles and tenant again from Entra when the last reading is older than the setting allows."""
        if self.cookie_id is None or self.user is None:
            return
        with self.database.session() as db:
            record = db.get(BrowserSessionRecord, service.record_key(self.cookie_id))
            if record is None:
                return
            checked = record.roles_checked_at or record.created_at
            if (utc_now() - checked).total_seconds() < self.settings.session_role_check_seconds:
                return
        refresh_token = self.values.get(REFRESH_TOKEN_KEY)
        try:
            if not isinstance(refresh_token, str):
                raise Unauthenticated("this session holds no refresh token")
            current = user_sign_in(request).refresh(refresh_token)
        except Unauthenticated:
            with self.database.session() as db:
                record = db.get(BrowserSessionRecord, service.record_key(self.cookie_id))
                if record is not None:
                    service.end_session(db, record, SessionEndReason.ENTRA_REFUSED, utc_now())
            self.cookie_id, self.snapshot, self.values = None, None, {}
            return
        except (requests.RequestException, UpstreamUnavailable) as error:
            # Entra unreachable: keep the roles read last (within their check interval's tolerance) and try again.
            logger.warning("could not read roles again from Entra: %s", type(error).__name__)
            return
        if current.object_id != self.user.object_id:
            raise Unauthenticated("Entra answered for another person")
        values = {**self.values}
        if current.refresh_token:
            values[REFRESH_TOKEN_KEY] = current.refresh_token
        with self.database.session() as db:
            record = db.get(BrowserSessionRecord, service.record_key(self.cookie_id))
            if record is None or record.ended_at is not None:
                return
            service.refresh_identity(db, record, _identity(current), utc_now())
            record.sealed_data = service.seal(self.cookie_id, values)
            db.add(record)
            self.snapshot = SessionSnapshot.of(record)
        self.values = values


def _identity(user: SignedInUser) -> service.SignedInIdentity:
    return service.SignedInIdentity(
        entra_tenant_id=user.tenant_id,
        object_id=user.object_id,
        display_name=user.display_name,
        username=user.username,
        roles=user.roles,
        directory_roles=user.directory_roles,
    )
