"""The billing jobs as the scheduler, the CLI and the sandbox run them: clients built from settings, then closed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from billing.collector import ClusterMetricsSource, CollectionSummary, collect_usage
from billing.ledger import CloseResult, close_hours
from billing.reconciliation import reconcile
from billing.settlement import DAY, SettlementSummary, day_of, settle_unknown
from billing.submission import SubmissionPolicy, SubmissionSummary, submit_pending
from billing.window import waiving_offer_ids
from core.clock import utc_now
from core.db import Database
from core.marketplace.metering_client import MeteringClient
from core.settings import Settings
from core.usage.reconciliation_models import UsageReconciliationReport


def submission_policy(settings: Settings) -> SubmissionPolicy:
    """Grace and window from settings; the waiving offers from the catalog file."""
    return SubmissionPolicy(
        grace=timedelta(minutes=settings.billing_hour_close_grace_minutes),
        window=timedelta(hours=settings.metering_window_hours),
        parallel_batches=settings.metering_parallel_batches,
        waiving_offers=waiving_offer_ids(settings),
    )


def run_collection(settings: Settings, database: Database, *, now: datetime | None = None) -> CollectionSummary:
    """Collect usage from every running cluster."""
    source = ClusterMetricsSource.from_settings(settings)
    try:
        return collect_usage(database, source, settings, now=now)
    finally:
        source.close()


def run_close(
    settings: Settings,
    database: Database,
    *,
    now: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> CloseResult:
    """Close every hour past its grace period that each cluster's collection has read through (within the close
    lookback unless `since` is given)."""
    now = now or utc_now()
    with database.session() as session:
        return close_hours(
            session,
            now=now,
            grace=timedelta(minutes=settings.billing_hour_close_grace_minutes),
            since=since or now - timedelta(hours=settings.billing_close_lookback_hours),
            until=until,
            waiving_offers=waiving_offer_ids(settings),
        )


def run_submission(
    settings: Settings,
    database: Database,
    *,
    now: datetime | None = None,
    client: MeteringClient | None = None,
    on_round: Callable[[int], None] | None = None,
) -> SubmissionSummary:
    """Send every sendable pending entry."""
    metering = client or MeteringClient.from_settings(settings)
    try:
        return submit_pending(database, metering, submission_policy(settings), now=now, on_round=on_round)
    finally:
        if client is None:
            metering.close()


def run_settlement(
    settings: Settings, database: Database, *, now: datetime | None = None, client: MeteringClient | None = None
) -> SettlementSummary:
    """Settle unknown entries through usage retrieval."""
    metering = client or MeteringClient.from_settings(settings)
    try:
        return settle_unknown(
            database,
            metering,
            submission_policy(settings),
            timedelta(minutes=settings.metering_answer_timeout_minutes),
            now=now,
        )
    finally:
        if client is None:
            metering.close()


def run_reconciliation(
    settings: Settings,
    database: Database,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    requested_by: str = "schedule",
    resource_ids: set[str] | None = None,
    client: MeteringClient | None = None,
) -> UsageReconciliationReport:
    """Reconcile [start, end); by default the previous UTC day."""
    today = day_of(utc_now())
    metering = client or MeteringClient.from_settings(settings)
    try:
        return reconcile(
            database,
            metering,
            start or today - DAY,
            end or today,
            requested_by=requested_by,
            resource_ids=resource_ids,
        )
    finally:
        if client is None:
            metering.close()
