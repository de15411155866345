"""Audit without floods: refused requests are tallied per source, reason and minute, and spend the sender's bucket.

Against the real API process of the security suite (emulators wired in) and, for the bucket, one with a tiny
webhook limit. Each test speaks from its own loopback address, which is the source its refusals are counted for.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import col, select

from core.audit.models import AuditEvent, AuditOutcome
from core.audit.refusals import record_refusal, refusal_category
from core.db import Database
from core.settings import Settings
from tests.conftest import start_api
from tests.integration.lifecycle.conftest import ControlPlane
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.integration.security.visitors import OPERATOR_USERNAME, sign_in_to_portal

pytestmark = pytest.mark.timeout(300)

FLOOD = 1_000
# A flood that straddles a minute boundary leaves two tallies; anything more would be a leak.
HANDFUL = 2
WEBHOOK_REFUSED = "marketplace.webhook_refused"
NOTIFICATION_REFUSED = "managed_app.notification_refused"
GUESSED_SIG = "guess-" + uuid.uuid4().hex


def client_from(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def flood(url: str, address: str, count: int, **request: object) -> list[int]:
    """`count` POSTs from `address`, eight at a time (several API threads upsert the same tally at once)."""
    with client_from(address) as http, ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: http.post(url, **request).status_code, range(count)))  # type: ignore[arg-type]


def tallies(database: Database, action: str, source: str) -> list[AuditEvent]:
    with database.session() as session:
        statement = (
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.subject_id == source)
            .order_by(col(AuditEvent.id))
        )
        return list(session.exec(statement).all())


def test_a_thousand_refused_webhooks_leave_a_handful_of_audit_rows(
    control_plane: ControlPlane, emulators: Emulators, database: Database
) -> None:
    source = "127.0.0.41"
    statuses = flood(f"{control_plane.base_url}/marketplace/webhook", source, FLOOD, json={})
    assert statuses == [401] * FLOOD
    rows = tallies(database, WEBHOOK_REFUSED, source)
    assert 1 <= len(rows) <= HANDFUL
    assert sum(row.occurrences for row in rows) == FLOOD  # every refusal counted, none listed
    for row in rows:
        assert row.outcome == AuditOutcome.REFUSED
        assert row.details["reason"] == "missing bearer token"
        assert row.details["status"] == 401
    # The operator's audit search shows the tally with its count.
    operator = sign_in_to_portal(emulators, control_plane.base_url, OPERATOR_USERNAME)
    try:
        page = operator.browser.http.get(
            f"{control_plane.base_url}/portal/operator/audit", params={"action": WEBHOOK_REFUSED, "subject": source}
        )
    finally:
        operator.close()
    assert page.status_code == 200
    assert f"({rows[0].occurrences} times in this minute)" in page.text


def test_wrong_managed_app_signatures_are_tallied_the_same_way(
    tmp_path_factory: pytest.TempPathFactory, app_settings: Settings, database_url: str, database: Database
) -> None:
    group, base_url = start_api(
        tmp_path_factory.mktemp("tally-logs"), app_settings, CP_MANAGED_APP_NOTIFICATION_SECRET=uuid.uuid4().hex
    )
    try:
        source = "127.0.0.42"
        statuses = flood(f"{base_url}/managedapp/resource?sig={GUESSED_SIG}", source, 200, json={})
    finally:
        group.stop_all()
    assert statuses == [401] * 200
    rows = tallies(database, NOTIFICATION_REFUSED, source)
    assert 1 <= len(rows) <= HANDFUL
    assert sum(row.occurrences for row in rows) == 200
    assert GUESSED_SIG not in str([row.details for row in rows])  # the sig sent is not written down either


def test_refusals_with_different_reasons_or_sources_are_tallied_apart(database: Database) -> None:
    moment = datetime(2026, 12, 7, 17, 30, 5, tzinfo=UTC)
    for source, reason in [("192.0.2.1", "token expired")] * 3 + [("192.0.2.2", "token expired")] * 2:
        record_refusal(database, actor="test", action="test.refused", source=source, reason=reason, now=moment)
    record_refusal(database, actor="test", action="test.refused", source="192.0.2.1", reason="no token", now=moment)
    # The next minute starts a new tally.
    later = moment.replace(minute=31)
    record_refusal(database, actor="test", action="test.refused", source="192.0.2.1", reason="no token", now=later)
    with database.session() as session:
        rows = session.exec(select(AuditEvent).where(AuditEvent.action == "test.refused")).all()
    counted = sorted((row.subject_id, row.details["reason"], row.occurred_at.minute, row.occurrences) for row in rows)
    assert counted == [
        ("192.0.2.1", "no token", 30, 1),
        ("192.0.2.1", "no token", 31, 1),
        ("192.0.2.1", "token expired", 30, 3),
        ("192.0.2.2", "token expired", 30, 2),
    ]


def test_what_the_sender_chose_does_not_make_a_tally_of_its_own() -> None:
    assert refusal_category("token algorithm 'none' is not accepted") == refusal_category(
        "token algorithm 'x-1' is not accepted"
    )
    assert refusal_category("body is not valid JSON: line 1 column 7") == refusal_category(
        "body is not valid JSON: line 3 column 99"
    )


@pytest.fixture(scope="module")
def webhook_limited_api(tmp_path_factory: pytest.TempPathFactory, app_settings: Settings) -> Iterator[str]:
    group, base_url = start_api(
        tmp_path_factory.mktemp("tally-limited-logs"),
        app_settings,
        CP_RATE_LIMIT_WEBHOOK_PER_SECOND="1",
        CP_RATE_LIMIT_WEBHOOK_BURST="3",
    )
    yield base_url
    group.stop_all()


def test_refused_webhooks_spend_the_senders_bucket(webhook_limited_api: str, database: Database) -> None:
    source = "127.0.0.43"
    with client_from(source) as http:
        statuses = [http.post(f"{webhook_limited_api}/marketplace/webhook", json={}).status_code for _ in range(8)]
    assert statuses[:3] == [401, 401, 401]
    assert 429 in statuses[3:]
    # Only what reached the webhook is counted; the 429s are the limiter's and cost nothing to store.
    assert sum(row.occurrences for row in tallies(database, WEBHOOK_REFUSED, source)) == statuses.count(401)
