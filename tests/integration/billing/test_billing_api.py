"""The operators' billing API on a real API process: ledger status and reconciliation reports as JSON and CSV."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing.jobs import run_close, run_collection, run_reconciliation, run_submission
from core.db import Database
from core.marketplace.metering_client import MeteringClient
from core.settings import Settings
from tests.conftest import start_api
from tests.integration.billing.conftest import add_customer
from tests.support.marketplace_emulator import control_client

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def api_url(tmp_path: Path, billing_settings: Settings) -> Iterator[str]:
    group, base_url = start_api(tmp_path / "logs", billing_settings)
    yield base_url
    group.stop_all()


def user_token(state: dict[str, Any], roles: list[str]) -> str:
    """A control-plane token from the Entra emulator for a user of the publisher tenant."""
    entra = state["entra"]
    app_id = entra["control_plane_app_id"]
    with httpx.Client(verify=state["ca_bundle"], timeout=10.0) as client:
        response = client.post(
            f"{entra['control_url']}/tokens",
            json={
                "tenant_id": entra["publisher_tenant_id"],
                "audience": app_id,
                "client_id": app_id,
                "extra_claims": {
                    "idtyp": "user",
                    "scp": "user_impersonation",
                    "roles": roles,
                    "oid": str(uuid.uuid4()),
                    "name": "Billing test user",
                },
            },
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
    return token


def test_reconciliation_report_as_json_and_csv_for_operators_only(
    api_url: str,
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    metering_client: MeteringClient,
    now: datetime,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    run_collection(billing_settings, database, now=now)
    run_close(billing_settings, database, now=now)
    run_submission(billing_settings, database, now=now, client=metering_client)
    with control_client(emulator_state, "marketplace") as control:
        held = [
            event
            for event in control.get("/state").json()["usage_events"]
            if event["resourceId"] == customer.subscription_id
        ]
        control.post(f"/usage-events/{held[0]['usageEventId']}/drop").raise_for_status()
    report = run_reconciliation(
        billing_settings,
        database,
        start=now - timedelta(days=1),
        end=now + timedelta(hours=1),
        resource_ids={customer.subscription_id},
        requested_by="test",
        client=metering_client,
    )

    operator = {"Authorization": f"Bearer {user_token(emulator_state, ['Operator'])}"}
    with httpx.Client(base_url=api_url, timeout=10.0) as api:
        assert api.get(f"/api/publisher/billing/reconciliation-reports/{report.id}").status_code == 401
        customer_admin = {"Authorization": f"Bearer {user_token(emulator_state, [])}"}
        assert (
            api.get(f"/api/publisher/billing/reconciliation-reports/{report.id}", headers=customer_admin).status_code
            == 403
        )

        body = api.get(f"/api/publisher/billing/reconciliation-reports/{report.id}", headers=operator).json()
        assert body["difference_count"] == 1
        assert [(item["kind"], item["dimension_id"]) for item in body["differences"]] == [
            ("missing_there", held[0]["dimension"])
        ]
        listed = api.get("/api/publisher/billing/reconciliation-reports", headers=operator).json()
        assert report.id in [item["id"] for item in listed]

        exported = api.get(
            f"/api/publisher/billing/reconciliation-reports/{report.id}/differences.csv", headers=operator
        )
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(row["kind"], row["resource_id"]) for row in rows] == [("missing_there", customer.subscription_id)]

        missing = api.get("/api/publisher/billing/reconciliation-reports/999999", headers=operator)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "NotFound"

        ledger = api.get("/api/publisher/billing/ledger", headers=operator).json()
        assert ledger["statuses"]["accepted"]["entries"] >= 1
        bad_range = api.get(
            "/api/publisher/billing/ledger",
            params={"from": "2026-11-26T05:00:00Z", "to": "2026-11-26T04:00:00Z"},
            headers=operator,
        )
        assert bad_range.status_code == 422
