"""The sandbox's billing step tells the truth about clusters deployed minutes ago and still shows a bill."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from core.clock import utc_now
from core.clusters.models import Cluster
from core.db import Database
from core.settings import Settings
from core.usage.models import RejectedUsageSample, UsageLedgerEntry
from core.usage.reconciliation_models import UsageReconciliationDifference
from harness.billing_demo import DEMO_HOURS, clusters_live_since, run_billing_demo
from tests.support.factories import create_cluster, create_subscription, create_tenant

pytestmark = pytest.mark.timeout(90)


def test_clusters_deployed_minutes_ago_bill_nothing_and_a_customer_live_for_the_demos_hours_is_billed(
    database: Database, emulator_state: dict[str, Any], billing_settings: Settings
) -> None:
    # What the sandbox's provisioning step leaves: a subscription activated and its cluster ready just now.
    just_now = utc_now()
    with database.session() as session:
        tenant = create_tenant(session)
        subscription = create_subscription(session, tenant, activated_at=just_now)
        fresh_id = create_cluster(session, tenant, subscription=subscription, first_ready_at=just_now).id
    assert clusters_live_since(database, just_now - timedelta(hours=DEMO_HOURS)) == []

    counts = run_billing_demo(database, billing_settings, emulator_state)

    # Every entry accepted. (The session's Marketplace emulator also holds other tests' usage, which this
    # reconciliation reports as differences: only the demo customer's resource must have none.)
    assert counts["statuses"], counts
    assert set(counts["statuses"]) <= {"accepted", "duplicate"}, counts
    [demo_cluster_id] = clusters_live_since(database, utc_now() - timedelta(hours=DEMO_HOURS))
    with database.session() as session:
        billed_clusters = {entry.cluster_id for entry in session.exec(select(UsageLedgerEntry)).all()}
        refused = session.exec(select(RejectedUsageSample).where(RejectedUsageSample.cluster_id == fresh_id)).all()
        demo_resource = session.exec(select(Cluster.subscription_id).where(Cluster.id == demo_cluster_id)).one()
        demo_differences = session.exec(
            select(UsageReconciliationDifference).where(UsageReconciliationDifference.resource_id == demo_resource)
        ).all()
    assert demo_differences == []
    # The fresh cluster's past hours were refused as outside its billable window; the demo customer's were billed.
    assert billed_clusters == {demo_cluster_id}
    assert refused
    assert all(sample.sampled_at < just_now for sample in refused)
