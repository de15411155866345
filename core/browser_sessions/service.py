"""Opening, validating, signing in, ending and revoking browser sessions.

Every function takes `now`, so lifetimes are decided by one clock the caller passes (the API passes
utc_now(); tests pass any instant). Functions flush; the caller's unit of work commits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlmodel import Session, col, delete, select, update

from core.audit.actions import AuditAction
from core.audit.service import record_audit_event
from core.browser_sessions.models import BrowserSessionRecord, SessionEndReason

# last_seen_at is written at most this often per session: a request per second must not be a write per second.
TOUCH_GRANULARITY = timedelta(seconds=30)
COOKIE_ID_BYTES = 32
# Rows removed per purge: each sign-in removes at most this many dead sessions, so none waits on a big delete.
PURGE_BATCH = 200


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives: an absolute bound from sign-in, and an idle bound since the last request."""

    absolute_lifetime: timedelta
    idle_timeout: timedelta

    def ends_at(self, record: BrowserSessionRecord) -> datetime:
        """The instant the session ends if it stays active; activity never moves it past the absolute bound."""
        started = record.signed_in_at or record.created_at
        return min(started + self.absolute_lifetime, record.last_seen_at + self.idle_timeout)

    def end_reason(self, record: BrowserSessionRecord, now: datetime) -> SessionEndReason | None:
        """Why the session is over at `now`, or None while it is valid."""
        if record.ended_at is not None:
            return SessionEndReason(record.end_reason or SessionEndReason.SIGNED_OUT)
        started = record.signed_in_at or record.created_at
        if now >= started + self.absolute_lifetime:
            return SessionEndReason.EXPIRED
        if now >= record.last_seen_at + self.idle_timeout:
            return SessionEndReason.IDLE
        return None


def new_cookie_id() -> str:
    """A fresh opaque session id for the cookie (256 random bits)."""
    return secrets.token_urlsafe(COOKIE_ID_BYTES)


def record_key(cookie_id: str) -> str:
    """The row key of a cookie id: a digest, so the table alone cannot be used to present a session."""
    return hashlib.sha256(b"session-row:" + cookie_id.encode()).hexdigest()


def csrf_token_of(cookie_id: str) -> str:
    """The session's CSRF token: derived from its id, so it changes whenever the id does (every sign-in)."""
    digest = hmac.new(cookie_id.encode(), b"csrf-token", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _fernet(cookie_id: str) -> Fernet:
    key = hashlib.sha256(b"session-seal:" + cookie_id.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(cookie_id: str, data: dict[str, Any]) -> str:
    """Encrypt the session's values with a key only the cookie's holder can derive."""
    if not data:
        return ""
    return _fernet(cookie_id).encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()


def unseal(cookie_id: str, sealed: str) -> dict[str, Any]:
    """The session's values; empty when there are none or they cannot be read."""
    if not sealed:
        return {}
    try:
        values = json.loads(_fernet(cookie_id).decrypt(sealed.encode()))
    except (InvalidToken, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def open_session(session: Session, cookie_id: str, now: datetime) -> BrowserSessionRecord:
    """A new anonymous session (it carries a sign-in flow until someone signs in)."""
    record = BrowserSessionRecord(id=record_key(cookie_id), created_at=now, last_seen_at=now)
    session.add(record)
    session.flush()
    return record


def valid_session(
    session: Session, cookie_id: str, policy: SessionPolicy, now: datetime
) -> BrowserSessionRecord | None:
    """The session a cookie names while it is valid (and its last request noted); None otherwise."""
    record = session.get(BrowserSessionRecord, record_key(cookie_id))
    if record is None:
        return None
    reason = policy.end_reason(record, now)
    if reason is not None:
        if record.ended_at is None:
            end_session(session, record, reason, now)
        return None
    if now - record.last_seen_at >= TOUCH_GRANULARITY:
        record.last_seen_at = now
        session.add(record)
        session.flush()
    return record


@dataclass(frozen=True)
class SignedInIdentity:
    """Who signed in, as the verified id token says."""

    entra_tenant_id: str
    object_id: str
    display_name: str
    username: str
    roles: tuple[str, ...]
    directory_roles: tuple[str, ...]


def sign_in(
    session: Session, previous: BrowserSessionRecord | None, identity: SignedInIdentity, cookie_id: str, now: datetime
) -> BrowserSessionRecord:
    """A new session for a person who just signed in; the previous one (anonymous or not) ends.

    A new id at every sign-in means a session id planted before sign-in, and its CSRF token, are worthless.
    """
    if previous is not None and previous.ended_at is None:
        end_session(session, previous, SessionEndReason.SIGNED_IN_AGAIN, now)
    record = BrowserSessionRecord(
        id=record_key(cookie_id),
        created_at=now,
        signed_in_at=now,
        last_seen_at=now,
        roles_checked_at=now,
        **_identity_fields(identity),
    )
    session.add(record)
    session.flush()
    record_audit_event(
        session,
        actor=f"user:{identity.object_id}",
        action=AuditAction.SESSION_SIGNED_IN,
        subject_type="browser_session",
        subject_id=record.id[:16],
        details={"entra_tenant_id": identity.entra_tenant_id, "roles": list(identity.roles)},
    )
    return record


def refresh_identity(
    session: Session, record: BrowserSessionRecord, identity: SignedInIdentity, now: datetime
) -> BrowserSessionRecord:
    """Roles (and tenant) read again from Entra: what the person may do follows their current assignment."""
    changed = (record.roles, record.entra_tenant_id) != (list(identity.roles), identity.entra_tenant_id)
    for name, value in _identity_fields(identity).items():
        setattr(record, name, value)
    record.roles_checked_at = now
    session.add(record)
    session.flush()
    if changed:
        record_audit_event(
            session,
            actor="system:session",
            action=AuditAction.SESSION_ROLES_REFRESHED,
            subject_type="browser_session",
            subject_id=record.id[:16],
            details={"object_id": identity.object_id, "roles": list(identity.roles)},
        )
    return record


def _identity_fields(identity: SignedInIdentity) -> dict[str, Any]:
    return {
        "entra_tenant_id": identity.entra_tenant_id,
        "object_id": identity.object_id,
        "display_name": identity.display_name[:256],
        "username": identity.username[:256],
        "roles": list(identity.roles),
        "directory_roles": list(identity.directory_roles),
    }


def end_session(session: Session, record: BrowserSessionRecord, reason: SessionEndReason, now: datetime) -> None:
    """End a session for good; what it kept sealed is dropped with it."""
    record.ended_at = now
    record.end_reason = reason.value
    record.sealed_data = ""
    session.add(record)
    session.flush()


def revoke_sessions(session: Session, *, entra_tenant_id: str, object_id: str, actor: str, now: datetime) -> int:
    """End every live session of one person (an operator's revocation); their next request is signed out."""
    result = session.exec(
        update(BrowserSessionRecord)
        .where(
            col(BrowserSessionRecord.entra_tenant_id) == entra_tenant_id,
            col(BrowserSessionRecord.object_id) == object_id,
            col(BrowserSessionRecord.ended_at).is_(None),
        )
        .values(ended_at=now, end_reason=SessionEndReason.REVOKED.value, sealed_data="")
    )
    count = int(result.rowcount or 0)
    record_audit_event(
        session,
        actor=actor,
        action=AuditAction.SESSION_REVOKED,
        subject_type="user",
        subject_id=object_id,
        details={"entra_tenant_id": entra_tenant_id, "sessions": count},
    )
    return count


def live_sessions(session: Session, *, entra_tenant_id: str, object_id: str) -> list[BrowserSessionRecord]:
    """The person's sessions not ended (some may be past their lifetime, ended at their next use)."""
    return list(
        session.exec(
            select(BrowserSessionRecord).where(
                BrowserSessionRecord.entra_tenant_id == entra_tenant_id,
                BrowserSessionRecord.object_id == object_id,
                col(BrowserSessionRecord.ended_at).is_(None),
            )
        ).all()
    )


def purge_dead_sessions(session: Session, policy: SessionPolicy, now: datetime) -> int:
    """Delete sessions no request can use any more (unused longer than any lifetime allows), a batch at a time."""
    cutoff = now - max(policy.absolute_lifetime, policy.idle_timeout)
    dead = select(BrowserSessionRecord.id).where(col(BrowserSessionRecord.last_seen_at) < cutoff).limit(PURGE_BATCH)
    ids = list(session.exec(dead).all())
    if ids:
        session.exec(delete(BrowserSessionRecord).where(col(BrowserSessionRecord.id).in_(ids)))
    return len(ids)
