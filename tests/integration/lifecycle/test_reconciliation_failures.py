"""A reconciliation that fails, whatever the reason, says so in its report: failed with the error, never "completed"."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlmodel import select

from core.db import Database
from core.subscriptions.models import MarketplaceSubscription
from core.tenants.models import Tenant
from tests.integration.lifecycle.conftest import ControlPlane
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

# (path the answer replaces, the malformed answer, what the report's error names)
MALFORMED_ANSWERS: dict[str, tuple[str, str, str]] = {
    "subscriptions: not JSON": (r"^/api/saas/subscriptions$", "<html>maintenance</html>", "List Subscriptions"),
    "subscriptions: a bare array": (r"^/api/saas/subscriptions$", "[]", "List Subscriptions"),
    "subscriptions: an item missing its plan": (
        r"^/api/saas/subscriptions$",
        '{"subscriptions": [{"id": "x", "offerId": "o", "saasSubscriptionStatus": "Subscribed"}]}',
        "planId",
    ),
    "subscriptions: a next link that loops": (
        r"^/api/saas/subscriptions$",
        '{"subscriptions": [], "@nextLink": "{base}/subscriptions?api-version=2018-08-31&continuationToken=9"}',
        "gave a @nextLink it gave before",
    ),
    "operations: an item missing its fields": (r"/operations$", '{"operations": [{"id": "x"}]}', "List Operations"),
    "operations: not a list": (r"/operations$", '{"operations": 7}', "List Operations"),
}


def _reconcile(control_plane: ControlPlane, token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    started = httpx.post(f"{control_plane.base_url}/api/publisher/reconciliations", headers=headers, timeout=15)
    assert started.status_code == 202, started.text
    url = f"{control_plane.base_url}/api/publisher/reconciliations/{started.json()['id']}"
    report: dict[str, Any] = wait_for(
        lambda: (body := httpx.get(url, headers=headers, timeout=15).json())["status"] != "requested" and body,
        what="the reconciliation report",
    )
    return report


@pytest.mark.parametrize("case", MALFORMED_ANSWERS.values(), ids=MALFORMED_ANSWERS.keys())
def test_each_malformed_marketplace_answer_makes_a_failed_report_naming_the_contract_error(
    control_plane: ControlPlane, emulators: Emulators, case: tuple[str, str, str]
) -> None:
    path_pattern, body, named = case
    emulators.purchase()  # at least one subscription whose operations are listed
    base = emulators.marketplace["fulfillment_base_url"]
    emulators.add_marketplace_fault(
        {"kind": "malformed", "method": "GET", "path_pattern": path_pattern, "body": body.replace("{base}", base)}
    )
    try:
        report = _reconcile(control_plane, emulators.control_plane_token(roles=["Operator"]))
    finally:
        emulators.clear_marketplace_faults()
    assert report["status"] == "failed", report
    assert report["error"].startswith("could not read Marketplace: MarketplaceContractError: "), report["error"]
    assert named in report["error"]
    assert report["changes"] == []

    # Marketplace answering as documented again, the next run completes.
    assert _reconcile(control_plane, emulators.control_plane_token(roles=["Operator"]))["status"] == "completed"


def test_a_subscription_that_cannot_be_repaired_is_rolled_back_named_and_fails_the_report(
    control_plane: ControlPlane, emulators: Emulators, database: Database
) -> None:
    # Well-formed, but for an offer our catalog does not sell: recording it breaks a foreign key.
    foreign = str(uuid.uuid4())
    listed = {
        "subscriptions": [
            {
                "id": foreign,
                "offerId": "an-offer-we-never-sold",
                "planId": "standard",
                "saasSubscriptionStatus": "Subscribed",
                "beneficiary": {"tenantId": str(uuid.uuid4())},
            }
        ]
    }
    emulators.add_marketplace_fault(
        {"kind": "malformed", "method": "GET", "path_pattern": r"^/api/saas/subscriptions$", "body": json.dumps(listed)}
    )
    emulators.add_marketplace_fault(
        {"kind": "malformed", "method": "GET", "path_pattern": rf"/{foreign}/operations$", "body": '{"operations": []}'}
    )
    try:
        report = _reconcile(control_plane, emulators.control_plane_token(roles=["Operator"]))
    finally:
        emulators.clear_marketplace_faults()
    assert report["status"] == "failed", report
    assert report["error"].startswith(f"could not repair 1 subscription(s); first: subscription {foreign}: ")
    assert report["changes"] == [
        {"subscription_id": foreign, "change": "repair_failed", "error": report["changes"][0]["error"]}
    ]
    assert "IntegrityError" in report["changes"][0]["error"]
    with database.session() as session:
        assert session.get(MarketplaceSubscription, foreign) is None
        beneficiary_tenant = listed["subscriptions"][0]["beneficiary"]["tenantId"]
        # The tenant recorded on the way was rolled back with it.
        assert session.exec(select(Tenant).where(Tenant.entra_tenant_id == beneficiary_tenant)).first() is None
