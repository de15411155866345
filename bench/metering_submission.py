"""Benchmark: pending ledger entries submitted to the Marketplace metering emulator, with latency per call.

Starts the emulators in their own process, buys and activates enough subscriptions, writes `--entries`
pending ledger entries (3 dimensions x 22 closed hours inside the 24-hour window per subscription), then times
billing.submission.submit_pending against the emulator with `--latency-ms` added to every batch call.
Afterwards it checks that every entry is accepted exactly once: the ledger, the distinct usage event
ids and Marketplace's own usage retrieval must all count the same. The issue's size is `--entries 100000`.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import col, select

import core.models  # noqa: F401  # registers every table
from billing.jobs import run_submission
from billing.sql_inserts import table_of
from core import migrator
from core.catalog.loader import load_catalog, sync_catalog
from core.db import Database, make_engine
from core.marketplace.fulfillment_client import FulfillmentClient
from core.marketplace.metering_client import MeteringClient
from core.settings import DEFAULT_CATALOG_PATH, Settings
from core.usage.models import LedgerStatus, UsageLedgerEntry
from harness.emulator_environment import settings_for_emulators

DIMENSIONS = ("capacity_tib", "data_transfer_gib", "api_requests_10k")
HOURS = 22


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=5)
    parser.add_argument("--parallel-batches", type=int, default=8)
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as state_dir:
        # The emulators run in their own process, as Marketplace is another service: they do not share this GIL.
        emulators = subprocess.Popen(
            [sys.executable, "-m", "harness", "emulators", "--state-dir", state_dir, "--seed", "7"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        schema = f"bench_metering_{uuid.uuid4().hex[:8]}"
        admin = make_engine(arguments.database)
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{arguments.database}?options=-csearch_path%3D{schema}"
        try:
            state = wait_for_state(Path(state_dir) / "emulators.json", emulators)
            with httpx.Client(verify=state["ca_bundle"], timeout=10) as control:
                control.post(
                    f"{state['marketplace']['control_url']}/faults",
                    json={
                        "kind": "latency",
                        "latency_ms": arguments.latency_ms,
                        "path_pattern": "/api/batchUsageEvent$",
                    },
                ).raise_for_status()
            migrator.upgrade(url)
            settings = settings_for_emulators(
                {name: state[name] for name in ("ca_bundle", "entra", "marketplace")},
                database_url=url,
                data_dir=Path(state_dir),
                metering_parallel_batches=arguments.parallel_batches,
            )
            database = Database(url)
            with database.session() as session:
                sync_catalog(session, load_catalog(DEFAULT_CATALOG_PATH))
            run(arguments, state, settings, database)
            database.dispose()
        finally:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
            emulators.terminate()
            emulators.wait(timeout=30)


def wait_for_state(path: Path, process: subprocess.Popen[bytes], timeout_seconds: float = 60.0) -> dict[str, Any]:
    """The emulators' state document, once the process has written it."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the emulators exited with {process.returncode}")
        if path.exists():
            try:
                state: dict[str, Any] = json.loads(path.read_text())
                return state
            except json.JSONDecodeError:
                pass  # written but not complete yet
        time.sleep(0.1)
    raise RuntimeError("the emulators did not start in time")


def run(arguments: argparse.Namespace, state: dict[str, Any], settings: Settings, database: Database) -> None:
    """Set up subscriptions and entries, submit, and check the accounting."""
    subscriptions = math.ceil(arguments.entries / (len(DIMENSIONS) * HOURS))
    began = time.perf_counter()
    marketplace = state["marketplace"]
    fulfillment = FulfillmentClient.from_settings(settings)
    ids: list[str] = []
    with httpx.Client(base_url=marketplace["control_url"], verify=str(state["ca_bundle"]), timeout=30) as control:
        for _ in range(subscriptions):
            response = control.post(
                "/purchases",
                json={"plan_id": "standard", "quantity": 1, "beneficiary": {"tenant_id": "bench", "email": "b@x.y"}},
            )
            response.raise_for_status()
            subscription_id = response.json()["subscription"]["id"]
            fulfillment.activate(subscription_id, "standard", 1)
            ids.append(subscription_id)
    fulfillment.close()
    now = datetime.now(UTC)
    newest_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    rows = [
        {
            "resource_id": subscription_id,
            "resource_kind": "saas",
            "dimension_id": dimension,
            "plan_id": "standard",
            "hour_start": newest_hour - timedelta(hours=hour),
            "measured_quantity": 10.0 + hour,
            "included_quantity": 5.0,
            "billable_quantity": 5.0 + hour,
            "status": LedgerStatus.PENDING,
            "created_at": now,
        }
        for subscription_id in ids
        for dimension in DIMENSIONS
        for hour in range(HOURS)
    ][: arguments.entries]
    with database.session() as session:
        session.execute(sa.insert(table_of(UsageLedgerEntry)), rows)
    print(
        f"setup: {subscriptions:,} subscriptions, {len(rows):,} pending entries in {time.perf_counter() - began:.1f} s"
    )

    client = MeteringClient.from_settings(settings)
    began = time.perf_counter()
    summary = run_submission(settings, database, now=now, client=client)
    elapsed = time.perf_counter() - began
    with database.session() as session:
        accepted = session.exec(
            select(sa.func.count(), sa.func.count(sa.distinct(col(UsageLedgerEntry.marketplace_usage_event_id)))).where(
                col(UsageLedgerEntry.status) == LedgerStatus.ACCEPTED
            )
        ).one()
    held = client.usage_events(newest_hour - timedelta(days=2), now + timedelta(hours=1))
    client.close()
    print(f"submitted {len(rows):,} entries in {elapsed:.2f} s: {len(rows) / elapsed:,.0f} entries/s")
    print(f"batches: {summary.batches:,} (at most 25 events, {arguments.latency_ms} ms added per call)")
    print(f"outcomes: {summary.counts}")
    print(
        f"accounted: ledger accepted {accepted[0]:,}, distinct event ids {accepted[1]:,}, "
        f"Marketplace holds {sum(row.submitted_count for row in held):,}"
    )


if __name__ == "__main__":
    main()
