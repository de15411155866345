"""Reconciliation repairs drift from lost webhooks; the publisher API is for operators only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from core.clusters.models import Cluster
from core.db import Database
from core.subscriptions.models import MarketplaceOperation, MarketplaceSubscription
from tests.integration.lifecycle.conftest import ActiveSubscription, ControlPlane
from tests.integration.lifecycle.marketplace_driver import CONTOSO_TENANT_ID, Emulators
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.usefixtures("marketplace_mode"), pytest.mark.broker, pytest.mark.timeout(90)]


def _api(control_plane: ControlPlane, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{control_plane.base_url}{path}", headers=headers, timeout=15, **kwargs)


def test_forced_reconciliation_follows_marketplace_and_adopts_lost_operations(
    control_plane: ControlPlane, emulators: Emulators, database: Database, active_subscription: ActiveSubscription
) -> None:
    subscription_id = active_subscription.subscription_id
    emulators.set_webhook(None)  # the webhooks of these two changes never reach us
    try:
        lost_change = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 5})
        lost_suspend = emulators.customer_action(subscription_id, "suspend")
        emulators.wait_until_not_delivered({lost_change["id"], lost_suspend["id"]})
    finally:
        emulators.set_webhook(f"{control_plane.base_url}/marketplace/webhook")
    with database.session() as session:
        ours = session.get(MarketplaceSubscription, subscription_id)
        assert ours is not None
        assert ours.status == "Subscribed"  # drift: Marketplace says Suspended

    operator = emulators.control_plane_token(roles=["Operator"])
    started = _api(control_plane, "POST", "/api/publisher/reconciliations", operator)
    assert started.status_code == 202, started.text
    report_id = started.json()["id"]
    report = wait_for(
        lambda: (
            (body := _api(control_plane, "GET", f"/api/publisher/reconciliations/{report_id}", operator).json())[
                "status"
            ]
            != "requested"
            and body
        ),
        what="the reconciliation report",
    )
    assert report["status"] == "completed", report
    changes = {
        (change.get("subscription_id") or change.get("operation_id"), change["change"]) for change in report["changes"]
    }
    assert (subscription_id, "status_followed") in changes
    assert (lost_change["id"], "operation_adopted") in changes

    with database.session() as session:
        ours = session.get(MarketplaceSubscription, subscription_id)
        cluster = session.get(Cluster, active_subscription.cluster_id)
        assert ours is not None
        assert cluster is not None
        assert ours.status == "Suspended"
        assert cluster.desired_suspended is True
    adopted = wait_for(
        lambda: (row := _operation(database, lost_change["id"])) is not None and row.state != "received" and row,
        what="the adopted operation to be processed",
    )
    assert adopted.action == "ChangeQuantity"
    assert adopted.quantity == 5


def _operation(database: Database, operation_id: str) -> MarketplaceOperation | None:
    with database.session() as session:
        return session.get(MarketplaceOperation, operation_id)


def test_publisher_api_is_operator_only_and_shows_subscriptions_with_their_trail(
    control_plane: ControlPlane, emulators: Emulators, database: Database, active_subscription: ActiveSubscription
) -> None:
    subscription_id = active_subscription.subscription_id
    operator = emulators.control_plane_token(roles=["Operator"])
    customer = emulators.control_plane_token(roles=["Customer.Admin"], tenant_id=CONTOSO_TENANT_ID)
    operator_elsewhere = emulators.control_plane_token(roles=["Operator"], tenant_id=CONTOSO_TENANT_ID)

    assert _api(control_plane, "GET", "/api/publisher/subscriptions", None).status_code == 401
    assert _api(control_plane, "GET", "/api/publisher/subscriptions", customer).status_code == 403
    assert _api(control_plane, "GET", "/api/publisher/subscriptions", operator_elsewhere).status_code == 403
    assert _api(control_plane, "POST", "/api/publisher/reconciliations", customer).status_code == 403

    listed = _api(control_plane, "GET", "/api/publisher/subscriptions?status=Subscribed&plan_id=standard", operator)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [subscription_id]
    by_tenant = _api(
        control_plane, "GET", f"/api/publisher/subscriptions?tenant_id={CONTOSO_TENANT_ID}&limit=1", operator
    )
    assert by_tenant.json()["total"] == 1
    assert _api(control_plane, "GET", "/api/publisher/subscriptions?status=Suspended", operator).json()["items"] == []
    assert _api(control_plane, "GET", "/api/publisher/subscriptions?status=Bogus", operator).status_code == 422
    assert _api(control_plane, "GET", "/api/publisher/subscriptions?limit=0", operator).status_code == 422

    detail = _api(control_plane, "GET", f"/api/publisher/subscriptions/{subscription_id}", operator)
    assert detail.status_code == 200
    actions = [event["action"] for event in detail.json()["audit_trail"]]
    assert "subscription.purchase_confirmed" in actions
    assert "subscription.activated" in actions
    assert detail.json()["cluster"]["id"] == active_subscription.cluster_id
    assert _api(control_plane, "GET", "/api/publisher/subscriptions/nope", operator).status_code == 404
    assert _api(control_plane, "POST", "/api/publisher/operations/nope/retry", operator).status_code == 404

    openapi = httpx.get(f"{control_plane.base_url}/openapi.json", timeout=10).json()
    retry = openapi["paths"]["/api/publisher/operations/{operation_id}/retry"]["post"]
    assert {"202", "401", "403", "404", "409"} <= set(retry["responses"])
