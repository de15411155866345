"""Server-side sessions against a real API process: the cookie is an opaque id; the record decides.

Time is driven by moving a session's recorded instants into the past (as if the hours had passed), never
by sleeping: the server compares them with its clock at every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlmodel import col, select

from core.browser_sessions.models import BrowserSessionRecord
from core.browser_sessions.service import record_key
from core.clusters.models import ClusterStatus
from core.db import Database
from harness.marketplace_demo import CONTOSO_TENANT_ID
from tests.integration.lifecycle.conftest import ControlPlane, delete_test_rows
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.integration.security.visitors import PortalVisitor, sign_in_to_portal
from tests.support.factories import create_cluster, create_subscription, create_tenant

pytestmark = [pytest.mark.broker, pytest.mark.timeout(150)]

CAROL = "carol.admin@contoso.onmicrosoft.com"  # Customer.Admin by assignment
CAROL_OBJECT_ID = "4d5e6f7a-8b9c-4dae-9f0a-3b4c5d6e7f80"
UMA = "uma.user@contoso.onmicrosoft.com"
COOKIE = "cp_session"


@pytest.fixture
def contoso_subscription(database: Database) -> str:
    with database.session() as session:
        tenant = create_tenant(session, entra_tenant_id=CONTOSO_TENANT_ID, display_name="Contoso")
        subscription = create_subscription(session, tenant, name="sessions-suite")
        # No endpoint: the running scheduler's Blob probe must have nothing to call outside loopback.
        create_cluster(
            session,
            tenant,
            subscription=subscription,
            name="sessions-suite-cluster",
            resource_group="rg-sessions-suite",
            endpoint_fqdn=None,
            key_id="https://kv-sessions-suite.vault.azure.net/keys/cmk/1",
            status=ClusterStatus.READY,
        )
        return subscription.id


@pytest.fixture
def carol(control_plane: ControlPlane, emulators: Emulators) -> Iterator[PortalVisitor]:
    emulators.assign_app_roles(CAROL_OBJECT_ID, ["Customer.Admin"])
    visitor = sign_in_to_portal(emulators, control_plane.base_url, CAROL)
    yield visitor
    visitor.close()
    emulators.assign_app_roles(CAROL_OBJECT_ID, ["Customer.Admin"])


def _cookie(visitor: PortalVisitor) -> str:
    return next(cookie.value for cookie in visitor.browser.http.cookies.jar if cookie.name == COOKIE and cookie.value)


def _signed_in(base_url: str, cookie: str) -> bool:
    """Whether the portal treats this cookie as a signed-in session (else it redirects to sign-in)."""
    response = httpx.get(f"{base_url}/portal/subscriptions", cookies={COOKIE: cookie}, follow_redirects=False)
    assert response.status_code in (200, 303), response.text[:300]
    return response.status_code == 200


def _move_into_the_past(database: Database, object_id: str, by: timedelta) -> None:
    """As if `by` had passed since every instant the person's live sessions recorded."""
    with database.session() as session:
        for record in session.exec(
            select(BrowserSessionRecord).where(
                BrowserSessionRecord.object_id == object_id, col(BrowserSessionRecord.ended_at).is_(None)
            )
        ).all():
            record.created_at -= by
            record.last_seen_at -= by
            if record.signed_in_at is not None:
                record.signed_in_at -= by
            if record.roles_checked_at is not None:
                record.roles_checked_at -= by
            session.add(record)


def test_the_cookie_is_an_opaque_id_and_the_database_holds_no_usable_copy(
    control_plane: ControlPlane, carol: PortalVisitor, database: Database
) -> None:
    cookie = _cookie(carol)
    assert "." not in cookie  # not a signed payload
    assert CAROL_OBJECT_ID not in cookie
    with database.session() as session:
        records = session.exec(select(BrowserSessionRecord).where(BrowserSessionRecord.object_id == CAROL_OBJECT_ID))
        for record in records:
            assert cookie not in record.id
            assert cookie not in record.sealed_data
            assert "refresh" not in record.sealed_data  # sealed, not readable


def test_after_sign_out_a_copy_of_the_old_cookie_is_signed_out(
    control_plane: ControlPlane, carol: PortalVisitor, contoso_subscription: str
) -> None:
    base = control_plane.base_url
    copied_cookie, copied_csrf = _cookie(carol), carol.csrf_token
    assert _signed_in(base, copied_cookie)
    signed_out = carol.browser.http.post(f"{base}/portal/sign-out", data={"csrf_token": carol.csrf_token})
    assert signed_out.status_code == 200
    assert not _signed_in(base, copied_cookie)
    # The copied CSRF token is worth nothing with it either.
    replay = httpx.post(
        f"{base}/portal/subscriptions/{contoso_subscription}/key-rotations",
        data={"csrf_token": copied_csrf, "reason": "replayed after sign-out"},
        cookies={COOKIE: copied_cookie},
        follow_redirects=False,
    )
    assert replay.status_code == 401, replay.text[:300]


def test_absolute_lifetime_holds_under_continuous_activity(
    control_plane: ControlPlane, carol: PortalVisitor, database: Database
) -> None:
    base = control_plane.base_url
    cookie = _cookie(carol)
    elapsed = timedelta()
    # A request every 20 minutes (inside the 30-minute idle timeout) for 8 hours: active all the time.
    while elapsed < timedelta(hours=8) - timedelta(minutes=20):
        assert _signed_in(base, cookie), f"signed out after {elapsed} of continuous activity"
        _move_into_the_past(database, CAROL_OBJECT_ID, timedelta(minutes=20))
        elapsed += timedelta(minutes=20)
    assert _signed_in(base, cookie)  # 7 h 40 min in
    _move_into_the_past(database, CAROL_OBJECT_ID, timedelta(minutes=20))
    assert not _signed_in(base, cookie), "the session outlived its absolute lifetime of 8 hours"


def test_idle_timeout_ends_the_session(control_plane: ControlPlane, carol: PortalVisitor, database: Database) -> None:
    cookie = _cookie(carol)
    assert _signed_in(control_plane.base_url, cookie)
    _move_into_the_past(database, CAROL_OBJECT_ID, timedelta(minutes=31))
    assert not _signed_in(control_plane.base_url, cookie)


def test_a_removed_role_takes_effect_at_the_next_request(
    control_plane: ControlPlane, emulators: Emulators, carol: PortalVisitor, contoso_subscription: str
) -> None:
    base = control_plane.base_url
    page = carol.browser.http.get(f"{base}/portal/subscriptions/{contoso_subscription}")
    assert page.status_code == 200
    assert 'id="reader-note"' not in page.text
    # Contoso's admin removes Carol's Customer.Admin assignment in Entra.
    emulators.assign_app_roles(CAROL_OBJECT_ID, [])
    attempt = carol.browser.http.post(
        f"{base}/portal/subscriptions/{contoso_subscription}/key-rotations",
        data={"csrf_token": carol.csrf_token, "reason": "after the role was removed"},
        follow_redirects=False,
    )
    assert attempt.status_code == 403, attempt.text[:300]
    page = carol.browser.http.get(f"{base}/portal/subscriptions/{contoso_subscription}")
    assert 'id="reader-note"' in page.text
    # Assigned again: the next request acts again, without signing in anew.
    emulators.assign_app_roles(CAROL_OBJECT_ID, ["Customer.Admin"])
    page = carol.browser.http.get(f"{base}/portal/subscriptions/{contoso_subscription}")
    assert 'id="reader-note"' not in page.text


def test_an_operators_revocation_signs_the_person_out_at_the_next_request(
    control_plane: ControlPlane, emulators: Emulators, carol: PortalVisitor
) -> None:
    base = control_plane.base_url
    cookie = _cookie(carol)
    assert _signed_in(base, cookie)
    operator = emulators.control_plane_token(roles=["Operator"])
    revoked = httpx.post(
        f"{base}/api/publisher/sessions/revocations",
        json={"entra_tenant_id": CONTOSO_TENANT_ID, "object_id": CAROL_OBJECT_ID},
        headers={"Authorization": f"Bearer {operator}"},
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["sessions_ended"] >= 1
    assert not _signed_in(base, cookie)
    # A customer cannot revoke anyone's sessions.
    customer = emulators.control_plane_token(roles=["Customer.Admin"], tenant_id=CONTOSO_TENANT_ID)
    refused = httpx.post(
        f"{base}/api/publisher/sessions/revocations",
        json={"entra_tenant_id": CONTOSO_TENANT_ID, "object_id": CAROL_OBJECT_ID},
        headers={"Authorization": f"Bearer {customer}"},
    )
    assert refused.status_code == 403


def test_every_sign_in_opens_a_new_session_with_a_new_csrf_token(
    control_plane: ControlPlane, emulators: Emulators, database: Database
) -> None:
    first = sign_in_to_portal(emulators, control_plane.base_url, UMA)
    second = sign_in_to_portal(emulators, control_plane.base_url, UMA)
    try:
        assert _cookie(first) != _cookie(second)
        assert first.csrf_token != second.csrf_token
    finally:
        first.close()
        second.close()


def test_the_landing_page_sign_in_rotates_the_session_and_its_csrf_token(
    control_plane: ControlPlane, emulators: Emulators, database: Database
) -> None:
    purchase = emulators.purchase(plan_id="standard", quantity=1)
    browser = httpx.Client(verify=emulators.ca_bundle, timeout=15, follow_redirects=False)
    try:
        to_entra = browser.get(purchase["landing_page_url"])
        assert to_entra.status_code == 302
        before = to_entra.cookies[COOKIE]
        # The anonymous cookie names a record; the purchase token is not in the cookie.
        assert purchase["landing_page_url"].split("token=")[1] not in before
        from harness.marketplace_demo import CustomerBrowser

        customer = CustomerBrowser(emulators.ca_bundle)
        customer.http.cookies.set(COOKIE, before, domain="127.0.0.1")
        landing = customer.open_landing(purchase["landing_page_url"])
        assert landing.status_code == 200, landing.text[:300]
        after = next(cookie.value for cookie in customer.http.cookies.jar if cookie.name == COOKIE and cookie.value)
        assert after != before
        # The pre-sign-in session is over: presenting its cookie asks to sign in again.
        again = browser.get(purchase["landing_page_url"], cookies={COOKIE: before})
        assert again.status_code == 302
        customer.close()
    finally:
        browser.close()
        delete_test_rows(database)


def test_a_sign_in_removes_sessions_nobody_can_use_any_more(
    control_plane: ControlPlane, emulators: Emulators, carol: PortalVisitor, database: Database
) -> None:
    cookie = _cookie(carol)
    _move_into_the_past(database, CAROL_OBJECT_ID, timedelta(hours=9))
    someone_else = sign_in_to_portal(emulators, control_plane.base_url, UMA)
    someone_else.close()
    with database.session() as session:
        assert session.get(BrowserSessionRecord, record_key(cookie)) is None
