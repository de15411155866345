"""The data the portal tests look at, made the way production makes it: Marketplace purchases confirmed on
the landing page (a plain HTTP browser with cookies), clusters provisioned by the controller through ARM."""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass
from functools import partial

import httpx
from sqlmodel import select

from core.clusters.models import Cluster
from core.db import Database
from core.subscriptions.models import MarketplaceSubscription
from tests.browser.conftest import EmulatorControl
from tests.support.waiting import wait_for as wait_until


@dataclass(frozen=True)
class Purchase:
    """A confirmed purchase: the Marketplace subscription id and the cluster it asked for."""

    subscription_id: str
    cluster_id: str
    azure_subscription_id: str


# The browser story waits on whole provisioning runs: a longer default than the integration tests'.
wait_for = partial(wait_until, timeout_seconds=60)


def _field(name: str, page: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match is not None, f"field {name} not found on the landing page"
    return html.unescape(match.group(1))


def azure_subscription(
    emulators: EmulatorControl, tenant_key: str, control_plane_app_id: str, quota_limit: int | None = None
) -> str:
    """A fresh Azure subscription of the tenant in the ARM emulator where the control plane may deploy."""
    subscription_id = str(uuid.uuid4())
    emulators.call(
        "arm",
        "POST",
        "/subscriptions",
        json={
            "id": subscription_id,
            "tenant_id": emulators.tenant_id(tenant_key),
            "access": {control_plane_app_id: "Contributor"},
        },
    )
    if quota_limit is not None:
        quota = {"region": "westeurope", "name": "vmssCapacity", "limit": quota_limit}
        emulators.call("arm", "PUT", f"/subscriptions/{subscription_id}/quotas", json=quota)
    return subscription_id


def purchase_through_landing_page(
    emulators: EmulatorControl,
    database: Database,
    *,
    tenant_key: str,
    username: str,
    azure_subscription_id: str,
    quantity: int = 2,
) -> Purchase:
    """Buy in Marketplace, sign in on the landing page as `username`, confirm the deployment choices."""
    bought = emulators.call(
        "marketplace",
        "POST",
        "/purchases",
        json={
            "plan_id": "standard",
            "quantity": quantity,
            # Bought a day ago: the usage tests bill hours before now, and Marketplace refuses usage from before
            # the purchase (Expired).
            "purchased_seconds_ago": 86400,
            "beneficiary": {
                "tenant_id": emulators.tenant_id(tenant_key),
                "email": username,
                "object_id": str(uuid.uuid4()),
            },
        },
    )
    with httpx.Client(verify=emulators.state["ca_bundle"], timeout=20, follow_redirects=True) as buyer:
        page = buyer.get(bought["landing_page_url"])
        if "Sign in to your account" in page.text:
            page = buyer.post(
                str(page.url),
                data={"request_id": _field("request_id", page.text), "username": username, "action": "sign-in"},
            )
        assert page.status_code == 200, page.text
        form = {
            "csrf_token": _field("csrf_token", page.text),
            "token": _field("token", page.text),
            "region": "westeurope",
            "azure_subscription_id": azure_subscription_id,
            "resource_group": f"rg-facade-{tenant_key}",
            "pls_visibility_subscriptions": "*",
            "pls_auto_approval_subscriptions": "",
            "key_vault_sku": "standard",
            "key_type": "RSA",
            "key_size": "2048",
            "rotation_days": "90",
        }
        base = str(page.url).split("/marketplace/")[0]
        confirmed = buyer.post(f"{base}/marketplace/landing", data=form)
        assert confirmed.status_code == 200, confirmed.text
    subscription_id = bought["subscription_id"]
    with database.session() as session:
        cluster = session.exec(select(Cluster).where(Cluster.subscription_id == subscription_id)).one()
        return Purchase(subscription_id, cluster.id, azure_subscription_id)


def cluster_row(database: Database, cluster_id: str) -> Cluster:
    """The cluster as the database holds it now."""
    with database.session() as session:
        cluster = session.get(Cluster, cluster_id)
        assert cluster is not None
        session.expunge(cluster)
        return cluster


def subscription_status(database: Database, subscription_id: str) -> str | None:
    """The Marketplace status the database holds for a subscription."""
    with database.session() as session:
        subscription = session.get(MarketplaceSubscription, subscription_id)
        return subscription.status if subscription is not None else None
