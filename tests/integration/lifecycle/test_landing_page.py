"""Purchase -> landing page (Entra sign-in) -> confirmation -> recorded -> activated, through real HTTP."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from core.audit.models import AuditEvent
from core.catalog.models import Offer
from core.clusters.models import Cluster
from core.db import Database
from core.outbox.service import enqueue
from core.subscriptions.models import MarketplaceSubscription
from core.task_payloads import ClusterConverged, ConvergenceOutcome
from harness.marketplace_demo import DEFAULT_CHOICES
from tests.integration.lifecycle.conftest import ControlPlane
from tests.integration.lifecycle.marketplace_driver import (
    FABRIKAM_ADMIN,
    Browser,
    Emulators,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]


def _subscription(database: Database, subscription_id: str) -> MarketplaceSubscription | None:
    with database.session() as session:
        return session.get(MarketplaceSubscription, subscription_id)


def _cluster(database: Database, subscription_id: str) -> Cluster | None:
    with database.session() as session:
        return session.exec(select(Cluster).where(Cluster.subscription_id == subscription_id)).first()


def _subscription_count(database: Database) -> int:
    with database.session() as session:
        return len(session.exec(select(MarketplaceSubscription)).all())


def test_purchase_is_recorded_with_the_desired_spec_and_activated_when_the_cluster_is_ready(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> None:
    purchase = emulators.purchase(plan_id="standard", quantity=2)
    subscription_id = purchase["subscription_id"]

    landing = browser.open_landing(purchase["landing_page_url"])
    assert landing.status_code == 200, landing.text
    assert "Alice Admin" in landing.text  # the signed-in customer
    assert "VAST Blob API Façade" in landing.text
    assert "Standard" in landing.text
    # The purchase as bought: the plan's display name, the size of 2 units of 3 nodes, and the term.
    assert '<dd id="quantity">2 units: 6 nodes, 50 TiB usable</dd>' in landing.text
    assert re.search(r'<dd id="term">Monthly, \d{1,2} \w+ \d{4} to \d{1,2} \w+ \d{4}</dd>', landing.text), landing.text
    cookie = next(cookie for cookie in browser.http.cookies.jar if cookie.name == "cp_session")
    assert cookie.has_nonstandard_attr("HttpOnly")

    progress = browser.confirm(landing)
    assert progress.status_code == 200, progress.text
    assert progress.url.path == f"/marketplace/subscriptions/{subscription_id}"
    # Human step names, never audit codes.
    assert "Cluster requested" in progress.text
    assert "cluster.requested" not in progress.text
    assert "We are setting up your cluster" in progress.text

    subscription = _subscription(database, subscription_id)
    assert subscription is not None
    assert subscription.status == "PendingFulfillmentStart"
    assert (subscription.plan_id, subscription.quantity) == ("standard", 2)
    cluster = _cluster(database, subscription_id)
    assert cluster is not None
    # No group named: the cluster gets one of its own, named from the cluster.
    assert (cluster.region, cluster.resource_group, cluster.desired_quantity) == ("westeurope", f"rg-{cluster.name}", 2)
    assert cluster.pls_visibility_subscriptions == ["*"]
    assert cluster.key_policy == {
        "key_vault_sku": "premium",
        "key_type": "RSA-HSM",
        "key_size": 4096,
        "rotation_days": 30,
    }
    # when_ready: nothing is activated before the cluster converges.
    assert emulators.marketplace_subscription(subscription_id)["saasSubscriptionStatus"] == "PendingFulfillmentStart"

    with database.session() as session:
        enqueue(
            session,
            ClusterConverged(
                cluster_id=cluster.id, generation=cluster.desired_generation, outcome=ConvergenceOutcome.CONVERGED
            ),
        )
    wait_for(
        lambda: emulators.marketplace_subscription(subscription_id)["saasSubscriptionStatus"] == "Subscribed",
        what="activation in Marketplace",
    )
    wait_for(
        lambda: (row := _subscription(database, subscription_id)) is not None and row.status == "Subscribed",
        what="our subscription to follow",
    )
    json_progress = browser.http.get(f"{control_plane.base_url}/marketplace/subscriptions/{subscription_id}/progress")
    assert json_progress.status_code == 200
    actions = [event["action"] for event in json_progress.json()["events"]]
    assert "subscription.activated" in actions
    assert json_progress.json()["subscription_status"] == "Subscribed"

    # A return through "Manage account" (a fresh token) shows the subscription, records nothing new.
    again = emulators.marketplace_control("POST", f"/subscriptions/{subscription_id}/landing-token")
    returning = browser.open_landing(again["landing_page_url"])
    assert returning.status_code == 200
    assert returning.url.path == f"/marketplace/subscriptions/{subscription_id}"
    assert _subscription_count(database) == 1


def test_immediate_activation_mode_activates_on_confirmation(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> None:
    with database.session() as session:
        offer = session.get(Offer, "vast-blob-facade")
        assert offer is not None
        offer.activation = "immediately"
        session.add(offer)
    try:
        purchase = emulators.purchase(plan_id="performance", quantity=1)
        progress = browser.confirm(browser.open_landing(purchase["landing_page_url"]))
        assert progress.status_code == 200, progress.text

        def activations() -> list[AuditEvent]:
            with database.session() as session:
                return list(
                    session.exec(
                        select(AuditEvent).where(
                            AuditEvent.action == "subscription.activated",
                            AuditEvent.subject_id == purchase["subscription_id"],
                        )
                    ).all()
                )

        # Our side commits after Marketplace has answered, so wait on our record, not on Marketplace's status.
        wait_for(lambda: bool(activations()), what="immediate activation")
        status = emulators.marketplace_subscription(purchase["subscription_id"])["saasSubscriptionStatus"]
        assert status == "Subscribed"
        # Activated by the confirmation's own task, not by a convergence (none was reported for it).
        assert len(activations()) == 1
    finally:
        with database.session() as session:
            offer = session.get(Offer, "vast-blob-facade")
            assert offer is not None
            offer.activation = "when_ready"
            session.add(offer)


def test_forged_and_expired_tokens_get_an_error_page_and_a_reused_one_the_progress_page(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> None:
    forged = browser.open_landing(f"{control_plane.base_url}/marketplace/landing?token=Zm9yZ2VkLXRva2VuLXZhbHVl")
    assert forged.status_code == 400
    assert "invalid or has expired" in forged.text

    purchase = emulators.purchase()
    progress_path = f"/marketplace/subscriptions/{purchase['subscription_id']}"
    landing = browser.open_landing(purchase["landing_page_url"])
    assert browser.confirm(landing).status_code == 200
    # The same form again (double-click, back and submit) and the same link again (reload): the progress page.
    reused = browser.confirm(landing)
    assert (reused.status_code, reused.url.path) == (200, progress_path), reused.text[:300]
    reloaded = browser.open_landing(purchase["landing_page_url"])
    assert (reloaded.status_code, reloaded.url.path) == (200, progress_path)
    assert "already used" not in reused.text + reloaded.text

    stale = emulators.purchase()
    emulators.marketplace_control("POST", "/clock/advance", json={"seconds": 25 * 3600})
    try:
        expired = browser.open_landing(stale["landing_page_url"])
    finally:
        emulators.marketplace_control("PUT", "/clock", json={"offset_seconds": 0})
    assert expired.status_code == 400
    assert "expired" in expired.text
    assert _subscription(database, stale["subscription_id"]) is None
    assert _subscription_count(database) == 1


def test_marketplace_outage_while_resolving_asks_to_come_back_and_the_link_still_works(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> None:
    purchase = emulators.purchase()
    outage = emulators.add_marketplace_fault(
        {"kind": "status", "method": "POST", "path_pattern": r"/api/saas/subscriptions/resolve", "status": 500}
    )
    try:
        page = browser.open_landing(purchase["landing_page_url"])
        attempts = next(rule["hits"] for rule in emulators.marketplace_faults() if rule["id"] == outage["id"])
    finally:
        emulators.clear_marketplace_faults()
    assert page.status_code == 503, page.text[:300]
    assert page.headers["Retry-After"] == "120"
    assert "Marketplace is not answering right now" in page.text
    assert attempts > 1  # the client retried before giving up
    assert _subscription(database, purchase["subscription_id"]) is None

    # Once Marketplace answers again, the same link opens the form.
    again = browser.open_landing(purchase["landing_page_url"])
    assert again.status_code == 200, again.text[:300]
    assert 'name="region"' in again.text


def test_invalid_choices_are_shown_back_and_another_tenant_is_refused(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> None:
    purchase = emulators.purchase()
    landing = browser.open_landing(purchase["landing_page_url"])
    invalid = browser.confirm(
        landing, {**DEFAULT_CHOICES, "azure_subscription_id": "not-a-guid", "rotation_days": "3", "key_size": "1024"}
    )
    assert invalid.status_code == 422
    # Each refused field says what to enter instead, beside the field, in words (no patterns, no "Value error").
    assert (
        '<p class="field-error" id="azure_subscription_id-error">Choose one of your Azure subscriptions' in invalid.text
    )
    assert '<p class="field-error" id="rotation_days-error">Enter a whole number of days from 7 to 730.' in invalid.text
    assert '<p class="field-error" id="key_size-error">Choose 2048, 3072 or 4096 bits.' in invalid.text
    assert "Value error" not in invalid.text
    assert "pattern" not in invalid.text
    assert 'value="not-a-guid"' in invalid.text  # the form comes back as typed
    assert _subscription(database, purchase["subscription_id"]) is None

    forged_form = browser.http.post(
        f"{control_plane.base_url}/marketplace/landing",
        data={**DEFAULT_CHOICES, "csrf_token": "forged", "token": "irrelevant-token"},
    )
    assert forged_form.status_code == 403
    assert "stale" in forged_form.text

    outsider = Browser(emulators)
    try:
        refused = outsider.open_landing(purchase["landing_page_url"], username=FABRIKAM_ADMIN)
    finally:
        outsider.close()
    assert refused.status_code == 403
    assert "neither the purchaser" in refused.text
    assert _subscription(database, purchase["subscription_id"]) is None
