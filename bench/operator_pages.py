"""Benchmark: the operator's list pages at scale (10,000 subscriptions, 1M audit events by default).

Seeds a schema of its own on PostgreSQL with COPY (tenants, half of them named; subscriptions with their
clusters, a share failed, stuck or waiting out retention; failed operations; ledger entries of every dimension;
audit events), starts the emulators and one API process on it, signs an operator in through the Entra emulator,
and requests each operator list page (first page, a later page, a search, a sort) `--requests` times over HTTP.
Prints p50/p95/max per page, measured at the client on loopback (so an upper bound of the server's time), with
the load average before and after. The target: every page within 300 ms at p95.

Prints figures; asserts nothing. `python -m bench.operator_pages --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.termination import exit_cleanly_on_sigterm
from core import migrator
from core.catalog.loader import load_catalog, sync_catalog
from core.db import Database, make_engine
from harness import marketplace_demo
from harness.marketplace_demo import CustomerBrowser
from harness.processes import ProcessGroup, free_port, wait_until_listening
from harness.sandbox import sandbox_settings
from harness.scenario.full import EmulatorProcess

OPERATOR = "olivia.operator@vastpublisher.onmicrosoft.com"
OFFER_ID = "vast-blob-facade"
PLANS = ("standard", "performance")
ACTIONS = (
    "cluster.step.started",
    "cluster.step.succeeded",
    "cluster.ready",
    "subscription.activated",
    "subscription.operation.received",
    "private_endpoint.approved",
    "cluster.key.rotated",
)
TENANT_WORDS = ("Contoso", "Fabrikam", "Northwind", "Tailspin", "Woodgrove", "Litware", "Adatum", "Proseware")
DIMENSIONS = ("capacity_tib", "data_transfer_gib", "api_requests_10k")


def _load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _copy(connection: Any, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> int:
    """COPY rows into a table through psycopg; returns how many."""
    count = 0
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def seed(url: str, *, subscriptions: int, audit_events: int, now: datetime) -> dict[str, Any]:
    """Bulk-insert the data set; returns facts the page requests use (a named tenant, an actor, a subject)."""
    rng = random.Random(20261208)
    engine = make_engine(url)
    tenants = [
        (str(uuid.uuid4()), str(uuid.uuid4()), f"{rng.choice(TENANT_WORDS)} {index}" if index % 2 else "")
        for index in range(max(1, subscriptions // 10))
    ]
    subscription_rows = []
    for index in range(subscriptions):
        tenant_row, entra_id, _ = tenants[index % len(tenants)]
        subscription_rows.append(
            (str(uuid.uuid4()), tenant_row, entra_id, f"VAST façade {index}", PLANS[index % 2], 1 + index % 5, index)
        )
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        empty = json.dumps({})
        _copy(
            connection,
            "tenants",
            ("id", "entra_tenant_id", "display_name", "created_at"),
            ((t[0], t[1], t[2], now) for t in tenants),
        )
        _copy(
            connection,
            "marketplace_subscriptions",
            (
                "id",
                "tenant_id",
                "name",
                "offer_id",
                "plan_id",
                "quantity",
                "status",
                "beneficiary_tenant_id",
                "beneficiary_email",
                "is_test",
                "is_free_trial",
                "placement_pending",
                "created_at",
                "updated_at",
                "marketplace_snapshot",
            ),
            (
                (
                    sid,
                    tenant_row,
                    name,
                    OFFER_ID,
                    plan,
                    quantity,
                    "Unsubscribed" if index % 50 == 0 else "Subscribed",
                    entra_id,
                    f"admin{index}@example.com",
                    False,
                    False,
                    False,
                    now - timedelta(minutes=index),
                    now - timedelta(minutes=index),
                    empty,
                )
                for sid, tenant_row, entra_id, name, plan, quantity, index in subscription_rows
            ),
        )

        def cluster_rows() -> Iterator[tuple[Any, ...]]:
            for sid, tenant_row, _, _, plan, quantity, index in subscription_rows:
                if index % 50 == 0:  # unsubscribed: waiting out retention
                    status, retention, error = "deprovisioning", now + timedelta(days=30), None
                elif index % 97 == 0:
                    status, retention, error = "failed", None, "DeploymentFailed"
                elif index % 89 == 0:
                    status, retention, error = "provisioning", None, None
                else:
                    status, retention, error = "ready", None, None
                name = f"facade-{index:06d}"
                yield (
                    str(uuid.uuid4()),
                    tenant_row,
                    sid,
                    name,
                    "westeurope",
                    str(uuid.uuid4()),
                    f"rg-{name}",
                    plan,
                    quantity,
                    False,
                    status == "deprovisioning",
                    "[]",
                    "[]",
                    empty,
                    1,
                    status,
                    1 if status == "ready" else 0,
                    0,
                    error,
                    "quota exceeded" if error else None,
                    "[]",
                    "[]",
                    retention,
                    now - timedelta(hours=2, minutes=index % 60),
                    now - timedelta(days=1),
                )

        _copy(
            connection,
            "clusters",
            (
                "id",
                "tenant_id",
                "subscription_id",
                "name",
                "region",
                "azure_subscription_id",
                "resource_group",
                "desired_plan_id",
                "desired_quantity",
                "desired_suspended",
                "desired_deleted",
                "pls_visibility_subscriptions",
                "pls_auto_approval_subscriptions",
                "key_policy",
                "desired_generation",
                "status",
                "observed_generation",
                "attempts",
                "last_error_code",
                "last_error_message",
                "last_error_details",
                "leftover_resource_ids",
                "retention_until",
                "updated_at",
                "created_at",
            ),
            cluster_rows(),
        )
        _copy(
            connection,
            "marketplace_operations",
            (
                "id",
                "subscription_id",
                "action",
                "marketplace_status",
                "state",
                "failure_reason",
                "attempts",
                "received_at",
                "updated_at",
            ),
            (
                (
                    str(uuid.uuid4()),
                    sid,
                    "ChangeQuantity",
                    "InProgress",
                    "failed",
                    "plan does not allow it",
                    1,
                    now - timedelta(hours=1),
                    now - timedelta(hours=1),
                )
                for sid, _, _, _, _, _, index in subscription_rows
                if index % 83 == 0
            ),
        )
        _copy(
            connection,
            "usage_ledger_entries",
            (
                "resource_id",
                "resource_kind",
                "dimension_id",
                "plan_id",
                "hour_start",
                "measured_quantity",
                "included_quantity",
                "billable_quantity",
                "status",
                "created_at",
            ),
            (
                (
                    sid,
                    "saas",
                    dimension,
                    plan,
                    now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hour),
                    10.0,
                    5.0,
                    5.0,
                    "accepted" if hour else "pending",
                    now,
                )
                for sid, _, _, _, plan, _, index in subscription_rows[:500]
                for dimension in DIMENSIONS
                for hour in range(3)
            ),
        )
        actors = [f"user:{uuid.uuid4()}" for _ in range(200)] + ["system:controller", "marketplace"]
        subjects = [row[0] for row in subscription_rows]
        step = timedelta(days=90) / max(1, audit_events)
        _copy(
            connection,
            "audit_events",
            (
                "occurred_at",
                "tenant_id",
                "actor",
                "action",
                "subject_type",
                "subject_id",
                "outcome",
                "details",
                "occurrences",
            ),
            (
                (
                    now - step * index,
                    tenants[index % len(tenants)][0],
                    actors[index % len(actors)],
                    ACTIONS[index % len(ACTIONS)],
                    "subscription",
                    subjects[index % len(subjects)],
                    "success",
                    empty,
                    1,
                )
                for index in range(audit_events)
            ),
        )
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as connection:
        connection.execute(sa.text("ANALYZE"))
    engine.dispose()
    named = next(t for t in tenants if t[2])
    return {"tenant_name": named[2], "actor": actors[7], "subject": subjects[123]}


def pages(facts: dict[str, Any], subscriptions: int) -> dict[str, str]:
    """Each operator list page as a first page, a later page, a search and a sort."""
    later = max(2, subscriptions // 50 // 2)
    return {
        "baseline: configuration (no query)": "/portal/operator/configuration",
        "subscriptions first": "/portal/operator/subscriptions",
        f"subscriptions page {later}": f"/portal/operator/subscriptions?page={later}",
        "subscriptions search tenant": f"/portal/operator/subscriptions?q={facts['tenant_name']}",
        "subscriptions search id prefix": f"/portal/operator/subscriptions?q={facts['subject'][:8]}",
        "subscriptions sort tenant": "/portal/operator/subscriptions?sort=tenant&dir=asc",
        "subscriptions sort name, page 40": "/portal/operator/subscriptions?sort=name&dir=desc&page=40",
        "subscriptions only failed": "/portal/operator/subscriptions?failed=on",
        "audit first": "/portal/operator/audit",
        "audit page 300": "/portal/operator/audit?page=300",
        "audit search actor": f"/portal/operator/audit?actor={facts['actor']}",
        "audit search action prefix": "/portal/operator/audit?action=cluster.key",
        "audit search subject": f"/portal/operator/audit?subject={facts['subject']}",
        "stuck work": "/portal/operator/operations",
        "metering": "/portal/operator/billing",
        "service levels (every cluster)": "/portal/operator/slo",
    }


def _time(client: httpx.Client, path: str, count: int) -> list[float]:
    client.get(path).raise_for_status()  # warm-up: templates compiled, connections pooled
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--audit-events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    arguments = parser.parse_args()
    exit_cleanly_on_sigterm()

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(arguments.database)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{arguments.database}?options=-csearch_path%3D{schema}"
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as folder:
        data_dir = Path(folder)
        emulators = EmulatorProcess(data_dir / "emulators", 20261208, {})
        group: ProcessGroup | None = None
        try:
            state = emulators.start()
            settings = marketplace_demo.emulator_settings(state, sandbox_settings(data_dir, free_port()))
            # Roles are re-read from Entra at most every 5 minutes (a supported setting; the default 0 re-reads them at
            # every request, a round trip to Entra that is not the page's own time).
            settings = settings.model_copy(update={"database_url": url, "session_role_check_seconds": 300})
            migrator.upgrade(url)
            database = Database(url)
            with database.session() as session:
                sync_catalog(session, load_catalog(settings.catalog_path))
            database.dispose()
            started = time.perf_counter()
            now = datetime.now(UTC)
            facts = seed(url, subscriptions=arguments.subscriptions, audit_events=arguments.audit_events, now=now)
            print(
                f"seeded {arguments.subscriptions:,} subscriptions and clusters, {arguments.audit_events:,} audit "
                f"events in {time.perf_counter() - started:.1f} s"
            )
            group = ProcessGroup(data_dir / "logs", {**os.environ, **settings.as_environment()})
            group.add("api", "api")
            group.start_all()
            base_url = f"http://{settings.api_host}:{settings.api_port}"
            try:
                wait_until_listening(base_url, timeout_seconds=300, group=group)
            except RuntimeError:
                print((data_dir / "logs" / "api.log").read_text()[-3000:])
                raise
            operator = CustomerBrowser(state["ca_bundle"])
            operator.open_landing(f"{base_url}/portal/sign-in", username=OPERATOR)
            client = httpx.Client(base_url=base_url, cookies=dict(operator.http.cookies), timeout=60)
            print(f"load average before: {_load_average()} ({os.cpu_count()} CPUs)")
            print(f"{'page':<36} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            worst = 0.0
            for name, path in pages(facts, arguments.subscriptions).items():
                # The service-level overview evaluates every cluster (not paged yet): a few requests tell its time.
                count = min(arguments.requests, 3) if path.endswith("/slo") else arguments.requests
                ordered = sorted(_time(client, path, count))
                p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
                worst = max(worst, p95)
                p50 = statistics.median(ordered)
                print(f"{name:<36} {p50 * 1000:>8.1f} {p95 * 1000:>8.1f} {ordered[-1] * 1000:>8.1f}")
            print(f"load average after: {_load_average()}; worst p95 {worst * 1000:.1f} ms (target 300 ms)")
            client.close()
            operator.close()
        finally:
            if group is not None:
                group.stop_all()
            emulators.stop()
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
