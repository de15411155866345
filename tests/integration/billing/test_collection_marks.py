"""An hour is billed only after the cluster's usage was read through its end: a failed read never closes it empty.

The façade metrics emulator answers 500 for one cluster's metrics (a fault rule on its path only) between a
collection and the close, as the full scenario's chaos did before its last billing pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from billing.jobs import run_close, run_collection
from billing.reports import collection_lag
from core.clusters.models import Cluster, ClusterStatus
from core.db import Database
from core.settings import Settings
from core.subscriptions.models import MarketplaceSubscription, SubscriptionStatus
from core.usage.models import UsageCollectionMark, UsageLedgerAdjustment, UsageLedgerEntry
from tests.conftest import start_api
from tests.integration.billing.conftest import BilledCustomer, add_customer, expected_billable
from tests.integration.billing.test_billing_api import user_token
from tests.support.marketplace_emulator import control_client

pytestmark = pytest.mark.timeout(120)

DIMENSIONS = ("capacity_tib", "data_transfer_gib", "api_requests_10k")
GRACE = timedelta(minutes=15)
MARKETPLACE_WINDOW = timedelta(hours=24)


@pytest.fixture
def this_hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def fail_metrics_reads(emulator_state: dict[str, Any], customer: BilledCustomer, count: int) -> None:
    """The next `count` reads of this cluster's metrics answer 500; other clusters are not touched."""
    with control_client(emulator_state, "facade") as control:
        control.post(
            "/faults",
            json={
                "kind": "status",
                "status": 500,
                "path_pattern": f"/clusters/{customer.cluster_name}/_vast/metrics",
                "count": count,
            },
        ).raise_for_status()


def entries_of(database: Database, customer: BilledCustomer, hour: datetime) -> dict[str, float]:
    with database.session() as session:
        entries = session.exec(
            select(UsageLedgerEntry).where(
                UsageLedgerEntry.cluster_id == customer.cluster_id, UsageLedgerEntry.hour_start == hour
            )
        ).all()
    return {entry.dimension_id: entry.billable_quantity for entry in entries}


def adjustments_of(database: Database, customer: BilledCustomer) -> list[UsageLedgerAdjustment]:
    with database.session() as session:
        return list(
            session.exec(
                select(UsageLedgerAdjustment)
                .join(UsageLedgerEntry)
                .where(UsageLedgerEntry.cluster_id == customer.cluster_id)
            ).all()
        )


def lag_of(database: Database, customer: BilledCustomer, now: datetime) -> dict[str, Any] | None:
    with database.session() as session:
        rows = collection_lag(session, now, grace=GRACE, window=MARKETPLACE_WINDOW)
    return next((row for row in rows if row["cluster_id"] == customer.cluster_id), None)


def test_a_failed_read_keeps_its_hour_open_and_the_next_read_closes_it_in_full(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    this_hour: datetime,
    clean_faults: None,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    last_hour = this_hour - timedelta(hours=1)
    # Read up to half past last hour; then the façade fails exactly when the next pass reads it.
    run_collection(billing_settings, database, now=last_hour + timedelta(minutes=30))
    fail_metrics_reads(emulator_state, customer, count=1)
    failed = run_collection(billing_settings, database, now=this_hour + timedelta(minutes=20))
    assert failed.failed_clusters >= 1

    closed = run_close(billing_settings, database, now=this_hour + timedelta(minutes=20))
    # Last hour is past its grace, but was never read to its end: it waits instead of billing 7 of 12 samples.
    assert closed.cutoff >= last_hour
    assert entries_of(database, customer, last_hour) == {}
    # The hour before it was read in full and closed as usual.
    assert entries_of(database, customer, last_hour - timedelta(hours=1)) == {
        dimension: expected_billable(dimension, 12) for dimension in DIMENSIONS
    }
    lag = lag_of(database, customer, this_hour + timedelta(minutes=20))
    assert lag is not None
    assert (lag["consecutive_failures"], lag["waiting_hours"], lag["hours_past_marketplace_window"]) == (1, 1, 0)
    assert lag["collected_through"] == last_hour + timedelta(minutes=30)
    assert "500" in (lag["last_error"] or "")

    # The next read succeeds from where the last one stopped; the close then bills the whole hour, no adjustment.
    run_collection(billing_settings, database, now=this_hour + timedelta(minutes=21))
    run_close(billing_settings, database, now=this_hour + timedelta(minutes=22))
    assert entries_of(database, customer, last_hour) == {
        dimension: expected_billable(dimension, 12) for dimension in DIMENSIONS
    }
    assert adjustments_of(database, customer) == []
    assert lag_of(database, customer, this_hour + timedelta(minutes=22)) is None


def test_a_cluster_failing_for_a_day_shows_the_hours_it_holds_past_marketplaces_window(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    this_hour: datetime,
    clean_faults: None,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    read_through = this_hour - timedelta(hours=1, minutes=30)
    run_collection(billing_settings, database, now=read_through)
    fail_metrics_reads(emulator_state, customer, count=2)
    run_collection(billing_settings, database, now=this_hour)
    run_collection(billing_settings, database, now=this_hour + timedelta(minutes=5))

    # 30 hours on, the hours since the last good read wait; the oldest are past Marketplace's 24 hours.
    later = this_hour + timedelta(hours=30)
    lag = lag_of(database, customer, later)
    assert lag is not None
    oldest_waiting = read_through.replace(minute=0)
    newest_closable = (later - GRACE - timedelta(hours=1)).replace(minute=0)
    assert lag["consecutive_failures"] == 2
    assert lag["waiting_hours"] == (newest_closable - oldest_waiting) // timedelta(hours=1) + 1
    # Hours starting before later - 24 h: from oldest_waiting to this_hour + 5 h, inclusive.
    assert lag["hours_past_marketplace_window"] == (later - MARKETPLACE_WINDOW - oldest_waiting) // timedelta(hours=1)


def test_an_unsubscribed_cluster_is_read_through_its_unsubscribe_so_its_last_partial_hour_closes(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    this_hour: datetime,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    last_hour = this_hour - timedelta(hours=1)
    run_collection(billing_settings, database, now=last_hour + timedelta(minutes=30))
    # Unsubscribed at :40; the controller stopped the cluster for its retention period before the next read.
    with database.session() as session:
        subscription = session.get(MarketplaceSubscription, customer.subscription_id)
        cluster = session.get(Cluster, customer.cluster_id)
        assert subscription is not None
        assert cluster is not None
        subscription.unsubscribed_at = last_hour + timedelta(minutes=40)
        subscription.status = SubscriptionStatus.UNSUBSCRIBED
        cluster.status = ClusterStatus.DEPROVISIONING
        session.add_all([subscription, cluster])

    run_collection(billing_settings, database, now=this_hour + timedelta(minutes=20))
    run_close(billing_settings, database, now=this_hour + timedelta(minutes=20))
    # :00 to :35 are billable: 8 samples; the read went past the unsubscribe, so the partial hour closed.
    assert entries_of(database, customer, last_hour) == {
        dimension: expected_billable(dimension, 8) for dimension in DIMENSIONS if expected_billable(dimension, 8) > 0
    }
    with database.session() as session:
        mark = session.get(UsageCollectionMark, customer.cluster_id)
        assert mark is not None
        assert mark.collected_through == this_hour + timedelta(minutes=20)
    # Read through the end of its usage, the stopped cluster is not read again.
    again = run_collection(billing_settings, database, now=this_hour + timedelta(minutes=25))
    with database.session() as session:
        mark = session.get(UsageCollectionMark, customer.cluster_id)
        assert mark is not None
        assert mark.collected_through == this_hour + timedelta(minutes=20)
    assert again.failed_clusters == 0


@pytest.fixture
def api_url(tmp_path: Path, billing_settings: Settings) -> Iterator[str]:
    group, base_url = start_api(tmp_path / "logs", billing_settings)
    yield base_url
    group.stop_all()


def test_operators_see_the_clusters_whose_usage_cannot_be_read(
    api_url: str,
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    now: datetime,
    clean_faults: None,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    fail_metrics_reads(emulator_state, customer, count=1)
    run_collection(billing_settings, database, now=now)

    operator = user_token(emulator_state, ["Operator"])
    reader = user_token(emulator_state, [])
    with httpx.Client(base_url=api_url, timeout=10.0) as client:
        url = "/api/publisher/billing/collection-lag"
        assert client.get(url, headers={"Authorization": f"Bearer {reader}"}).status_code == 403
        response = client.get(url, headers={"Authorization": f"Bearer {operator}"})
    assert response.status_code == 200, response.text
    rows = {row["cluster_id"]: row for row in response.json()}
    assert rows[customer.cluster_id]["cluster_name"] == customer.cluster_name
    # Never read yet: nothing read, nothing closable held back so far, and the error says why.
    assert rows[customer.cluster_id]["collected_through"] is None
    assert rows[customer.cluster_id]["consecutive_failures"] == 1
    assert "500" in rows[customer.cluster_id]["last_error"]
