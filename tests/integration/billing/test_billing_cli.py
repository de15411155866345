"""`controlplane billing ...` as the billing team runs it: a real process on the database and emulators under test."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import pytest

from billing.jobs import run_collection
from core.db import Database
from core.settings import Settings
from tests.integration.billing.conftest import add_customer

pytestmark = pytest.mark.timeout(90)


def controlplane(settings: Settings, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **settings.as_environment(), "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "billing", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_close_submit_status_report_and_reconcile_from_the_command_line(
    database: Database, emulator_state: dict[str, Any], billing_settings: Settings, now: datetime
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    run_collection(billing_settings, database, now=now)

    closed = controlplane(billing_settings, "close-hour")
    assert closed.returncode == 0, closed.stderr
    created = json.loads(closed.stdout)["entries_created"]
    assert created > 0

    submitted = controlplane(billing_settings, "submit")
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["entries"]["accepted"] == created

    status = controlplane(billing_settings, "status", "--format", "json")
    assert status.returncode == 0, status.stderr
    assert {row["status"]: row["entries"] for row in json.loads(status.stdout)} == {"accepted": created}

    period = ("--from", (now - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M"), "--to", now.strftime("%Y-%m-%dT%H:%M"))
    report = controlplane(billing_settings, "report", *period, "--format", "csv")
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    assert len(rows) == created
    assert {row["resource_id"] for row in rows} == {customer.subscription_id}
    assert all(row["status"] == "accepted" and row["marketplace_usage_event_id"] for row in rows)

    reconciled = controlplane(billing_settings, "reconcile", *period, "--format", "json")
    assert reconciled.returncode == 0, reconciled.stderr
    assert "difference(s)" in reconciled.stderr
    differences = json.loads(reconciled.stdout)
    # Other tests' customers live in the same emulator; this customer's hours all agree.
    assert [item for item in differences if item["resource_id"] == customer.subscription_id] == []

    backwards = controlplane(billing_settings, "report", "--from", "2026-11-26T05:00", "--to", "2026-11-26T04:00")
    assert backwards.returncode == 2
    assert "--to must be after --from" in backwards.stderr
