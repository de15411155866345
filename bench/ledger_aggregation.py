"""Benchmark: raw usage samples aggregated into the hourly ledger on PostgreSQL, next to a plain GROUP BY.

Loads clusters x 3 dimensions x days x samples-per-hour samples into a throwaway schema (generated in
the database, seeded), then times (1) the ceiling: a plain GROUP BY of the samples table written to a
table, and (2) billing.ledger.close_hours over the same samples (joins to clusters, subscriptions,
plans, dimensions and included quantities; rounding; ON CONFLICT into the indexed ledger). Prints both
and their ratio. The issue's size is `--clusters 1000 --days 30 --samples-per-hour 5` (10.8M samples).
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

import core.models  # noqa: F401  # registers every table
from billing.ledger import close_cutoff, create_entries, record_adjustments
from core import migrator
from core.catalog.loader import load_catalog, sync_catalog
from core.db import Database, make_engine
from core.settings import DEFAULT_CATALOG_PATH

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
                " beneficiary_tenant_id, is_test, is_free_trial, created_at, updated_at, marketplace_snapshot) "
                "SELECT 's-' || n, 't-' || n, 'bench', 'vast-blob-facade', 'standard', 1 + n % 3, 'Subscribed',"
                " 'entra-' || n, false, false, now(), now(), '{}' FROM generate_series(1, :clusters) n"
            ),
            {"clusters": clusters},
        )
        connection.execute(
            sa.text(
                "INSERT INTO clusters (id, tenant_id, subscription_id, name, region, azure_subscription_id,"
                " resource_group, desired_plan_id, desired_quantity, desired_suspended, desired_deleted,"
                " pls_visibility_subscriptions, pls_auto_approval_subscriptions, key_policy, desired_generation,"
                " status, observed_generation, attempts, last_error_details, created_at, updated_at) "
                "SELECT 'c-' || n, 't-' || n, 's-' || n, 'bench-' || n, 'westeurope', 'az-' || n, 'rg', 'standard',"
                " 1 + n % 3, false, false, '[]', '[]', '{}', 1, 'ready', 1, 0, '[]', now(), now()"
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
        connection.execute(sa.text("ANALYZE"))
        return int(connection.execute(sa.text("SELECT count(*) FROM usage_samples")).scalar_one())


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--samples-per-hour", type=int, default=5)
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    arguments = parser.parse_args()

    schema = f"bench_ledger_{uuid.uuid4().hex[:8]}"
    admin = make_engine(arguments.database)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{arguments.database}?options=-csearch_path%3D{schema}"
    try:
        migrator.upgrade(url)
        database = Database(url)
        with database.session() as session:
            sync_catalog(session, load_catalog(DEFAULT_CATALOG_PATH))
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        began = time.perf_counter()
        samples = load(database, arguments.clusters, arguments.days, arguments.samples_per_hour, end)
        print(f"loaded {samples:,} samples in {time.perf_counter() - began:.1f} s")

        with database.engine.begin() as connection:
            began = time.perf_counter()
            groups = connection.execute(
                sa.text(
                    "CREATE TABLE ceiling AS SELECT cluster_id, dimension_id, hour_start, avg(value) AS mean_value,"
                    " sum(value) AS total_value, max(value) AS max_value"
                    " FROM usage_samples GROUP BY cluster_id, dimension_id, hour_start"
                )
            ).rowcount
            ceiling_seconds = time.perf_counter() - began

        now = end + timedelta(hours=2)
        cutoff = close_cutoff(now, timedelta(minutes=15))
        began = time.perf_counter()
        with database.session() as session:
            created = create_entries(session, now=now, since=None, cutoff=cutoff)
        ledger_seconds = time.perf_counter() - began
        began = time.perf_counter()
        with database.session() as session:
            created_again = create_entries(session, now=now, since=None, cutoff=cutoff)
        replay_seconds = time.perf_counter() - began
        with database.engine.begin() as connection:
            # Autovacuum would have analysed a ledger that grew hour by hour; this one was filled at once.
            connection.execute(sa.text("ANALYZE usage_ledger_entries"))
        began = time.perf_counter()
        with database.session() as session:
            adjustments = record_adjustments(session, now=now, since=None)
        adjustment_seconds = time.perf_counter() - began

        print(f"plain GROUP BY (ceiling):      {groups:,} groups in {ceiling_seconds:.2f} s")
        print(f"ledger entries (close hours):  {created:,} entries in {ledger_seconds:.2f} s")
        print(f"ratio ledger / ceiling:        {ledger_seconds / ceiling_seconds:.2f}x (target within 1.5x)")
        print(f"samples per second:            {samples / ledger_seconds:,.0f}")
        print(f"replayed close (no-op):        {created_again:,} new entries in {replay_seconds:.2f} s")
        print(f"adjustment scan, whole period: {adjustments:,} adjustments in {adjustment_seconds:.2f} s")
        database.dispose()
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
