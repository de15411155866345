"""Pickers on the placement forms (issue 16, item 5): the signed-in admin's subscriptions and their regions.

The admin signs in on the landing page with ARM's delegated scope; the running API redeems their refresh token at
the Entra emulator for an ARM token and lists, at the ARM emulator, their subscriptions that our consent covers
and the chosen one's physical regions. Without that token, or when ARM refuses or is slow, the form falls back to
typing. Whatever is picked is still checked by the server as a typed value is.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from core.db import Database
from core.subscriptions.models import MarketplaceSubscription
from harness.marketplace_demo import CONTOSO_ADMIN, CONTOSO_TENANT_ID, CustomerBrowser
from tests.integration.lifecycle.conftest import ControlPlane
from tests.integration.lifecycle.marketplace_driver import FABRIKAM_ADMIN, Browser, Emulators

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

OPTION = re.compile(r'<option value="([^"]*)"( selected)?>([^<]*)</option>')


@dataclass(frozen=True)
class Subscriptions:
    """ARM subscriptions of the tests: Contoso's default (our app is Contributor) and the ones added here."""

    contoso_default: str
    contoso_analytics: str  # Contoso's, our app is Contributor: offered
    contoso_lab: str  # Contoso's, our app has no role: the admin sees it, we may not deploy there
    fabrikam_production: str  # Fabrikam's, our app is Contributor there: never offered to Contoso


@pytest.fixture(scope="module")
def subscriptions(emulators: Emulators) -> Subscriptions:
    arm_control = emulators.suite.state()["arm"]["control_url"]
    app_id = emulators.entra["control_plane_app_id"]
    fabrikam = emulators.entra["tenants"]["fabrikam"]["id"]

    def add(tenant_id: str, name: str, access: dict[str, str]) -> str:
        body = {"tenant_id": tenant_id, "display_name": name, "access": access}
        response = emulators.http.post(f"{arm_control}/subscriptions", json=body)
        response.raise_for_status()
        return str(response.json()["id"])

    return Subscriptions(
        contoso_default=emulators.deployment_choices()["azure_subscription_id"],
        contoso_analytics=add(CONTOSO_TENANT_ID, "Contoso analytics", {app_id: "Contributor"}),
        contoso_lab=add(CONTOSO_TENANT_ID, "Contoso lab", {}),
        fabrikam_production=add(fabrikam, "Fabrikam production", {app_id: "Contributor"}),
    )


@pytest.fixture
def arm_faults(emulators: Emulators) -> Iterator[str]:
    url = f"{emulators.suite.state()['arm']['control_url']}/faults"
    yield url
    emulators.http.delete(url).raise_for_status()


def _options(page: str, element_id: str) -> list[tuple[str, str, bool]]:
    """(value, label, selected) of the options of a select or datalist; [] when the page has none."""
    block = re.search(rf'<(select|datalist) id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    if block is None:
        return []
    return [
        (html.unescape(value), html.unescape(label), bool(selected))
        for value, selected, label in OPTION.findall(block.group(2))
    ]


def _value(page: str, field: str) -> str:
    found = re.search(rf'<input id="{field}" name="{field}"[^>]* value="([^"]*)"', page)
    assert found is not None, page[:800]
    return html.unescape(found.group(1))


def _recorded(database: Database, subscription_id: str) -> MarketplaceSubscription | None:
    with database.session() as session:
        return session.get(MarketplaceSubscription, subscription_id)


def test_the_landing_page_offers_the_admins_consented_subscriptions_and_their_regions(
    control_plane: ControlPlane,
    emulators: Emulators,
    browser: Browser,
    database: Database,
    subscriptions: Subscriptions,
) -> None:
    purchase = emulators.purchase()
    page = browser.open_landing(purchase["landing_page_url"])
    assert page.status_code == 200, page.text[:500]

    offered = _options(page.text, "subscription")
    # Covered by our consent, sorted by name; the lab (no role for us) and Fabrikam's (another tenant) are not.
    assert [(value, selected) for value, _, selected in offered] == [
        (subscriptions.contoso_analytics, True),
        (subscriptions.contoso_default, False),
    ]
    assert offered[0][1] == f"Contoso analytics ({subscriptions.contoso_analytics})"
    assert [value for value, _, _ in _options(page.text, "subscription-options")] == [
        subscriptions.contoso_analytics,
        subscriptions.contoso_default,
    ]
    assert subscriptions.contoso_lab not in page.text
    assert subscriptions.fabrikam_production not in page.text
    assert 'for="subscription"' in page.text  # the picker is labelled
    regions = {value: label for value, label, _ in _options(page.text, "region-options")}
    assert regions["westeurope"] == "(Europe) West Europe"
    # The form starts at the first consented subscription and the first region ARM lists; typing stays possible.
    assert _value(page.text, "azure_subscription_id") == subscriptions.contoso_analytics
    assert _value(page.text, "region") == next(iter(regions))
    assert 'list="region-options"' in page.text
    assert 'id="picker-note"' not in page.text

    # Choosing the other subscription reloads the form (a GET, no script) with that one picked.
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token is not None
    chosen = browser.http.get(
        f"{control_plane.base_url}/marketplace/landing",
        params={"token": html.unescape(token.group(1)), "subscription": subscriptions.contoso_default},
    )
    assert chosen.status_code == 200, chosen.text[:500]
    assert [value for value, _, selected in _options(chosen.text, "subscription") if selected] == [
        subscriptions.contoso_default
    ]
    assert _value(chosen.text, "azure_subscription_id") == subscriptions.contoso_default

    # What was picked is confirmed like anything typed.
    confirmed = browser.confirm(
        chosen,
        {**emulators.deployment_choices(), "azure_subscription_id": _value(chosen.text, "azure_subscription_id")},
    )
    assert confirmed.status_code == 200, confirmed.text[:500]
    recorded = _recorded(database, purchase["subscription_id"])
    assert recorded is not None


@pytest.mark.parametrize(
    ("field", "tampered", "message"),
    [
        ("azure_subscription_id", "contoso_lab", "Our application has no access to Azure subscription"),
        ("azure_subscription_id", "fabrikam_production", "Our application has no access to Azure subscription"),
        ("region", "global", "Region &#39;global&#39; is not available in subscription"),
    ],
)
def test_a_tampered_pick_is_refused_as_a_typed_value_would_be(
    control_plane: ControlPlane,
    emulators: Emulators,
    browser: Browser,
    database: Database,
    subscriptions: Subscriptions,
    field: str,
    tampered: str,
    message: str,
) -> None:
    purchase = emulators.purchase()
    page = browser.open_landing(purchase["landing_page_url"])
    assert _options(page.text, "subscription"), page.text[:800]
    value = getattr(subscriptions, tampered, tampered)
    picked = {
        **emulators.deployment_choices(),
        "azure_subscription_id": _value(page.text, "azure_subscription_id"),
        "region": _value(page.text, "region"),
    }
    refused = browser.confirm(page, {**picked, field: value})
    assert refused.status_code == 422, refused.text[:500]
    assert message in refused.text
    assert _recorded(database, purchase["subscription_id"]) is None
    # The form again, still with the pickers.
    assert _options(refused.text, "subscription")


def test_without_the_delegated_consent_the_page_falls_back_to_typing(
    control_plane: ControlPlane,
    emulators: Emulators,
    browser: Browser,
    database: Database,
    subscriptions: Subscriptions,
) -> None:
    purchase = emulators.purchase()
    assert _options(browser.open_landing(purchase["landing_page_url"]).text, "subscription")

    # Contoso's administrator removes the app's delegated permission grants: sign-in stands, ARM access is gone.
    app_id = emulators.entra["control_plane_app_id"]
    emulators.http.delete(
        f"{emulators.entra['control_url']}/tenants/{CONTOSO_TENANT_ID}/consents/{app_id}/delegated"
    ).raise_for_status()
    page = browser.http.get(purchase["landing_page_url"])
    assert page.status_code == 200, page.text[:500]
    assert 'id="picker-note"' in page.text
    assert "We could not list your Azure subscriptions" in page.text
    assert _options(page.text, "subscription") == []
    assert 'list="region-options"' not in page.text
    assert _value(page.text, "azure_subscription_id") == ""

    typed = browser.confirm(page, emulators.deployment_choices())
    assert typed.status_code == 200, typed.text[:500]
    assert _recorded(database, purchase["subscription_id"]) is not None

    # Signing in again asks for the scope again, and the pickers are back.
    again = Browser(emulators)
    try:
        assert _options(again.open_landing(emulators.purchase()["landing_page_url"]).text, "subscription")
    finally:
        again.close()


@pytest.mark.parametrize(
    ("rule", "note"),
    [
        (
            {"kind": "status", "status": 429, "retry_after_seconds": 30, "error_code": "SubscriptionRequestsThrottled"},
            "We could not list your Azure subscriptions",
        ),
        ({"kind": "status", "status": 503}, "We could not list your Azure subscriptions"),
    ],
    ids=["throttled", "failing"],
)
def test_when_arm_refuses_the_listing_the_page_falls_back_to_typing(
    control_plane: ControlPlane,
    emulators: Emulators,
    browser: Browser,
    database: Database,
    subscriptions: Subscriptions,
    arm_faults: str,
    rule: dict[str, object],
    note: str,
) -> None:
    purchase = emulators.purchase()
    # Only the listing of subscriptions: no other ARM path ends there.
    emulators.http.post(
        arm_faults, json={**rule, "method": "GET", "path_pattern": "^/subscriptions$"}
    ).raise_for_status()
    page = browser.open_landing(purchase["landing_page_url"])
    assert page.status_code == 200, page.text[:500]
    assert note in page.text
    assert _options(page.text, "subscription") == []
    emulators.http.delete(arm_faults).raise_for_status()

    typed = browser.confirm(page, emulators.deployment_choices())
    assert typed.status_code == 200, typed.text[:500]
    assert _recorded(database, purchase["subscription_id"]) is not None


def test_regions_slower_than_the_request_budget_leave_the_subscriptions_and_a_note(
    control_plane: ControlPlane,
    emulators: Emulators,
    browser: Browser,
    subscriptions: Subscriptions,
    arm_faults: str,
) -> None:
    budget = control_plane.settings.marketplace_request_budget_seconds
    purchase = emulators.purchase()
    browser.open_landing(purchase["landing_page_url"])  # signed in
    slow = {"kind": "latency", "latency_ms": int((budget + 5) * 1000), "method": "GET", "path_pattern": "/locations$"}
    emulators.http.post(arm_faults, json=slow).raise_for_status()
    started = time.monotonic()
    page = browser.http.get(purchase["landing_page_url"])
    elapsed = time.monotonic() - started
    assert page.status_code == 200, page.text[:500]
    assert elapsed < budget + 3  # the page does not wait past its budget for ARM
    assert "We could not list the regions of this subscription" in page.text
    assert _options(page.text, "subscription")
    assert _options(page.text, "region-options") == []


def test_the_placement_page_offers_the_beneficiary_admins_subscriptions_only(
    control_plane: ControlPlane,
    emulators: Emulators,
    browser: Browser,
    database: Database,
    subscriptions: Subscriptions,
) -> None:
    fabrikam = emulators.entra["tenants"]["fabrikam"]["id"]
    purchase = emulators.purchase_for_another_tenant(fabrikam, FABRIKAM_ADMIN)
    landing = browser.open_landing(purchase["landing_page_url"], username=CONTOSO_ADMIN)
    assert 'id="handoff-note"' in landing.text
    assert _options(landing.text, "subscription") == []  # the purchaser places nothing, so is offered nothing
    recorded = CustomerBrowser.confirm(browser, landing, {})  # no deployment choices: the purchaser's part
    assert recorded.status_code == 200, recorded.text[:500]
    placement_path = f"/marketplace/subscriptions/{quote(purchase['subscription_id'], safe='')}/placement"

    frank = CustomerBrowser(emulators.ca_bundle)
    try:
        form = frank.open_landing(f"{control_plane.base_url}{placement_path}", username=FABRIKAM_ADMIN)
        assert form.status_code == 200, form.text[:500]
        assert form.url.path == placement_path
        offered = [value for value, _, _ in _options(form.text, "subscription")]
        assert offered == [subscriptions.fabrikam_production]
        assert _value(form.text, "azure_subscription_id") == subscriptions.fabrikam_production
        assert "westeurope" in {value for value, _, _ in _options(form.text, "region-options")}
        assert 'action="' + placement_path + '"' in form.text
        again = frank.http.get(
            f"{control_plane.base_url}{placement_path}", params={"subscription": subscriptions.contoso_default}
        )
        # Another tenant's subscription asked for by hand is not offered: the first of Fabrikam's is.
        assert [value for value, _, selected in _options(again.text, "subscription") if selected] == [
            subscriptions.fabrikam_production
        ]
        assert subscriptions.contoso_default not in again.text
    finally:
        frank.close()
