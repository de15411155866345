"""Benchmark: raw usage samples aggregated into the hourly ledger on PostgreSQL, next to a plain GROUP BY.

Loads clusters x 3 dimensions x days x samples-per-hour samples into a throwaway schema (generated in
the database, seeded), then, over several rounds, times (1) the ceiling: a plain GROUP BY of the samples
table written to a table, and (2) the close of every hour of the period into an empty ledger (joins to
clusters, subscriptions, plans, dimensions, included quantities and the collection marks, every cluster
read through the period; rounding; ON CONFLICT into the indexed ledger), then the hourly job's two other
costs at the default close lookback: a replayed close (nothing new) and the adjustment scan. Both sides
are warmed first, every table is ANALYZEd before each timed statement, and the order of the two sides
alternates from round to round, so neither always runs on a warmer cache. Prints the median, the spread
(min-max) and the machine's load average (the machine is shared: figures mean little without it). The
issue's size is `--clusters 1000 --days 30 --samples-per-hour 5` (10.8M samples); `--clusters 100` is 1.08M.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import sqlalchemy as sa

import core.models  # noqa: F401  # registers every table
from billing.ledger import close_cutoff, create_entries, record_adjustments
from core import migrator
from core.catalog.loader import load_catalog, sync_catalog
from core.db import Database, make_engine
from core.settings import DEFAULT_CATALOG_PATH, Settings

DIMENSIONS = ("capacity_tib", "data_transfer_gib", "api_requests_10k")


def load(database: Database, clusters: int, days: int, samples_per_hour: int, end: datetime) -> int:
    """Customers, subscriptions and ready clusters, then every sample, generated server-side."""
    start = end - timedelta(days=days)
    step_seconds = 3600 // samples_per_hour
    with database.engine.begin() as connection:
        connection.execute(sa.text("SELECT setseed(0.42)"))
        connection.execute(
            sa.text(
                "INSERT INTO tenants (id, entra_tenant_id, display_name, created_at) "
                "SELECT 't-' || n, 'entra-' || n, 'bench', now() FROM generate_series(1, :clusters) n"
            ),
            {"clusters": clusters},
        )
        connection.execute(
            sa.text(
                "INSERT INTO marketplace_subscriptions (id, tenant_id, name, offer_id, plan_id, quantity, status,"
                " beneficiary_tenant_id, is_test, is_free_trial, activated_at, created_at, updated_at,"
                " marketplace_snapshot) "
                "SELECT 's-' || n, 't-' || n, 'bench', 'vast-blob-facade', 'standard', 1 + n % 3, 'Subscribed',"
                " 'entra-' || n, false, false, now() - interval '400 days', now(), now(), '{}'"
                " FROM generate_series(1, :clusters) n"
            ),
            {"clusters": clusters},
        )
        connection.execute(
            sa.text(
                "INSERT INTO clusters (id, tenant_id, subscription_id, name, region, azure_subscription_id,"
                " resource_group, desired_plan_id, desired_quantity, desired_suspended, desired_deleted,"
                " pls_visibility_subscriptions, pls_auto_approval_subscriptions, key_policy, desired_generation,"
                " status, observed_generation, attempts, last_error_details, first_ready_at, created_at, updated_at) "
                "SELECT 'c-' || n, 't-' || n, 's-' || n, 'bench-' || n, 'westeurope', 'az-' || n, 'rg', 'standard',"
                " 1 + n % 3, false, false, '[]', '[]', '{}', 1, 'ready', 1, 0, '[]', now() - interval '400 days',"
                " now(), now()"
                " FROM generate_series(1, :clusters) n"
            ),
            {"clusters": clusters},
        )
        connection.execute(
            sa.text(
                "INSERT INTO usage_samples (cluster_id, dimension_id, sampled_at, hour_start, value, received_at) "
                "SELECT 'c-' || n, d.dimension, t, date_trunc('hour', t), "
                " CASE d.dimension WHEN 'capacity_tib' THEN 10 + random() * 60"
                " WHEN 'data_transfer_gib' THEN random() * 120 ELSE random() * 300 END, t "
                "FROM generate_series(1, :clusters) n "
                "CROSS JOIN (VALUES ('capacity_tib'), ('data_transfer_gib'), ('api_requests_10k')) d(dimension) "
                "CROSS JOIN generate_series(CAST(:start AS timestamptz),"
                " CAST(:end AS timestamptz) - interval '1 second', make_interval(secs => :step)) t"
            ),
            {"clusters": clusters, "start": start, "end": end, "step": step_seconds},
        )
        mark_collections(connection, end)
    analyze(database)
    with database.engine.begin() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM usage_samples")).scalar_one())


def mark_collections(connection: sa.Connection, end: datetime) -> None:
    """Every cluster read through `end`, as the collector records it, so the close may close all the hours."""
    connection.execute(
        sa.text(
            "INSERT INTO usage_collection_marks (cluster_id, collected_through, complete_hours_before,"
            " consecutive_failures, last_attempt_at) SELECT id, :end, :end, 0, :end FROM clusters"
            " ON CONFLICT (cluster_id) DO UPDATE SET collected_through = :end, complete_hours_before = :end"
        ),
        {"end": end},
    )


CEILING_SQL = (
    "CREATE TABLE ceiling AS SELECT cluster_id, dimension_id, hour_start, avg(value) AS mean_value,"
    " sum(value) AS total_value, max(value) AS max_value"
    " FROM usage_samples GROUP BY cluster_id, dimension_id, hour_start"
)


def analyze(database: Database) -> None:
    """Fresh statistics for every table of the benchmark's schema (either side reads or writes them).

    Named tables: a bare ANALYZE covers every schema of the database, other users' included, and deadlocks
    with a concurrent ANALYZE of theirs.
    """
    with database.engine.begin() as connection:
        tables = connection.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")
        ).scalars()
        connection.execute(sa.text("ANALYZE " + ", ".join(f'"{table}"' for table in tables)))


def ceiling(database: Database) -> tuple[float, int]:
    """The plain GROUP BY written to a table: what any aggregation of these samples costs at least."""
    with database.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS ceiling"))
    analyze(database)
    with database.engine.begin() as connection:
        began = time.perf_counter()
        groups = connection.execute(sa.text(CEILING_SQL)).rowcount
        return time.perf_counter() - began, int(groups)


def full_close(database: Database, now: datetime, cutoff: datetime) -> tuple[float, int]:
    """Every hour of the period closed into an empty ledger (the first close, the worst case)."""
    with database.engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE usage_ledger_entries CASCADE"))
    analyze(database)
    began = time.perf_counter()
    with database.session() as session:
        created = create_entries(session, now=now, since=None, cutoff=cutoff)
    return time.perf_counter() - began, created


def timed(action: Callable[[], int]) -> tuple[float, int]:
    began = time.perf_counter()
    count = action()
    return time.perf_counter() - began, count


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):6.2f} s  (min {min(values):.2f}, max {max(values):.2f})"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} {five:.1f} {fifteen:.1f}"


def explain(database: Database, now: datetime, cutoff: datetime) -> None:
    """EXPLAIN ANALYZE of the close into an empty ledger, rolled back."""
    with database.engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE usage_ledger_entries CASCADE"))
    analyze(database)
    with database.session() as session:
        session.execute(sa.text("SET LOCAL track_io_timing = on"))
        original = session.execute

        def explained(statement: sa.Executable, *args: object, **kwargs: object) -> sa.Result[Any]:
            if isinstance(statement, sa.TextClause):
                return original(statement)
            assert isinstance(statement, sa.ClauseElement)  # the close runs Core statements, each one compilable
            compiled = statement.compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True})
            plan = original(sa.text(f"EXPLAIN (ANALYZE, BUFFERS, VERBOSE) {compiled}")).scalars().all()
            print("\n".join(plan))
            return original(sa.text("SELECT 0"))

        # Every statement the close runs on this one session prints its plan instead of changing anything.
        with patch.object(session, "execute", explained):
            create_entries(session, now=now, since=None, cutoff=cutoff)
        session.rollback()


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--samples-per-hour", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print the close's plan and stop")
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--keep-schema", default=None, help="load into (or reuse) this schema and keep it, to profile without reloading"
    )
    arguments = parser.parse_args()
    lookback = timedelta(hours=Settings.model_fields["billing_close_lookback_hours"].default)

    schema = arguments.keep_schema or f"bench_ledger_{uuid.uuid4().hex[:8]}"
    admin = make_engine(arguments.database)
    with admin.begin() as connection:
        exists = connection.execute(
            sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"), {"name": schema}
        ).first()
        if not exists:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{arguments.database}?options=-csearch_path%3D{schema}"
    try:
        database = Database(url)
        if exists:
            migrator.upgrade(url)
            with database.engine.begin() as connection:
                samples = int(connection.execute(sa.text("SELECT count(*) FROM usage_samples")).scalar_one())
                newest = connection.execute(sa.text("SELECT max(hour_start) FROM usage_samples")).scalar_one()
            end = newest + timedelta(hours=1)
            with database.engine.begin() as connection:
                mark_collections(connection, end)
            print(f"reusing {samples:,} samples in schema {schema}")
        else:
            migrator.upgrade(url)
            with database.session() as session:
                sync_catalog(session, load_catalog(DEFAULT_CATALOG_PATH))
            end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            began = time.perf_counter()
            samples = load(database, arguments.clusters, arguments.days, arguments.samples_per_hour, end)
            print(f"loaded {samples:,} samples in {time.perf_counter() - began:.1f} s; load average {load_average()}")
        now = end + timedelta(hours=2)
        cutoff = close_cutoff(now, timedelta(minutes=15))
        if arguments.explain:
            explain(database, now, cutoff)
            return

        # Warm both sides once (caches, plans), untimed.
        ceiling(database)
        full_close(database, now, cutoff)
        figures: dict[str, list[float]] = {"ceiling": [], "close": [], "replay": [], "adjust": []}
        groups = created = 0
        for round_number in range(arguments.rounds):
            sides: list[tuple[str, Callable[[], tuple[float, int]]]] = [
                ("ceiling", lambda: ceiling(database)),
                ("close", lambda: full_close(database, now, cutoff)),
            ]
            if round_number % 2:
                sides.reverse()
            for name, side in sides:
                seconds, count = side()
                figures[name].append(seconds)
                if name == "ceiling":
                    groups = count
                else:
                    created = count
            # The hourly job's other two costs, over the default lookback, with the ledger full.
            analyze(database)

            def replay() -> int:
                with database.session() as session:
                    return create_entries(session, now=now, since=now - lookback, cutoff=cutoff)

            def adjust() -> int:
                with database.session() as session:
                    return record_adjustments(session, now=now, since=now - lookback)

            seconds, replayed = timed(replay)
            figures["replay"].append(seconds)
            seconds, adjustments = timed(adjust)
            figures["adjust"].append(seconds)
            print(
                f"round {round_number + 1}: ceiling {figures['ceiling'][-1]:.2f} s, close {figures['close'][-1]:.2f} s,"
                f" replay {figures['replay'][-1]:.2f} s, adjustments {figures['adjust'][-1]:.2f} s;"
                f" load average {load_average()}"
            )

        ratio = [close / ceil for close, ceil in zip(figures["close"], figures["ceiling"], strict=True)]
        print(f"samples:                          {samples:,} ({arguments.rounds} rounds, alternating order)")
        print(f"plain GROUP BY (ceiling):         {groups:,} groups;  {spread(figures['ceiling'])}")
        print(f"close every hour (empty ledger):  {created:,} entries; {spread(figures['close'])}")
        print(
            f"ratio close / ceiling:            median {statistics.median(ratio):.2f}x"
            f" (min {min(ratio):.2f}, max {max(ratio):.2f}; target within 2x)"
        )
        hours = f"{lookback.total_seconds() / 3600:g} h"
        print(f"replayed close, {hours} lookback:   {replayed:,} new; {spread(figures['replay'])}")
        print(f"adjustment scan, {hours} lookback:  {adjustments:,} found; {spread(figures['adjust'])}")
        print(f"load average (1, 5, 15 min):      {load_average()} on {os.cpu_count()} CPU(s)")
        database.dispose()
    finally:
        if not arguments.keep_schema:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
