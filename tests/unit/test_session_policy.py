"""Session lifetimes (core.browser_sessions.service): one clock passed in, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.browser_sessions.models import BrowserSessionRecord, SessionEndReason
from core.browser_sessions.service import SessionPolicy, csrf_token_of, new_cookie_id, record_key, seal, unseal

POLICY = SessionPolicy(absolute_lifetime=timedelta(hours=8), idle_timeout=timedelta(minutes=30))
SIGN_IN = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def signed_in_session() -> BrowserSessionRecord:
    return BrowserSessionRecord(
        id="x", entra_tenant_id="t", object_id="o", created_at=SIGN_IN, signed_in_at=SIGN_IN, last_seen_at=SIGN_IN
    )


def test_activity_never_slides_the_session_past_its_absolute_lifetime() -> None:
    record = signed_in_session()
    now = SIGN_IN
    while now < SIGN_IN + timedelta(hours=8):
        assert POLICY.end_reason(record, now) is None, now
        record.last_seen_at = now  # a request every 29 minutes
        now += timedelta(minutes=29)
    assert POLICY.end_reason(record, now) == SessionEndReason.EXPIRED
    assert POLICY.ends_at(record) == SIGN_IN + timedelta(hours=8)


def test_idle_timeout() -> None:
    record = signed_in_session()
    assert POLICY.end_reason(record, SIGN_IN + timedelta(minutes=29, seconds=59)) is None
    assert POLICY.end_reason(record, SIGN_IN + timedelta(minutes=30)) == SessionEndReason.IDLE


def test_an_ended_session_stays_ended() -> None:
    record = signed_in_session()
    record.ended_at, record.end_reason = SIGN_IN, SessionEndReason.REVOKED.value
    assert POLICY.end_reason(record, SIGN_IN) == SessionEndReason.REVOKED


def test_the_cookie_id_is_neither_stored_nor_able_to_open_another_sessions_values() -> None:
    first, second = new_cookie_id(), new_cookie_id()
    assert first != second
    assert first not in record_key(first)
    assert csrf_token_of(first) != csrf_token_of(second)
    sealed = seal(first, {"landing_token": "purchase-token-value"})
    assert "purchase-token-value" not in sealed
    assert unseal(first, sealed) == {"landing_token": "purchase-token-value"}
    assert unseal(second, sealed) == {}
