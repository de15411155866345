"""SQL and HTML injection strings in every text field a user or Marketplace can send, against a real API process.

Each hostile string is either stored verbatim or refused by validation with a 4xx; it is never executed (the
tables survive, a filter matches only itself), the portal and landing pages show it escaped (so `<script>`
reaches the browser as `&lt;script&gt;`), and the JSON API returns it intact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import escape
from sqlmodel import select

from core.audit.service import record_audit_event
from core.catalog.models import Offer
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import KeyRotation
from core.db import Database
from core.inbox.models import InboundEvent
from core.networking.models import PrivateEndpointConnection
from core.subscriptions.models import MarketplaceOperation, MarketplaceSubscription
from core.tenants.models import Tenant
from harness.marketplace_demo import CONTOSO_ADMIN, CONTOSO_TENANT_ID
from tests.integration.lifecycle.conftest import ControlPlane
from tests.integration.lifecycle.marketplace_driver import Browser, Emulators
from tests.integration.security.test_token_attacks import webhook_body
from tests.integration.security.visitors import OPERATOR_USERNAME, PortalVisitor, sign_in_to_portal
from tests.support.factories import (
    create_cluster,
    create_private_endpoint_connection,
    create_subscription,
    create_tenant,
)

# Generous: the first test of a module may wait for the control plane to start on a loaded machine.
pytestmark = [pytest.mark.broker, pytest.mark.timeout(150)]
HOSTILE = {
    "script tag": "<script>alert('owned')</script>",
    "attribute break-out": '"><img src=x onerror=alert(1)>',
    "statement stacking": "'; DROP TABLE marketplace_subscriptions; --",
    "tautology": "x' OR '1'='1",
    "LIKE wildcards": "%_%",
    "template expression": "{{ 7*7 }}{% if true %}",
    "unicode and bidi override": "Ωmega \u202eevil\u202c 🚀",
}
FREE_TEXT_FIELDS = (
    "region",
    "azure_subscription_id",
    "resource_group",
    "pls_visibility_subscriptions",
    "pls_auto_approval_subscriptions",
)
STATUS_FILTER_MAX_LENGTH = 32


def assert_shown_escaped(page: str, value: str) -> None:
    """The value is on the page HTML-escaped, and never as markup."""
    assert str(escape(value)) in page, f"{value!r} is not shown escaped"
    if "<" in value or '"' in value:
        assert value not in page, f"{value!r} reached the page unescaped"
    if "<script>" in value:
        assert "&lt;script&gt;" in page


def assert_shown_as_json(page: str, value: str) -> None:
    """The value is on the page as HTML-safe JSON (the audit trail's details), and never as markup."""
    assert str(htmlsafe_json_dumps(value)) in page, f"{value!r} is not shown as escaped JSON"
    if "<" in value:
        assert value not in page


@pytest.fixture(scope="module")
def alice(control_plane: ControlPlane, emulators: Emulators) -> Iterator[PortalVisitor]:
    visitor = sign_in_to_portal(emulators, control_plane.base_url, CONTOSO_ADMIN)
    yield visitor
    visitor.close()


@pytest.fixture(scope="module")
def olivia(control_plane: ControlPlane, emulators: Emulators) -> Iterator[PortalVisitor]:
    visitor = sign_in_to_portal(emulators, control_plane.base_url, OPERATOR_USERNAME)
    yield visitor
    visitor.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tables_survive(database: Database) -> None:
    """The statements the strings spell out did not run: the tables they name are still there and readable."""
    with database.session() as session:
        session.exec(select(MarketplaceSubscription)).all()
        session.exec(select(Tenant)).all()
        assert session.get(Offer, "vast-blob-facade") is not None


@pytest.fixture(scope="module")
def landing_page(control_plane: ControlPlane, emulators: Emulators) -> Iterator[tuple[Browser, httpx.Response, str]]:
    """An unconfirmed purchase's landing page, signed in as Contoso's admin."""
    browser = Browser(emulators)
    purchase = emulators.purchase(plan_id="standard", quantity=1)
    page = browser.open_landing(purchase["landing_page_url"])
    assert page.status_code == 200, page.text
    yield browser, page, purchase["subscription_id"]
    browser.close()


@pytest.mark.parametrize("hostile", list(HOSTILE.values()), ids=list(HOSTILE))
def test_landing_form_refuses_hostile_choices_and_shows_them_escaped(
    hostile: str, landing_page: tuple[Browser, httpx.Response, str], emulators: Emulators, database: Database
) -> None:
    browser, page, subscription_id = landing_page
    choices = {**emulators.deployment_choices(), **dict.fromkeys(FREE_TEXT_FIELDS, hostile)}
    answer = browser.confirm(page, choices)
    assert answer.status_code == 422, answer.text[:500]
    assert 'role="alert"' in answer.text
    for name in ("region", "azure_subscription_id"):
        assert f'name="{name}" required' in answer.text
    assert 'name="resource_group"' in answer.text  # optional: empty gives the cluster a group of its own
    assert_shown_escaped(answer.text, hostile)
    with database.session() as session:
        assert session.get(MarketplaceSubscription, subscription_id) is None
    tables_survive(database)


def test_marketplace_names_and_emails_are_stored_verbatim_and_shown_escaped(
    control_plane: ControlPlane, emulators: Emulators, database: Database, alice: PortalVisitor, olivia: PortalVisitor
) -> None:
    """Subscription name and purchaser email come from Marketplace (the resolve call), not from our forms."""
    name = " ".join(HOSTILE.values())
    purchaser_email = "<script>alert('mail')</script>'--@contoso.example"
    purchase = emulators.marketplace_control(
        "POST",
        "/purchases",
        json={
            "plan_id": "standard",
            "quantity": 1,
            "name": name,
            "beneficiary": {"tenant_id": CONTOSO_TENANT_ID, "email": CONTOSO_ADMIN},
            "purchaser": {"tenant_id": CONTOSO_TENANT_ID, "email": purchaser_email},
        },
    )
    subscription_id = purchase["subscription_id"]
    landing = alice.browser.open_landing(purchase["landing_page_url"])
    assert landing.status_code == 200, landing.text
    assert_shown_escaped(landing.text, name)
    confirmed = alice.browser.confirm(landing)
    assert confirmed.status_code == 200, confirmed.text[:500]

    with database.session() as session:
        stored = session.get(MarketplaceSubscription, subscription_id)
        assert stored is not None
        assert (stored.name, stored.purchaser_email) == (name, purchaser_email)
    tables_survive(database)
    detail = httpx.get(
        f"{control_plane.base_url}/api/publisher/subscriptions/{subscription_id}",
        headers=bearer(emulators.control_plane_token(roles=["Operator"])),
        timeout=15,
    )
    assert detail.status_code == 200, detail.text
    assert detail.json()["subscription"]["name"] == name
    for visitor, path in (
        (alice, "/portal/subscriptions"),
        (alice, f"/portal/subscriptions/{subscription_id}"),
        (olivia, "/portal/operator/subscriptions"),
    ):
        page = visitor.browser.http.get(control_plane.base_url + path)
        assert page.status_code == 200, (path, page.text[:300])
        assert_shown_escaped(page.text, name)


@dataclass
class ContosoCluster:
    subscription_id: str
    cluster_id: str
    connection_ids: tuple[str, str]


def contoso_cluster(database: Database, request_message: str) -> ContosoCluster:
    """A ready Contoso cluster with a key and two pending connections whose request message is `request_message`."""
    with database.session() as session:
        tenant = create_tenant(session, entra_tenant_id=CONTOSO_TENANT_ID)
        subscription = create_subscription(session, tenant)
        # No endpoint: the running scheduler's Blob probe must have nothing to call outside loopback.
        cluster = create_cluster(
            session,
            tenant,
            subscription=subscription,
            endpoint_fqdn=None,
            key_id="https://kv-contoso.vault.azure.net/keys/cmk/1",
            status=ClusterStatus.READY,
        )
        connections = tuple(
            create_private_endpoint_connection(session, cluster, request_message=request_message).id for _ in range(2)
        )
        return ContosoCluster(subscription.id, cluster.id, (connections[0], connections[1]))


@pytest.mark.parametrize("hostile", list(HOSTILE.values()), ids=list(HOSTILE))
def test_reasons_and_messages_are_stored_verbatim_returned_intact_and_shown_escaped(
    hostile: str,
    control_plane: ControlPlane,
    emulators: Emulators,
    database: Database,
    alice: PortalVisitor,
) -> None:
    base = control_plane.base_url
    owned = contoso_cluster(database, request_message=hostile)
    customer = bearer(emulators.control_plane_token(roles=["Customer.Admin"], tenant_id=CONTOSO_TENANT_ID))
    clusters = f"{base}/api/clusters/{owned.cluster_id}"

    rotation = httpx.post(f"{clusters}/key-rotations", json={"reason": hostile}, headers=customer, timeout=15)
    assert rotation.status_code == 202, rotation.text
    listed = httpx.get(f"{clusters}/private-endpoint-connections", headers=customer, timeout=15)
    assert listed.status_code == 200, listed.text
    assert {item["request_message"] for item in listed.json()} == {hostile}
    decided = httpx.post(
        f"{clusters}/private-endpoint-connections/{owned.connection_ids[0]}/decision",
        json={"decision": "approved", "reason": hostile},
        headers=customer,
        timeout=15,
    )
    assert decided.status_code == 200, decided.text
    assert (decided.json()["decision_reason"], decided.json()["request_message"]) == (hostile, hostile)
    in_portal = alice.browser.http.post(
        f"{base}/portal/subscriptions/{owned.subscription_id}/connections/{owned.connection_ids[1]}",
        data={"decision": "rejected", "reason": hostile, "csrf_token": alice.csrf_token},
        follow_redirects=False,
    )
    assert in_portal.status_code == 303, in_portal.text[:500]

    with database.session() as session:
        rotations = session.exec(select(KeyRotation).where(KeyRotation.cluster_id == owned.cluster_id)).all()
        assert [row.reason for row in rotations] == [hostile]
        reasons = {
            row.id: row.decision_reason
            for row in session.exec(
                select(PrivateEndpointConnection).where(PrivateEndpointConnection.cluster_id == owned.cluster_id)
            )
        }
        assert reasons == dict.fromkeys(owned.connection_ids, hostile)
    tables_survive(database)

    page = alice.browser.http.get(f"{base}/portal/subscriptions/{owned.subscription_id}")
    assert page.status_code == 200, page.text[:300]
    assert_shown_escaped(page.text, hostile)  # the connections' request messages
    audit = alice.browser.http.get(f"{base}/portal/audit")
    assert audit.status_code == 200, audit.text[:300]
    assert_shown_as_json(audit.text, hostile)  # the reasons in the events' details


@pytest.mark.parametrize("hostile", list(HOSTILE.values()), ids=list(HOSTILE))
def test_filters_and_path_ids_match_only_themselves_and_are_shown_escaped(
    hostile: str,
    control_plane: ControlPlane,
    emulators: Emulators,
    database: Database,
    alice: PortalVisitor,
    olivia: PortalVisitor,
) -> None:
    base = control_plane.base_url
    with database.session() as session:
        tenant = create_tenant(session, entra_tenant_id=CONTOSO_TENANT_ID)
        subscription = create_subscription(session, tenant)
        record_audit_event(
            session,
            actor="system:controller",
            action="cluster.provisioning.ready",
            subject_type="subscription",
            subject_id=subscription.id,
            tenant_id=tenant.id,
        )
        subscription_id = subscription.id
    operator = bearer(emulators.control_plane_token(roles=["Operator"]))

    everything = httpx.get(f"{base}/api/publisher/subscriptions", headers=operator, timeout=15).json()
    assert everything["total"] == 1
    for parameter in ("plan_id", "tenant_id"):
        filtered = httpx.get(
            f"{base}/api/publisher/subscriptions", params={parameter: hostile}, headers=operator, timeout=15
        )
        assert filtered.status_code == 200, filtered.text
        assert (filtered.json()["total"], filtered.json()["items"]) == (0, [])

    pages = (
        (olivia, "/portal/operator/subscriptions", {"plan": hostile, "tenant": hostile, "status": hostile}),
        (olivia, "/portal/operator/audit", {"action": hostile, "actor": hostile, "subject": hostile}),
        (alice, "/portal/audit", {"action": hostile}),
    )
    for visitor, path, query in pages:
        page = visitor.browser.http.get(base + path, params=query)
        if len(hostile) > STATUS_FILTER_MAX_LENGTH and "status" in query:
            # Longer than any status: refused by validation, naming the field, before any query runs.
            assert page.status_code == 422, (path, page.text[:300])
            # A portal page answers a page naming the field (the JSON API the same problem as JSON).
            assert page.headers["content-type"].startswith("text/html"), page.headers["content-type"]
            assert "status" in page.text, page.text[:300]
            continue
        assert page.status_code == 200, (path, page.text[:300])
        assert subscription_id not in page.text, f"{path} matched rows with a hostile filter"
        assert_shown_escaped(page.text, hostile.strip())

    quoted = quote(hostile, safe="")
    for path in (f"/api/clusters/{quoted}", f"/api/publisher/subscriptions/{quoted}"):
        missing = httpx.get(base + path, headers=operator, timeout=15)
        assert missing.status_code == 404, (path, missing.text)
        if "/" not in hostile:  # a slash splits the path: no route matches, which is a 404 of its own
            assert hostile in missing.json()["error"]["details"].values()
    for path in (f"/portal/subscriptions/{quoted}", f"/marketplace/subscriptions/{quoted}"):
        missing = alice.browser.http.get(base + path)
        assert missing.status_code == 404, (path, missing.text[:300])
        if "<" in hostile:
            assert hostile not in missing.text
    with database.session() as session:
        assert len(session.exec(select(MarketplaceSubscription)).all()) == 1
        assert session.exec(select(Cluster)).all() == []
    tables_survive(database)


def test_nul_characters_are_refused_everywhere_and_store_nothing(
    control_plane: ControlPlane, emulators: Emulators, database: Database, alice: PortalVisitor
) -> None:
    """PostgreSQL cannot hold NUL in text: refused as bad input on both backends, never a 500 at the database."""
    base = control_plane.base_url
    owned = contoso_cluster(database, request_message="plain")
    customer = bearer(emulators.control_plane_token(roles=["Customer.Admin"], tenant_id=CONTOSO_TENANT_ID))
    operator = bearer(emulators.control_plane_token(roles=["Operator"]))
    body_refusal = "NUL characters are not accepted in the request body"
    url_refusal = "NUL characters are not accepted in the URL"
    attempts = [
        (
            httpx.post(
                f"{base}/api/clusters/{owned.cluster_id}/key-rotations",
                json={"reason": "before\x00after"},
                headers=customer,
                timeout=15,
            ),
            body_refusal,
        ),
        (
            alice.browser.http.post(
                f"{base}/portal/subscriptions/{owned.subscription_id}/connections/{owned.connection_ids[0]}",
                data={"decision": "rejected", "reason": "before\x00after", "csrf_token": alice.csrf_token},
                follow_redirects=False,
            ),
            body_refusal,
        ),
        (
            httpx.post(
                f"{base}/marketplace/webhook",
                json={**webhook_body(), "planId": "standard\x00"},
                headers=bearer(emulators.webhook_token()),
                timeout=15,
            ),
            body_refusal,
        ),
        (
            httpx.get(
                f"{base}/api/publisher/subscriptions", params={"plan_id": "a\x00b"}, headers=operator, timeout=15
            ),
            url_refusal,
        ),
        (httpx.get(f"{base}/api/clusters/a%00b", headers=operator, timeout=15), url_refusal),
    ]
    for response, message in attempts:
        assert response.status_code == 400, (response.request.url, response.text[:300])
        assert response.json()["error"] == {"code": "BadRequest", "message": message, "details": {}}
    with database.session() as session:
        assert session.exec(select(KeyRotation)).all() == []
        decisions = session.exec(select(PrivateEndpointConnection.status)).all()
        assert set(decisions) == {"pending"}
        assert session.exec(select(MarketplaceOperation)).all() == []


def test_unpaired_surrogate_escapes_are_refused_in_fields_and_kept_escaped_in_raw_payloads(
    control_plane: ControlPlane, emulators: Emulators, database: Database
) -> None:
    """JSON may escape half a UTF-16 pair, which no database text column can hold: never a 500."""
    base = control_plane.base_url
    owned = contoso_cluster(database, request_message="plain")
    customer = bearer(emulators.control_plane_token(roles=["Customer.Admin"], tenant_id=CONTOSO_TENANT_ID))
    webhook_token = bearer(emulators.webhook_token())
    json_content = {"Content-Type": "application/json"}
    refused = [
        (
            f"/api/clusters/{owned.cluster_id}/key-rotations",
            customer,
            b'{"reason": "before\\ud800after"}',
            "body.reason",
        ),
        (
            "/marketplace/webhook",
            webhook_token,
            json.dumps(webhook_body()).replace('"standard"', '"\\udc00"'),
            "planId",
        ),
    ]
    for path, headers, content, field in refused:
        response = httpx.post(base + path, content=content, headers={**headers, **json_content}, timeout=15)
        assert response.status_code == 422, (path, response.text[:300])
        assert [problem["field"] for problem in response.json()["error"]["details"]["problems"]] == [field]
    # A field the webhook schema does not know is kept in the stored raw payload (JSON stores it escaped).
    body = {**webhook_body(), "note": "LONE"}
    stored = httpx.post(
        f"{base}/marketplace/webhook",
        content=json.dumps(body).replace('"LONE"', '"\\ud83d"'),
        headers={**webhook_token, **json_content},
        timeout=15,
    )
    assert stored.status_code == 200, stored.text[:300]
    with database.session() as session:
        assert session.exec(select(KeyRotation)).all() == []
        event = session.exec(select(InboundEvent).where(InboundEvent.natural_id == body["id"])).one()
    assert event.payload["note"] == "\ud83d"  # the lone half itself, as the sender escaped it
