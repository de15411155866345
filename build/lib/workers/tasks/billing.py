"""Billing passes triggered by the beat: collect, close hours, submit, settle unknowns, reconcile.

They are periodic jobs, not outbox consumers: each pass reads what is due from the database and is
safe to run twice or concurrently (unique keys, SKIP LOCKED claims, entries committed as submitted
before they are sent).
"""

from __future__ import annotations

import logging
from typing import Any

from billing.jobs import run_close, run_collection, run_reconciliation, run_settlement, run_submission
from core.db import get_database
from core.messaging import TaskNames
from core.settings import get_settings
from workers.celery_app import celery_app

logger = logging.getLogger(__name__)


@celery_app.task(name=TaskNames.BILLING_COLLECT_USAGE, ignore_result=True)  # type: ignore[untyped-decorator]
def collect_usage() -> dict[str, int]:
    """Read every running cluster's metrics into raw samples."""
    summary = run_collection(get_settings(), get_database())
    logger.info("usage collected", extra=vars(summary))
    return vars(summary)


@celery_app.task(name=TaskNames.BILLING_CLOSE_HOURS, ignore_result=True)  # type: ignore[untyped-decorator]
def close_hours() -> dict[str, Any]:
    """Close every hour past its grace period into ledger entries (and adjustments for late samples)."""
    result = run_close(get_settings(), get_database())
    facts = {"entries_created": result.entries_created, "adjustments_recorded": result.adjustments_recorded}
    logger.info("ledger hours closed", extra=facts)
    return facts


@celery_app.task(name=TaskNames.BILLING_SUBMIT_USAGE, ignore_result=True)  # type: ignore[untyped-decorator]
def submit_usage() -> dict[str, int]:
    """Send closed, in-window ledger entries to Marketplace metering."""
    summary = run_submission(get_settings(), get_database())
    logger.info("usage submitted", extra={"batches": summary.batches, **summary.counts})
    return summary.counts


@celery_app.task(name=TaskNames.BILLING_SETTLE_UNKNOWN, ignore_result=True)  # type: ignore[untyped-decorator]
def settle_unknown() -> dict[str, int]:
    """Settle entries whose answer was lost through usage retrieval."""
    summary = run_settlement(get_settings(), get_database())
    logger.info("unknown usage settled", extra={"timed_out": summary.timed_out, **summary.counts})
    return summary.counts


@celery_app.task(name=TaskNames.BILLING_RECONCILE, ignore_result=True)  # type: ignore[untyped-decorator]
def reconcile() -> dict[str, int]:
    """Reconcile the previous UTC day with Marketplace and store the report."""
    report = run_reconciliation(get_settings(), get_database(), requested_by="schedule")
    facts = {"report_id": report.id or 0, "differences": report.difference_count}
    logger.log(logging.WARNING if report.difference_count else logging.INFO, "usage reconciled", extra=facts)
    return facts
