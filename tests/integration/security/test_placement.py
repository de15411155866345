"""Only an admin of the beneficiary's tenant chooses where the beneficiary's cluster goes (issue 16, item 4).

Contoso buys for Fabrikam. Contoso's admin records the purchase on the landing page but cannot choose the
Azure subscription, region or resource group; nothing deploys. The page hands over a link; Fabrikam's admin
opens it signed in to Fabrikam, chooses, and the cluster deploys into Fabrikam's subscription. A Fabrikam
member without the admin role, and anyone of Contoso, are refused on that link.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from core.clusters.models import Cluster
from core.clusters.provisioning_models import ArmDeployment
from core.db import Database
from core.subscriptions.models import MarketplaceSubscription
from harness.marketplace_demo import CONTOSO_ADMIN, CustomerBrowser, deployment_choices
from tests.integration.lifecycle.conftest import ControlPlane
from tests.integration.lifecycle.marketplace_driver import FABRIKAM_ADMIN, Browser, Emulators
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(150)]

FABRIKAM_MEMBER = "dana.user@fabrikam.onmicrosoft.com"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PLACEMENT_LINK = re.compile(r'id="placement-link" href="([^"]+)"')


def _subscription(database: Database, subscription_id: str) -> MarketplaceSubscription | None:
    with database.session() as session:
        return session.get(MarketplaceSubscription, subscription_id)


def _cluster(database: Database, subscription_id: str) -> Cluster | None:
    with database.session() as session:
        return session.exec(select(Cluster).where(Cluster.subscription_id == subscription_id)).first()


def test_purchaser_of_another_tenant_records_and_the_beneficiarys_admin_places(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> None:
    fabrikam_tenant_id = emulators.entra["tenants"]["fabrikam"]["id"]
    purchase = emulators.purchase_for_another_tenant(fabrikam_tenant_id, FABRIKAM_ADMIN)
    subscription_id = purchase["subscription_id"]
    fabrikam_choices = deployment_choices(emulators.suite.state(), fabrikam_tenant_id)

    # The purchaser (Contoso's admin) sees no deployment choices, only the hand-over.
    landing = browser.open_landing(purchase["landing_page_url"], username=CONTOSO_ADMIN)
    assert landing.status_code == 200, landing.text[:500]
    assert 'id="handoff-note"' in landing.text
    assert 'name="region"' not in landing.text
    # Forcing the choices into the form is refused, and nothing is recorded.
    forced = browser.confirm(landing, fabrikam_choices)
    assert forced.status_code == 403, forced.text[:500]
    assert _subscription(database, subscription_id) is None

    csrf = CSRF.search(landing.text)
    assert csrf is not None
    token = re.search(r'name="token" value="([^"]+)"', landing.text)
    assert token is not None
    base = control_plane.base_url
    handoff = browser.http.post(
        f"{base}/marketplace/landing", data={"csrf_token": csrf.group(1), "token": token.group(1)}
    )
    assert handoff.status_code == 200, handoff.text[:500]
    link = PLACEMENT_LINK.search(handoff.text)
    assert link is not None, handoff.text[:800]
    recorded = _subscription(database, subscription_id)
    assert recorded is not None
    assert recorded.placement_pending
    assert recorded.beneficiary_tenant_id == fabrikam_tenant_id
    assert _cluster(database, subscription_id) is None  # nothing deploys yet
    assert emulators.marketplace_subscription(subscription_id)["saasSubscriptionStatus"] == "PendingFulfillmentStart"

    # Opening the purchase link again shows the purchaser the same hand-over.
    reopened = browser.http.get(purchase["landing_page_url"])
    assert reopened.status_code == 200
    assert link.group(1) in reopened.text
    # The purchaser cannot place through the link either: for Contoso the subscription does not exist.
    as_purchaser = browser.http.get(link.group(1))
    assert as_purchaser.status_code == 404, as_purchaser.text[:300]

    # Fabrikam's admin opens the link, signs in to Fabrikam, and gets the form.
    frank = CustomerBrowser(emulators.ca_bundle)
    try:
        form = frank.open_landing(link.group(1), username=FABRIKAM_ADMIN)
        assert form.status_code == 200, form.text[:500]
        assert form.url.path == f"/marketplace/subscriptions/{subscription_id}/placement"
        assert 'name="region"' in form.text
        frank_csrf = CSRF.search(form.text)
        assert frank_csrf is not None

        # A Fabrikam member without the admin role may not choose.
        dana = CustomerBrowser(emulators.ca_bundle)
        try:
            refused = dana.open_landing(link.group(1), username=FABRIKAM_MEMBER)
            assert refused.status_code == 403, refused.text[:300]
        finally:
            dana.close()

        # What Fabrikam's admin does in Azure before placing: let our app manage their subscription.
        arm_control = emulators.suite.state()["arm"]["control_url"]
        access_url = (
            f"{arm_control}/subscriptions/{fabrikam_choices['azure_subscription_id']}"
            f"/access/{emulators.entra['control_plane_app_id']}"
        )
        emulators.http.put(access_url, json={"role": "Contributor"}).raise_for_status()
        placed = frank.http.post(
            f"{base}/marketplace/subscriptions/{subscription_id}/placement",
            data={"csrf_token": frank_csrf.group(1), **fabrikam_choices},
        )
        assert placed.status_code == 200, placed.text[:500]
        assert placed.url.path == f"/marketplace/subscriptions/{subscription_id}"
    finally:
        frank.close()

    placed_subscription = _subscription(database, subscription_id)
    assert placed_subscription is not None
    assert not placed_subscription.placement_pending
    cluster = _cluster(database, subscription_id)
    assert cluster is not None
    assert cluster.azure_subscription_id == fabrikam_choices["azure_subscription_id"]
    assert cluster.region == fabrikam_choices["region"]

    def deployment_started() -> bool:
        with database.session() as session:
            return session.exec(select(ArmDeployment).where(ArmDeployment.cluster_id == cluster.id)).first() is not None

    try:
        wait_for(deployment_started, what="the cluster's first ARM deployment", timeout_seconds=60)
    finally:
        emulators.http.delete(access_url)

    # Placed once: the link now leads to the progress page.
    again = browser.http.get(link.group(1), follow_redirects=False)
    assert again.status_code in (303, 404)


def test_a_reader_of_the_beneficiary_cannot_place_through_the_landing_page(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> None:
    purchase = emulators.purchase(plan_id="standard", quantity=1)
    page = browser.open_landing(purchase["landing_page_url"], username="rita.reader@contoso.onmicrosoft.com")
    assert page.status_code == 403, page.text[:300]
    assert "Customer.Admin" in page.text
    assert 'name="region"' not in page.text
    assert _subscription(database, purchase["subscription_id"]) is None
