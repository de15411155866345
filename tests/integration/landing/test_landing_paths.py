"""Every way back to the landing page leads somewhere useful: the form while choices are missing, else progress.

Out of order (a reconciliation adopts the purchase before the landing page is opened), repeated (double-click,
back, reload), and fresh tokens from Azure ("Configure account") in each state; odd tokens get a page, never a 500.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlmodel import select

from core.audit.models import AuditEvent
from core.clusters.models import Cluster
from core.db import Database
from core.subscriptions.models import MarketplaceSubscription
from tests.integration.lifecycle.conftest import ControlPlane
from tests.integration.lifecycle.marketplace_driver import Browser, Emulators
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


def _clusters(database: Database, subscription_id: str) -> list[Cluster]:
    with database.session() as session:
        return list(session.exec(select(Cluster).where(Cluster.subscription_id == subscription_id)).all())


def _subscription(database: Database, subscription_id: str) -> MarketplaceSubscription | None:
    with database.session() as session:
        return session.get(MarketplaceSubscription, subscription_id)


def _reconcile(control_plane: ControlPlane, emulators: Emulators) -> dict[str, Any]:
    operator = {"Authorization": f"Bearer {emulators.control_plane_token(roles=['Operator'])}"}
    started = httpx.post(f"{control_plane.base_url}/api/publisher/reconciliations", headers=operator, timeout=15)
    assert started.status_code == 202, started.text
    report_url = f"{control_plane.base_url}/api/publisher/reconciliations/{started.json()['id']}"
    report: dict[str, Any] = wait_for(
        lambda: (body := httpx.get(report_url, headers=operator, timeout=15).json())["status"] != "requested" and body,
        what="the reconciliation report",
    )
    return report


def _fresh_landing_url(emulators: Emulators, subscription_id: str) -> str:
    """What Azure's "Configure account" / "Manage account" button opens: a new token for the same purchase."""
    url: str = emulators.marketplace_control("POST", f"/subscriptions/{subscription_id}/landing-token")[
        "landing_page_url"
    ]
    return url


def test_a_purchase_adopted_by_a_reconciliation_before_the_landing_page_is_completed_by_it(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> None:
    purchase = emulators.purchase(plan_id="standard", quantity=2)
    subscription_id = purchase["subscription_id"]
    assert _reconcile(control_plane, emulators)["status"] == "completed"
    adopted = _subscription(database, subscription_id)
    assert adopted is not None
    assert adopted.status == "PendingFulfillmentStart"
    assert _clusters(database, subscription_id) == []

    # The original link, and a fresh one from "Configure account", both show the deployment form.
    assert 'name="region"' in browser.open_landing(_fresh_landing_url(emulators, subscription_id)).text
    # Its progress page says the customer must act, and does not poll: nothing happens until they do.
    waiting = browser.http.get(f"{control_plane.base_url}/marketplace/subscriptions/{subscription_id}")
    assert "waiting for its deployment choices" in waiting.text
    assert "Configure account" in waiting.text
    assert 'data-done="true"' in waiting.text  # the page's script polls only while data-done is false
    landing = browser.open_landing(purchase["landing_page_url"])
    assert landing.status_code == 200, landing.text[:300]
    assert 'name="region"' in landing.text

    progress = browser.confirm(landing)
    assert progress.status_code == 200, progress.text[:300]
    assert progress.url.path == f"/marketplace/subscriptions/{subscription_id}"
    assert "We are setting up your cluster" in progress.text
    assert 'data-done="false"' in progress.text  # still moving: the page polls
    clusters = _clusters(database, subscription_id)
    assert [(cluster.region, cluster.desired_quantity) for cluster in clusters] == [("westeurope", 2)]
    with database.session() as session:
        confirmed = session.exec(
            select(AuditEvent).where(
                AuditEvent.subject_id == subscription_id, AuditEvent.action == "subscription.purchase_confirmed"
            )
        ).one()
    assert confirmed.details["adopted_before_landing"] is True

    # Now set up: a fresh token leads to the progress page, and nothing new is recorded.
    again = browser.open_landing(_fresh_landing_url(emulators, subscription_id))
    assert (again.status_code, again.url.path) == (200, f"/marketplace/subscriptions/{subscription_id}")
    assert len(_clusters(database, subscription_id)) == 1


def test_a_double_click_records_one_purchase_and_both_clicks_land_on_the_progress_page(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> None:
    purchase = emulators.purchase()
    subscription_id = purchase["subscription_id"]
    landing = browser.open_landing(purchase["landing_page_url"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: browser.confirm(landing), range(4)))

    assert [(answer.status_code, answer.url.path) for answer in answers] == [
        (200, f"/marketplace/subscriptions/{subscription_id}")
    ] * 4, [answer.text[:200] for answer in answers]
    assert len(_clusters(database, subscription_id)) == 1


def test_a_token_whose_plus_signs_arrived_as_spaces_still_opens_the_purchase(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser
) -> None:
    # Marketplace tokens are base64; most contain a "+". Buy until one does (bounded).
    purchase = next(
        (item for item in (emulators.purchase() for _ in range(20)) if "+" in item["token"]),
        None,
    )
    assert purchase is not None, "no token with a + in 20 purchases"
    unencoded = f"{control_plane.base_url}/marketplace/landing?token={purchase['token']}"  # "+" is read as a space

    page = browser.open_landing(unencoded)

    assert page.status_code == 200, page.text[:300]
    assert 'name="region"' in page.text


@pytest.mark.parametrize(
    "token",
    ["é", "%C3%A9", "abc%00def", "a b\u00a0c", "ａｂｃ", "%F0%9F%92%A9", "x" * 9000, "a=b=c", "<script>"],
)
def test_odd_tokens_get_a_page_saying_the_link_is_damaged_never_a_500(
    control_plane: ControlPlane, browser: Browser, token: str
) -> None:
    page = browser.open_landing(f"{control_plane.base_url}/marketplace/landing?token={token}")

    assert 400 <= page.status_code < 500, (page.status_code, page.text[:300])
    assert "<script>" not in page.text.split("<main>")[-1]
