"""Bill exactly what was provided: usage counts from the later of first ready and activation until unsubscribe.

The façade emulator serves constant usage for any cluster name at any time, also before the
cluster existed, so every refusal below is the collector's, judged sample by sample, and kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from billing.jobs import run_close, run_collection
from billing.window import WindowRefusal
from core.db import Database
from core.settings import Settings
from core.subscriptions.models import MarketplaceSubscription, SubscriptionStatus, SubscriptionSuspension
from core.subscriptions.service import transition_subscription
from core.usage.models import RejectedUsageSample, UsageLedgerEntry, UsageSample
from tests.conftest import start_api
from tests.integration.billing.conftest import CONSTANT_CURVE, expected_billable
from tests.integration.billing.test_billing_api import user_token
from tests.support.factories import create_cluster, create_subscription, create_tenant
from tests.support.marketplace_emulator import control_client

pytestmark = pytest.mark.timeout(90)

FIVE_MINUTES = timedelta(minutes=5)


@pytest.fixture
def hour_zero(now: datetime) -> datetime:
    """The start of the hour two hours before this one: inside the 3-hour first collection."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def constant_usage(emulator_state: dict[str, Any], cluster_name: str) -> None:
    with control_client(emulator_state, "facade") as control:
        control.put(f"/clusters/{cluster_name}/curve", json=CONSTANT_CURVE).raise_for_status()


def grid(start: datetime, end: datetime) -> list[datetime]:
    """Five-minute grid instants t with start <= t < end (the emulator's grid is aligned to the hour)."""
    first = start.replace(second=0, microsecond=0)
    first += timedelta(minutes=(-first.minute) % 5)
    instants = []
    while first < end:
        instants.append(first)
        first += FIVE_MINUTES
    return instants


def ledger_of(database: Database, cluster_id: str) -> dict[tuple[str, datetime], float]:
    with database.session() as session:
        entries = session.exec(select(UsageLedgerEntry).where(UsageLedgerEntry.cluster_id == cluster_id)).all()
    return {(entry.dimension_id, entry.hour_start): entry.billable_quantity for entry in entries}


def rejected_of(database: Database, cluster_id: str) -> list[RejectedUsageSample]:
    with database.session() as session:
        return list(
            session.exec(
                select(RejectedUsageSample)
                .where(RejectedUsageSample.cluster_id == cluster_id)
                .order_by(col(RejectedUsageSample.sampled_at))
            ).all()
        )


def test_a_cluster_created_mid_hour_and_activated_later_is_billed_from_activation_only(
    database: Database, emulator_state: dict[str, Any], billing_settings: Settings, now: datetime, hour_zero: datetime
) -> None:
    first_ready = hour_zero + timedelta(minutes=19, seconds=21)
    activated = hour_zero + timedelta(minutes=27, seconds=53)
    with database.session() as session:
        tenant = create_tenant(session)
        subscription = create_subscription(session, tenant, activated_at=activated)
        cluster = create_cluster(
            session, tenant, subscription=subscription, first_ready_at=first_ready, created_at=first_ready
        )
        cluster_id, cluster_name = cluster.id, cluster.name
    constant_usage(emulator_state, cluster_name)

    run_collection(billing_settings, database, now=now)
    run_close(billing_settings, database, now=now + timedelta(hours=1))

    # Hour zero counts the six samples from activation on (:30 to :55); no hour before it bills anything.
    billable_in_hour_zero = len(grid(activated, hour_zero + timedelta(hours=1)))
    assert billable_in_hour_zero == 6
    ledger = ledger_of(database, cluster_id)
    assert min(hour for _, hour in ledger) == hour_zero
    assert ledger[("capacity_tib", hour_zero)] == expected_billable("capacity_tib", billable_in_hour_zero)
    # 6 samples move 48 GiB and 60 x 10k requests: under the hour's inclusion, so no entry at all.
    assert ("data_transfer_gib", hour_zero) not in ledger
    assert ("api_requests_10k", hour_zero) not in ledger
    next_hour = hour_zero + timedelta(hours=1)
    for dimension in ("capacity_tib", "data_transfer_gib", "api_requests_10k"):
        assert ledger[(dimension, next_hour)] == expected_billable(dimension, 12)

    # Everything the emulator served before activation is kept, with the rule that refused it.
    rejected = rejected_of(database, cluster_id)
    lookback_start = now - timedelta(hours=billing_settings.billing_collection_lookback_hours)
    refused_instants = sorted({sample.sampled_at for sample in rejected})
    assert refused_instants == [instant for instant in grid(lookback_start, activated) if instant > lookback_start]
    for sample in rejected:
        expected = WindowRefusal.NOT_READY if sample.sampled_at < first_ready else WindowRefusal.NOT_ACTIVATED
        assert sample.reason.startswith(str(expected)), sample.reason
    assert any(sample.reason.startswith(str(WindowRefusal.NOT_ACTIVATED)) for sample in rejected)

    # A second run re-reads nothing new and adds nothing.
    run_collection(billing_settings, database, now=now)
    assert len(rejected_of(database, cluster_id)) == len(rejected)


def test_usage_after_unsubscribe_is_refused_with_the_reason_and_the_last_hour_is_partial(
    database: Database, emulator_state: dict[str, Any], billing_settings: Settings, now: datetime, hour_zero: datetime
) -> None:
    with database.session() as session:
        tenant = create_tenant(session)
        subscription = create_subscription(session, tenant)
        cluster = create_cluster(session, tenant, subscription=subscription)
        cluster_id, cluster_name, subscription_id = cluster.id, cluster.name, subscription.id
    constant_usage(emulator_state, cluster_name)
    unsubscribed = hour_zero + timedelta(minutes=41)
    with database.session() as session:
        row = session.get(MarketplaceSubscription, subscription_id)
        assert row is not None
        assert transition_subscription(session, row, SubscriptionStatus.UNSUBSCRIBED, actor="test", reason="test")
        # The transition stamps its own clock; the test places it mid-hour two hours ago.
        row.unsubscribed_at = unsubscribed
        session.add(row)

    run_collection(billing_settings, database, now=now)
    run_close(billing_settings, database, now=now + timedelta(hours=1))

    with database.session() as session:
        newest = session.exec(
            select(UsageSample.sampled_at)
            .where(UsageSample.cluster_id == cluster_id)
            .order_by(col(UsageSample.sampled_at).desc())
        ).first()
    assert newest == hour_zero + timedelta(minutes=40)
    ledger = ledger_of(database, cluster_id)
    assert max(hour for _, hour in ledger) == hour_zero
    # Nine samples (:00 to :40) in the last hour: mean capacity, sums of nine intervals.
    assert ledger[("capacity_tib", hour_zero)] == expected_billable("capacity_tib", 9)
    assert ledger[("data_transfer_gib", hour_zero)] == expected_billable("data_transfer_gib", 9)
    assert ("api_requests_10k", hour_zero) not in ledger  # 90 x 10k requests, under the 100 included
    rejected = rejected_of(database, cluster_id)
    assert rejected[0].sampled_at == unsubscribed + timedelta(minutes=4)
    assert all(sample.reason.startswith(str(WindowRefusal.UNSUBSCRIBED)) for sample in rejected)
    assert {sample.sampled_at for sample in rejected} == set(grid(unsubscribed, now))


def test_usage_while_suspended_follows_the_catalog_policy_waive(
    database: Database, emulator_state: dict[str, Any], billing_settings: Settings, now: datetime, hour_zero: datetime
) -> None:
    with database.session() as session:
        tenant = create_tenant(session)
        subscription = create_subscription(session, tenant)
        cluster = create_cluster(session, tenant, subscription=subscription)
        cluster_id, cluster_name, subscription_id = cluster.id, cluster.name, subscription.id
    constant_usage(emulator_state, cluster_name)
    suspended = hour_zero + timedelta(minutes=10)
    reinstated = hour_zero + timedelta(minutes=50)
    with database.session() as session:
        row = session.get(MarketplaceSubscription, subscription_id)
        assert row is not None
        assert transition_subscription(session, row, SubscriptionStatus.SUSPENDED, actor="test", reason="Suspend")
        assert transition_subscription(session, row, SubscriptionStatus.SUBSCRIBED, actor="test", reason="Reinstate")
    with database.session() as session:
        # The transitions stamp their own clock; the test places the period mid-hour two hours ago.
        period = session.exec(
            select(SubscriptionSuspension).where(SubscriptionSuspension.subscription_id == subscription_id)
        ).one()
        assert period.reinstated_at is not None
        period.suspended_at, period.reinstated_at = suspended, reinstated
        session.add(period)

    run_collection(billing_settings, database, now=now)
    run_close(billing_settings, database, now=now + timedelta(hours=1))

    waived = set(grid(suspended, reinstated))
    rejected = rejected_of(database, cluster_id)
    assert {sample.sampled_at for sample in rejected} == waived
    assert all(sample.reason.startswith(str(WindowRefusal.SUSPENDED)) for sample in rejected)
    assert all("inactive_subscription_usage=waive" in sample.reason for sample in rejected)
    ledger = ledger_of(database, cluster_id)
    billed_samples = 12 - len(waived)
    assert ledger[("capacity_tib", hour_zero)] == expected_billable("capacity_tib", billed_samples)
    assert ("data_transfer_gib", hour_zero) not in ledger  # 4 samples: 32 GiB, under the 50 included


@pytest.fixture
def api_url(tmp_path: Path, billing_settings: Settings) -> Iterator[str]:
    group, base_url = start_api(tmp_path / "logs", billing_settings)
    yield base_url
    group.stop_all()


def test_operators_see_the_refused_samples_with_their_reason(
    api_url: str,
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    now: datetime,
    hour_zero: datetime,
) -> None:
    with database.session() as session:
        tenant = create_tenant(session)
        subscription = create_subscription(session, tenant, activated_at=hour_zero + timedelta(minutes=30))
        cluster = create_cluster(session, tenant, subscription=subscription)
        cluster_id, cluster_name = cluster.id, cluster.name
    constant_usage(emulator_state, cluster_name)
    run_collection(billing_settings, database, now=now)

    operator = user_token(emulator_state, ["Operator"])
    reader = user_token(emulator_state, [])
    with httpx.Client(base_url=api_url, timeout=10.0) as client:
        url = "/api/publisher/billing/rejected-samples"
        assert client.get(url, headers={"Authorization": f"Bearer {reader}"}).status_code == 403
        response = client.get(
            url, params={"cluster_id": cluster_id, "limit": 3}, headers={"Authorization": f"Bearer {operator}"}
        )
        assert response.status_code == 200, response.text
        rows = response.json()
        assert len(rows) == 3
        assert {row["cluster_name"] for row in rows} == {cluster_name}
        assert all(row["reason"].startswith(str(WindowRefusal.NOT_ACTIVATED)) for row in rows)
        # Newest measurement first: the last sample before activation.
        assert rows[0]["sampled_at"].startswith((hour_zero + timedelta(minutes=25)).strftime("%Y-%m-%dT%H:%M"))
        bad = client.get(url, params={"cluster_id": "x\n"}, headers={"Authorization": f"Bearer {operator}"})
        assert bad.status_code == 422
