"""Where a cluster may go, decided at confirmation through the running API and the ARM emulator.

A purchase deploys into a resource group of its own: a group that holds another cluster (even one waiting out
its retention), a customer's resources, or no ownership tag for this very cluster is refused with the reason,
and so are a region the subscription does not list, a name ARM would refuse and a subscription our consent does
not cover. A refusal records nothing and creates nothing in Azure.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlmodel import select

from core.azure.arm import ArmClient, ArmClientFactory
from core.clusters.models import Cluster
from core.clusters.ownership import OWNERSHIP_TAG
from core.clusters.service import cluster_name_for
from core.db import Database
from core.subscriptions.models import MarketplaceSubscription
from tests.integration.lifecycle.conftest import ActiveSubscription, ControlPlane
from tests.integration.lifecycle.marketplace_driver import CONTOSO_TENANT_ID, Browser, Emulators, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


@pytest.fixture
def customer_arm(control_plane: ControlPlane, emulators: Emulators) -> ArmClient:
    """ARM in Contoso's subscription, for what the customer does there by hand."""
    subscription_id = emulators.deployment_choices()["azure_subscription_id"]
    return ArmClientFactory(control_plane.settings).for_subscription(CONTOSO_TENANT_ID, subscription_id)


def _recorded(database: Database, subscription_id: str) -> bool:
    with database.session() as session:
        return session.get(MarketplaceSubscription, subscription_id) is not None


def _confirm(browser: Browser, emulators: Emulators, **choices: str) -> tuple[dict[str, Any], Any]:
    purchase = emulators.purchase()
    landing = browser.open_landing(purchase["landing_page_url"])
    assert landing.status_code == 200, landing.text[:300]
    return purchase, browser.confirm(landing, {**emulators.deployment_choices(), **choices})


def test_a_new_purchase_into_the_group_of_a_cluster_waiting_out_retention_is_refused(
    control_plane: ControlPlane,
    emulators: Emulators,
    browser: Browser,
    database: Database,
    active_subscription: ActiveSubscription,
    customer_arm: ArmClient,
) -> None:
    # The scenario: the old subscription is unsubscribed and its cluster kept for the retention period.
    emulators.customer_action(active_subscription.subscription_id, "unsubscribe")

    def retained() -> Cluster | None:
        with database.session() as session:
            cluster = session.get(Cluster, active_subscription.cluster_id)
            return cluster if cluster is not None and cluster.desired_deleted else None

    old = wait_for(retained, what="the unsubscribe to reach the cluster")
    purchase, refused = _confirm(browser, emulators, resource_group=old.resource_group)

    assert refused.status_code == 409
    assert f"Resource group &#39;{old.resource_group}&#39;" in refused.text
    assert "already holds another VAST cluster" in refused.text
    assert 'name="region"' in refused.text  # the form again, to choose another group
    assert not _recorded(database, purchase["subscription_id"])
    with database.session() as session:
        holders = session.exec(select(Cluster).where(Cluster.resource_group == old.resource_group)).all()
    assert [cluster.id for cluster in holders] == [active_subscription.cluster_id]


def test_a_pre_existing_group_holding_a_customer_resource_is_refused(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database, customer_arm: ArmClient
) -> None:
    group = f"rg-customer-{uuid.uuid4().hex[:8]}"
    assert customer_arm.create_resource_group(group, "westeurope", {"team": "data"})
    foreign = (
        f"/subscriptions/{customer_arm.subscription_id}/resourceGroups/{group}/providers/"
        "Microsoft.Storage/storageAccounts/customerdata"
    )
    emulators.http.put(
        f"{emulators.suite.state()['arm']['control_url']}/resources", json={"id": foreign}
    ).raise_for_status()

    purchase, refused = _confirm(browser, emulators, resource_group=group)
    assert refused.status_code == 409
    assert "already exists and it holds 1 resource(s)" in refused.text
    assert not _recorded(database, purchase["subscription_id"])
    facts = customer_arm.get_resource_group(group)
    assert facts is not None
    assert facts.tags == {"team": "data"}  # untouched
    assert [item.lower() for item in customer_arm.list_group_resource_ids(group)] == [foreign.lower()]


def test_an_existing_group_is_accepted_only_empty_and_tagged_for_this_very_cluster(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database, customer_arm: ArmClient
) -> None:
    untagged = f"rg-empty-{uuid.uuid4().hex[:8]}"
    assert customer_arm.create_resource_group(untagged, "westeurope", {})
    purchase, refused = _confirm(browser, emulators, resource_group=untagged)
    assert refused.status_code == 409
    assert "it was not created for this purchase" in refused.text
    assert not _recorded(database, purchase["subscription_id"])

    purchase = emulators.purchase()
    prepared = f"rg-prepared-{uuid.uuid4().hex[:8]}"
    tags = {OWNERSHIP_TAG: cluster_name_for(purchase["subscription_id"])}
    assert customer_arm.create_resource_group(prepared, "westeurope", tags)
    landing = browser.open_landing(purchase["landing_page_url"])
    accepted = browser.confirm(landing, {**emulators.deployment_choices(), "resource_group": prepared})
    assert accepted.status_code == 200, accepted.text[:500]
    assert _recorded(database, purchase["subscription_id"])


@pytest.mark.parametrize(
    ("choices", "status", "message"),
    [
        ({"region": "mars"}, 422, "Region &#39;mars&#39; is not available in subscription"),
        ({"resource_group": "ends-with-a-period."}, 422, "resource group"),
        ({"resource_group": "has spaces"}, 422, "resource group"),
        ({"resource_group": "x" * 91}, 422, "resource group"),
    ],
)
def test_an_unknown_region_or_an_invalid_group_name_is_refused_before_any_deployment(
    control_plane: ControlPlane,
    emulators: Emulators,
    browser: Browser,
    database: Database,
    customer_arm: ArmClient,
    choices: dict[str, str],
    status: int,
    message: str,
) -> None:
    group = choices.get("resource_group") or f"rg-region-{uuid.uuid4().hex[:8]}"
    purchase, refused = _confirm(browser, emulators, **{"resource_group": group, **choices})
    assert refused.status_code == status
    assert message in refused.text
    assert not _recorded(database, purchase["subscription_id"])
    if len(group) <= 90 and " " not in group and not group.endswith("."):
        assert customer_arm.get_resource_group(group) is None


def test_a_subscription_our_consent_does_not_cover_is_refused(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> None:
    state = emulators.suite.state()
    covered = emulators.deployment_choices()["azure_subscription_id"]
    other = next(item["id"] for item in state["arm"]["subscriptions"] if item["id"] != covered)
    purchase, refused = _confirm(browser, emulators, azure_subscription_id=other)
    assert refused.status_code == 422
    assert other in refused.text
    assert not _recorded(database, purchase["subscription_id"])


def test_arm_not_answering_at_confirmation_records_nothing_and_the_link_works_later(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> None:
    faults = f"{emulators.suite.state()['arm']['control_url']}/faults"
    # Only the placement check lists locations: the running worker's ARM calls are not hit.
    rule = {"kind": "status", "status": 503, "method": "GET", "path_pattern": "/locations$", "count": 20}
    emulators.http.post(faults, json=rule).raise_for_status()
    try:
        purchase = emulators.purchase()
        landing = browser.open_landing(purchase["landing_page_url"])
        unavailable = browser.confirm(landing)
    finally:
        emulators.http.delete(faults).raise_for_status()
    assert unavailable.status_code == 503
    assert "Azure is not answering" in unavailable.text
    assert unavailable.headers["Retry-After"]
    assert not _recorded(database, purchase["subscription_id"])

    again = browser.confirm(browser.open_landing(purchase["landing_page_url"]))
    assert again.status_code == 200, again.text[:500]
    assert _recorded(database, purchase["subscription_id"])


def test_the_json_placement_check_answers_as_the_confirmation_would_and_records_nothing(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database, customer_arm: ArmClient
) -> None:
    purchase = emulators.purchase()
    token = parse_qs(urlparse(purchase["landing_page_url"]).query)["token"][0]
    url = f"{control_plane.base_url}/marketplace/landing/placement"
    choices = emulators.deployment_choices()
    body = {"token": token, "region": "westeurope", "azure_subscription_id": choices["azure_subscription_id"]}

    assert httpx.post(url, json=body, timeout=10).status_code == 401  # no signed-in session
    assert browser.open_landing(purchase["landing_page_url"]).status_code == 200

    fine = browser.http.post(url, json=body)
    assert fine.status_code == 200, fine.text
    cluster_name = cluster_name_for(purchase["subscription_id"])
    assert fine.json() == {
        "azure_subscription_id": choices["azure_subscription_id"],
        "region": "westeurope",
        "resource_group": f"rg-{cluster_name}",
        "cluster_name": cluster_name,
    }

    mars = browser.http.post(url, json={**body, "region": "mars"})
    assert (mars.status_code, mars.json()["error"]["code"]) == (422, "PlacementRefused")
    bad_name = browser.http.post(url, json={**body, "resource_group": "trailing."})
    assert (bad_name.status_code, bad_name.json()["error"]["code"]) == (422, "ValidationFailed")

    taken = f"rg-taken-{uuid.uuid4().hex[:8]}"
    assert customer_arm.create_resource_group(taken, "westeurope", {OWNERSHIP_TAG: "vast-othercluster"})
    refused = browser.http.post(url, json={**body, "resource_group": taken})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "ResourceGroupNotOwned")
    assert "belongs to another VAST cluster" in refused.json()["error"]["message"]
    assert not _recorded(database, purchase["subscription_id"])
