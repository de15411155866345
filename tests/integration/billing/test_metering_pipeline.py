"""Usage from a cluster's metrics endpoint to accepted Marketplace meter events, exactly once, against the emulators."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from billing.jobs import (
    run_close,
    run_collection,
    run_reconciliation,
    run_settlement,
    run_submission,
    submission_policy,
)
from billing.submission import claim_batches, send_batch
from core.audit.models import AuditEvent
from core.clock import utc_now
from core.db import Database
from core.marketplace.metering_client import MeteringClient
from core.settings import Settings
from core.subscriptions.models import MarketplaceSubscription, SubscriptionStatus
from core.usage.models import LedgerStatus, RejectedUsageSample, UsageLedgerAdjustment, UsageLedgerEntry, UsageSample
from core.usage.reconciliation_models import DifferenceKind, UsageReconciliationDifference
from tests.integration.billing.conftest import add_customer, expected_billable
from tests.support.marketplace_emulator import control_client

pytestmark = pytest.mark.timeout(60)


def marketplace_events(state: dict[str, Any], resource_id: str) -> list[dict[str, Any]]:
    """The usage events the Marketplace emulator holds for one resource."""
    with control_client(state, "marketplace") as control:
        events = control.get("/state").json()["usage_events"]
    return [event for event in events if event["resourceId"] == resource_id]


def ledger(database: Database, resource_id: str) -> list[UsageLedgerEntry]:
    with database.session() as session:
        return list(
            session.exec(
                select(UsageLedgerEntry)
                .where(UsageLedgerEntry.resource_id == resource_id)
                .order_by(col(UsageLedgerEntry.hour_start), col(UsageLedgerEntry.dimension_id))
            ).all()
        )


def samples_per_hour(database: Database, cluster_id: str) -> dict[tuple[str, datetime], int]:
    with database.session() as session:
        rows = session.exec(
            select(UsageSample.dimension_id, UsageSample.hour_start, sa.func.count())
            .where(UsageSample.cluster_id == cluster_id)
            .group_by(col(UsageSample.dimension_id), col(UsageSample.hour_start))
        ).all()
    return {(dimension, hour): count for dimension, hour, count in rows}


@contextmanager
def facade_clock_at(state: dict[str, Any], moment: datetime) -> Iterator[None]:
    """The façade emulator's clock (it publishes nothing later than its now) at `moment`, real time after."""
    with control_client(state, "facade") as control:
        control.put("/clock", json={"offset_seconds": (moment - utc_now()).total_seconds()}).raise_for_status()
        try:
            yield
        finally:
            control.put("/clock", json={"offset_seconds": 0}).raise_for_status()


def bill(settings: Settings, database: Database, client: MeteringClient, now: datetime) -> None:
    """One pass of the scheduled jobs."""
    run_collection(settings, database, now=now)
    run_close(settings, database, now=now)
    run_submission(settings, database, now=now, client=client)


def test_clean_run_bills_every_closed_hour_once_and_reconciles_to_zero(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    metering_client: MeteringClient,
    now: datetime,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    bill(billing_settings, database, metering_client, now)

    entries = ledger(database, customer.subscription_id)
    counts = samples_per_hour(database, customer.cluster_id)
    cutoff = now - timedelta(minutes=75)
    closed_hours = {hour for (_, hour) in counts if hour <= cutoff}
    assert closed_hours, "a 3-hour lookback always reaches a closed hour"
    expected = {
        (dimension, hour): expected_billable(dimension, count)
        for (dimension, hour), count in counts.items()
        if hour in closed_hours and expected_billable(dimension, count) > 0
    }
    assert {(entry.dimension_id, entry.hour_start): entry.billable_quantity for entry in entries} == expected
    assert {entry.status for entry in entries} == {LedgerStatus.ACCEPTED}
    held = marketplace_events(emulator_state, customer.subscription_id)
    assert sorted(event["usageEventId"] for event in held) == sorted(
        str(entry.marketplace_usage_event_id) for entry in entries
    )

    # Replaying the same period (samples and closing) changes nothing, and nothing is sent twice.
    bill(billing_settings, database, metering_client, now)
    assert [(entry.id, entry.status) for entry in ledger(database, customer.subscription_id)] == [
        (entry.id, entry.status) for entry in entries
    ]
    assert len(marketplace_events(emulator_state, customer.subscription_id)) == len(entries)

    report = run_reconciliation(
        billing_settings,
        database,
        start=now - timedelta(days=1),
        end=now + timedelta(hours=1),
        resource_ids={customer.subscription_id},
        client=metering_client,
    )
    assert report.difference_count == 0
    assert report.compared_groups > 0


def test_duplicate_out_of_order_and_future_samples(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    metering_client: MeteringClient,
    now: datetime,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    run_collection(billing_settings, database, now=now - timedelta(minutes=30))
    with control_client(emulator_state, "facade") as control:
        for kind, count in (("duplicate", 4), ("out_of_order", 3), ("future", 2)):
            control.post(f"/clusters/{customer.cluster_name}/bad-samples", json={"kind": kind, "count": count})
    summary = run_collection(billing_settings, database, now=now)

    # 4 duplicated points x 3 dimensions and 3 late points already stored: no new rows for any of them.
    assert summary.duplicates == (4 + 3) * 3
    # Future points are refused with the reason, per dimension.
    assert summary.rejected == 2 * 3
    with database.session() as session:
        rejected = session.exec(
            select(RejectedUsageSample).where(RejectedUsageSample.cluster_id == customer.cluster_id)
        ).all()
        stored = session.exec(
            select(sa.func.count()).select_from(UsageSample).where(UsageSample.cluster_id == customer.cluster_id)
        ).one()
    assert len(rejected) == 6
    assert all(sample.sampled_at > now and "future" in sample.reason for sample in rejected)
    assert stored == sum(samples_per_hour(database, customer.cluster_id).values())
    assert all(count <= 12 for count in samples_per_hour(database, customer.cluster_id).values())

    run_close(billing_settings, database, now=now)
    first = ledger(database, customer.subscription_id)
    run_close(billing_settings, database, now=now)
    assert [entry.id for entry in ledger(database, customer.subscription_id)] == [entry.id for entry in first]
    assert len({(entry.dimension_id, entry.hour_start) for entry in first}) == len(first)


def test_lost_answer_is_settled_through_retrieval_without_double_billing(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    metering_client: MeteringClient,
    now: datetime,
    clean_faults: None,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    run_collection(billing_settings, database, now=now)
    run_close(billing_settings, database, now=now)
    with control_client(emulator_state, "marketplace") as control:
        control.post(
            "/faults", json={"kind": "drop", "method": "POST", "path_pattern": "/api/batchUsageEvent$", "count": 1}
        ).raise_for_status()

    summary = run_submission(billing_settings, database, now=now, client=metering_client)
    entries = ledger(database, customer.subscription_id)
    assert summary.counts == {LedgerStatus.EXPIRED: 0, LedgerStatus.UNKNOWN: len(entries)}
    assert {entry.status for entry in entries} == {LedgerStatus.UNKNOWN}
    # The request took effect although its answer was lost.
    assert len(marketplace_events(emulator_state, customer.subscription_id)) == len(entries)

    settled = run_settlement(billing_settings, database, now=now, client=metering_client)
    assert settled.counts == {LedgerStatus.ACCEPTED: len(entries)}
    assert {entry.status for entry in ledger(database, customer.subscription_id)} == {LedgerStatus.ACCEPTED}
    run_submission(billing_settings, database, now=now, client=metering_client)
    assert len(marketplace_events(emulator_state, customer.subscription_id)) == len(entries)


def test_worker_killed_between_send_and_record_is_settled_not_resent(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    metering_client: MeteringClient,
    now: datetime,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    run_collection(billing_settings, database, now=now)
    run_close(billing_settings, database, now=now)
    # What a worker that dies after sending leaves behind: entries committed as submitted, answer never recorded.
    with database.session() as session:
        batches = claim_batches(session, submission_policy(billing_settings), now)
    for batch in batches:
        assert isinstance(send_batch(metering_client, batch), list)
    entries = ledger(database, customer.subscription_id)
    assert {entry.status for entry in entries} == {LedgerStatus.SUBMITTED}

    # A new submission run does not touch submitted entries; settlement after the answer timeout does.
    run_submission(billing_settings, database, now=now, client=metering_client)
    assert len(marketplace_events(emulator_state, customer.subscription_id)) == len(entries)
    later = now + timedelta(minutes=billing_settings.metering_answer_timeout_minutes + 1)
    settled = run_settlement(billing_settings, database, now=later, client=metering_client)
    assert settled.timed_out == len(entries)
    assert {entry.status for entry in ledger(database, customer.subscription_id)} == {LedgerStatus.ACCEPTED}
    assert len(marketplace_events(emulator_state, customer.subscription_id)) == len(entries)


def test_flaky_metering_api_still_bills_every_entry_exactly_once(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    metering_client: MeteringClient,
    now: datetime,
    clean_faults: None,
) -> None:
    customers = [add_customer(database, emulator_state, billing_settings) for _ in range(4)]
    run_collection(billing_settings, database, now=now)
    run_close(billing_settings, database, now=now)
    with control_client(emulator_state, "marketplace") as control:
        for status in (429, 500):
            control.post(
                "/faults",
                json={
                    "kind": "status",
                    "status": status,
                    "method": "POST",
                    "path_pattern": "/api/batchUsageEvent$",
                    "probability": 0.15,
                    "retry_after_seconds": 0,
                },
            ).raise_for_status()
        control.post("/faults/seed", params={"seed": 7}).raise_for_status()

    for _ in range(10):
        run_submission(billing_settings, database, now=now, client=metering_client)
        run_settlement(billing_settings, database, now=now, client=metering_client)
        with database.session() as session:
            open_entries = session.exec(
                select(sa.func.count())
                .select_from(UsageLedgerEntry)
                .where(col(UsageLedgerEntry.status).in_([LedgerStatus.PENDING, LedgerStatus.UNKNOWN]))
            ).one()
        if open_entries == 0:
            break
    for customer in customers:
        entries = ledger(database, customer.subscription_id)
        assert entries
        assert {entry.status for entry in entries} == {LedgerStatus.ACCEPTED}
        held = marketplace_events(emulator_state, customer.subscription_id)
        assert sorted((event["dimension"], event["quantity"]) for event in held) == sorted(
            (entry.dimension_id, entry.billable_quantity) for entry in entries
        )


def test_unsubscribed_resource_is_rejected_flagged_and_not_retried(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    metering_client: MeteringClient,
    now: datetime,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    run_collection(billing_settings, database, now=now)
    run_close(billing_settings, database, now=now)
    with control_client(emulator_state, "marketplace") as control:
        control.post(f"/subscriptions/{customer.subscription_id}/unsubscribe").raise_for_status()

    first = run_submission(billing_settings, database, now=now, client=metering_client)
    entries = ledger(database, customer.subscription_id)
    assert first.counts[LedgerStatus.REJECTED] == len(entries)
    assert all(entry.status_reason and entry.status_reason.startswith("ResourceNotFound") for entry in entries)
    with database.session() as session:
        flagged = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "billing.ledger_entry.rejected",
                col(AuditEvent.subject_id).in_([str(entry.id) for entry in entries]),
            )
        ).all()
    assert len(flagged) == len(entries)
    assert all(event.details["needs_operator"] for event in flagged)

    second = run_submission(billing_settings, database, now=now, client=metering_client)
    assert second.batches == 0


def test_hours_past_the_window_expire_flagged_and_show_in_reconciliation(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    metering_client: MeteringClient,
    now: datetime,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    run_collection(billing_settings, database, now=now)
    run_close(billing_settings, database, now=now)
    entries = ledger(database, customer.subscription_id)
    two_days_later = now + timedelta(days=2)

    summary = run_submission(billing_settings, database, now=two_days_later, client=metering_client)
    assert summary.counts == {LedgerStatus.EXPIRED: len(entries)}
    assert summary.batches == 0
    assert marketplace_events(emulator_state, customer.subscription_id) == []

    report = run_reconciliation(
        billing_settings,
        database,
        start=now - timedelta(days=1),
        end=now + timedelta(hours=1),
        resource_ids={customer.subscription_id},
        client=metering_client,
    )
    with database.session() as session:
        kinds = session.exec(
            select(UsageReconciliationDifference.kind, UsageReconciliationDifference.ledger_entry_id).where(
                UsageReconciliationDifference.report_id == report.id
            )
        ).all()
    assert sorted(kinds) == sorted((DifferenceKind.EXPIRED.value, entry.id) for entry in entries)


def test_reconciliation_reports_exactly_the_planted_differences(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    metering_client: MeteringClient,
    now: datetime,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    bill(billing_settings, database, metering_client, now)
    entries = ledger(database, customer.subscription_id)
    by_dimension = {entry.dimension_id: entry for entry in entries}
    dropped = by_dimension["capacity_tib"]
    altered = by_dimension["api_requests_10k"]
    with control_client(emulator_state, "marketplace") as control:
        control.post(f"/usage-events/{dropped.marketplace_usage_event_id}/drop").raise_for_status()
        control.patch(
            f"/usage-events/{altered.marketplace_usage_event_id}", json={"processed_quantity": 1.0}
        ).raise_for_status()

    report = run_reconciliation(
        billing_settings,
        database,
        start=now - timedelta(days=1),
        end=now + timedelta(hours=1),
        resource_ids={customer.subscription_id},
        client=metering_client,
    )
    with database.session() as session:
        differences = session.exec(
            select(UsageReconciliationDifference).where(UsageReconciliationDifference.report_id == report.id)
        ).all()
    assert report.difference_count == 2
    found = {(difference.kind, difference.dimension_id, difference.usage_date) for difference in differences}
    assert found == {
        (DifferenceKind.MISSING_THERE.value, "capacity_tib", dropped.hour_start.replace(hour=0)),
        (DifferenceKind.QUANTITY_MISMATCH.value, "api_requests_10k", altered.hour_start.replace(hour=0)),
    }


def test_samples_arriving_after_an_hour_closed_become_adjustments_not_edits(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    now: datetime,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    last_hour = this_hour - timedelta(hours=1)
    # The cluster's endpoint lags: at twenty past it has only published up to half past last hour (its clock
    # is behind). The read covered the whole period asked for, so the hour closes on what was there.
    with facade_clock_at(emulator_state, last_hour + timedelta(minutes=30, seconds=30)):
        run_collection(billing_settings, database, now=this_hour + timedelta(minutes=20))
    run_close(billing_settings, database, now=this_hour + timedelta(minutes=20))
    closed = {
        entry.dimension_id: entry
        for entry in ledger(database, customer.subscription_id)
        if entry.hour_start == last_hour
    }
    # 7 samples (:00 to :30): 56 GiB of transfer bills 6; 70 x 10k requests stay within the included 100.
    assert {dimension: entry.billable_quantity for dimension, entry in closed.items()} == {
        "capacity_tib": 7.5,
        "data_transfer_gib": 6.0,
    }

    run_collection(billing_settings, database, now=this_hour + timedelta(minutes=21))
    result = run_close(billing_settings, database, now=this_hour + timedelta(minutes=22))
    assert result.adjustments_recorded == 1
    with database.session() as session:
        adjustments = session.exec(select(UsageLedgerAdjustment)).all()
    assert [
        (adjustment.ledger_entry_id, adjustment.corrected_billable_quantity, adjustment.billable_delta)
        for adjustment in adjustments
    ] == [(closed["data_transfer_gib"].id, 46.0, 40.0)]
    after = {
        entry.dimension_id: entry
        for entry in ledger(database, customer.subscription_id)
        if entry.hour_start == last_hour
    }
    assert after["data_transfer_gib"].billable_quantity == 6.0
    # The requests hour had no entry (nothing billable at close), so its late samples simply open one.
    assert after["api_requests_10k"].billable_quantity == 20.0
    assert after["api_requests_10k"].status == LedgerStatus.PENDING

    again = run_close(billing_settings, database, now=this_hour + timedelta(minutes=23))
    assert (again.entries_created, again.adjustments_recorded) == (0, 0)


def test_usage_of_a_subscription_suspended_before_sending_is_waived_as_the_catalog_says(
    database: Database,
    emulator_state: dict[str, Any],
    billing_settings: Settings,
    metering_client: MeteringClient,
    now: datetime,
) -> None:
    customer = add_customer(database, emulator_state, billing_settings)
    run_collection(billing_settings, database, now=now)
    run_close(billing_settings, database, now=now)
    with database.session() as session:
        subscription = session.get(MarketplaceSubscription, customer.subscription_id)
        assert subscription is not None
        subscription.status = SubscriptionStatus.SUSPENDED
        session.add(subscription)

    summary = run_submission(billing_settings, database, now=now, client=metering_client)
    entries = ledger(database, customer.subscription_id)
    assert summary.batches == 0
    assert summary.counts[LedgerStatus.REJECTED] == len(entries)
    assert all(
        entry.status_reason and entry.status_reason.startswith("waived: subscription Suspended") for entry in entries
    )
    assert marketplace_events(emulator_state, customer.subscription_id) == []
