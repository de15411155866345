"""Metering submission: closed ledger hours go to Marketplace in batches of at most 25, exactly once.

Each round claims pending entries (SKIP LOCKED on PostgreSQL, so parallel submitters never share
one) and marks them submitted in its own commit *before* anything is sent: an entry sent by a worker
that died before recording the answer is visibly "submitted" and is settled later through usage
retrieval, never re-sent blindly. Batches of a round go out in parallel; the answers are recorded
per event in one commit. Entries whose hour left Marketplace's window are expired without sending.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from billing.ledger import close_cutoff
from billing.sql_inserts import table_of
from core.audit.actions import AuditAction
from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.clock import utc_now
from core.db import Database, lock_rows
from core.marketplace.http import MarketplaceError, MarketplaceUnreachable
from core.marketplace.metering_client import (
    ACCEPTED,
    DUPLICATE,
    MAX_BATCH_SIZE,
    MeteringClient,
    UsageEvent,
    UsageEventResult,
)
from core.subscriptions.models import MarketplaceSubscription, SubscriptionStatus
from core.usage.models import LEDGER_STATES, LedgerStatus, ResourceKind, UsageLedgerEntry

SYSTEM_ACTOR = "system:billing"
# Statuses that will not change by sending again: the entry is rejected with the reason.
REJECTING_STATUSES = frozenset(
    {
        "InvalidQuantity",
        "InvalidDimension",
        "ResourceNotFound",
        "ResourceNotActive",
        "ResourceNotAuthorized",
        "BadArgument",
    }
)
EXPIRED_STATUS = "Expired"
INACTIVE_SUBSCRIPTION_STATUSES = (SubscriptionStatus.SUSPENDED, SubscriptionStatus.UNSUBSCRIBED)


@dataclass(frozen=True)
class SubmissionPolicy:
    """When an hour may be sent: closed (grace after its end) and still inside Marketplace's window."""

    grace: timedelta
    window: timedelta
    parallel_batches: int = 8
    # Offers whose catalog waives the usage of subscriptions no longer Subscribed when the hour is sent.
    waiving_offers: frozenset[str] = frozenset()

    def sendable_range(self, now: datetime) -> tuple[datetime, datetime]:
        """[oldest, newest] hour starts that may be sent now."""
        return now - self.window, close_cutoff(now, self.grace)


@dataclass
class SubmissionSummary:
    """Entries by the outcome one submission run recorded."""

    counts: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    def add(self, status: str, count: int = 1) -> None:
        """Count `count` entries that ended in `status`."""
        self.counts[status] = self.counts.get(status, 0) + count


def expire_out_of_window(session: Session, policy: SubmissionPolicy, now: datetime) -> int:
    """Pending entries too old for Marketplace become expired and are flagged for the operator."""
    oldest, _ = policy.sendable_range(now)
    entries = session.exec(
        lock_rows(
            select(UsageLedgerEntry).where(
                UsageLedgerEntry.status == LedgerStatus.PENDING, UsageLedgerEntry.hour_start < oldest
            ),
            skip_locked=True,
        )
    ).all()
    for entry in entries:
        move_entry(session, entry, LedgerStatus.EXPIRED, now, reason="not sent within the metering window")
    return len(entries)


def waive_inactive(session: Session, policy: SubmissionPolicy, now: datetime) -> int:
    """Pending SaaS entries of suspended or unsubscribed subscriptions whose catalog waives them: rejected, flagged."""
    if not policy.waiving_offers:
        return 0
    rows = session.exec(
        lock_rows(
            select(UsageLedgerEntry, MarketplaceSubscription.status)
            .join(MarketplaceSubscription, col(MarketplaceSubscription.id) == col(UsageLedgerEntry.resource_id))
            .where(
                UsageLedgerEntry.status == LedgerStatus.PENDING,
                UsageLedgerEntry.resource_kind == ResourceKind.SAAS.value,
                col(MarketplaceSubscription.status).in_(INACTIVE_SUBSCRIPTION_STATUSES),
                col(MarketplaceSubscription.offer_id).in_(sorted(policy.waiving_offers)),
            ),
            skip_locked=True,
            of=UsageLedgerEntry,
        )
    ).all()
    for entry, subscription_status in rows:
        move_entry(
            session,
            entry,
            LedgerStatus.REJECTED,
            now,
            reason=f"waived: subscription {subscription_status} (catalog inactive_subscription_usage=waive)",
        )
    return len(rows)


@dataclass(frozen=True)
class ClaimedEntry:
    """What sending needs of an entry claimed for submission (plain values: no ORM state to flush)."""

    id: int
    resource_id: str
    dimension_id: str
    plan_id: str
    hour_start: datetime
    billable_quantity: float


def claim_batches(session: Session, policy: SubmissionPolicy, now: datetime) -> list[list[ClaimedEntry]]:
    """Mark up to `parallel_batches` x 25 sendable pending entries submitted; grouped in batches."""
    oldest, newest = policy.sendable_range(now)
    ledger = table_of(UsageLedgerEntry)
    rows = session.execute(
        lock_rows(
            sa.select(
                ledger.c.id,
                ledger.c.resource_id,
                ledger.c.dimension_id,
                ledger.c.plan_id,
                ledger.c.hour_start,
                ledger.c.billable_quantity,
            )
            .where(
                ledger.c.status == LedgerStatus.PENDING,
                ledger.c.hour_start >= oldest,
                ledger.c.hour_start <= newest,
            )
            .order_by(ledger.c.status, ledger.c.hour_start, ledger.c.id)
            .limit(policy.parallel_batches * MAX_BATCH_SIZE),
            skip_locked=True,
        )
    ).all()
    entries = [ClaimedEntry(*row) for row in rows]
    if not entries:
        return []
    session.execute(
        sa.update(ledger)
        .where(ledger.c.id.in_([entry.id for entry in entries]))
        .values(status=LedgerStatus.SUBMITTED, submitted_at=now, status_reason=None)
    )
    return [entries[index : index + MAX_BATCH_SIZE] for index in range(0, len(entries), MAX_BATCH_SIZE)]


def usage_event(entry: ClaimedEntry) -> UsageEvent:
    """The Marketplace event of a ledger entry."""
    return UsageEvent(
        resource_id=entry.resource_id,
        dimension=entry.dimension_id,
        quantity=entry.billable_quantity,
        effective_start_time=entry.hour_start,
        plan_id=entry.plan_id,
    )


BatchOutcome = list[UsageEventResult] | MarketplaceUnreachable | MarketplaceError


def send_batch(client: MeteringClient, entries: Sequence[ClaimedEntry]) -> BatchOutcome:
    """Send one batch; a lost answer or an exhausted error comes back as the exception, to be recorded."""
    try:
        return client.submit_batch([usage_event(entry) for entry in entries])
    except (MarketplaceUnreachable, MarketplaceError) as error:
        return error


def record_outcomes(
    session: Session,
    outcomes: Sequence[tuple[Sequence[ClaimedEntry], BatchOutcome]],
    now: datetime,
    summary: SubmissionSummary,
) -> None:
    """Apply a round's answers to its entries, locked again in one query; only entries still submitted change."""
    ids = [entry.id for batch, _ in outcomes for entry in batch]
    loaded = {
        entry.id: entry
        for entry in session.exec(lock_rows(select(UsageLedgerEntry).where(col(UsageLedgerEntry.id).in_(ids)))).all()
        if entry.status == LedgerStatus.SUBMITTED
    }
    for batch, outcome in outcomes:
        entries = {
            (entry.resource_id, entry.dimension_id, entry.hour_start): loaded[entry.id]
            for entry in batch
            if entry.id in loaded
        }
        record_outcome(session, entries, outcome, now, summary)


def record_outcome(
    session: Session,
    entries: dict[tuple[str, str, datetime], UsageLedgerEntry],
    outcome: BatchOutcome,
    now: datetime,
    summary: SubmissionSummary,
) -> None:
    """Apply one batch's answer to its entries, keyed by (resource, dimension, hour)."""
    if not isinstance(outcome, list):
        # No answer, or 429/5xx after every retry: Marketplace may hold some of these; retrieval decides.
        reason = f"{type(outcome).__name__}: {outcome.message}"[:2048]
        for entry in entries.values():
            move_entry(session, entry, LedgerStatus.UNKNOWN, now, reason=reason, settled=False)
        summary.add(LedgerStatus.UNKNOWN, len(entries))
        return
    for result in outcome:
        event = result.event
        key = (event.resource_id, event.dimension, event.effective_start_time)
        if key not in entries:
            continue
        entry = entries.pop(key)
        status = _record_result(session, entry, result, now)
        summary.add(status.value)
    for entry in entries.values():
        move_entry(session, entry, LedgerStatus.UNKNOWN, now, reason="no result for this event", settled=False)
        summary.add(LedgerStatus.UNKNOWN)


def _record_result(session: Session, entry: UsageLedgerEntry, result: UsageEventResult, now: datetime) -> LedgerStatus:
    if result.status == ACCEPTED:
        entry.marketplace_usage_event_id = result.usage_event_id
        return move_entry(session, entry, LedgerStatus.ACCEPTED, now, reason=None)
    if result.status == DUPLICATE:
        # Marketplace already holds this hour (first write wins): billed once, with the original event.
        entry.marketplace_usage_event_id = result.usage_event_id
        reason = "Duplicate: Marketplace already held this hour"
        if result.accepted_quantity is not None and abs(result.accepted_quantity - entry.billable_quantity) > 1e-9:
            reason += f" with quantity {result.accepted_quantity}"
        return move_entry(session, entry, LedgerStatus.ACCEPTED, now, reason=reason)
    if result.status == EXPIRED_STATUS:
        return move_entry(session, entry, LedgerStatus.EXPIRED, now, reason=f"Expired: {result.message}")
    if result.status in REJECTING_STATUSES:
        return move_entry(session, entry, LedgerStatus.REJECTED, now, reason=f"{result.status}: {result.message}")
    return move_entry(
        session, entry, LedgerStatus.UNKNOWN, now, reason=f"{result.status}: {result.message}", settled=False
    )


def move_entry(
    session: Session,
    entry: UsageLedgerEntry,
    target: LedgerStatus,
    now: datetime,
    *,
    reason: str | None,
    settled: bool = True,
) -> LedgerStatus:
    """Move an entry along LEDGER_STATES; expired and rejected entries are flagged in the audit trail."""
    LEDGER_STATES.check(LedgerStatus(entry.status), target)
    before = entry.status
    entry.status = target
    entry.status_reason = reason[:2048] if reason else None
    if settled:
        entry.settled_at = now
    session.add(entry)
    if target in (LedgerStatus.EXPIRED, LedgerStatus.REJECTED):
        record_audit_event(
            session,
            actor=SYSTEM_ACTOR,
            action=AuditAction.ledger_entry_now(target.value),
            subject_type="usage_ledger_entry",
            subject_id=str(entry.id),
            outcome=AuditOutcome.FAILURE,
            before={"status": before},
            after={"status": target.value},
            details={
                "needs_operator": True,
                "resource_id": entry.resource_id,
                "dimension_id": entry.dimension_id,
                "hour_start": entry.hour_start.isoformat(),
                "billable_quantity": entry.billable_quantity,
                "reason": reason,
            },
        )
    return target


def submit_pending(
    database: Database,
    client: MeteringClient,
    policy: SubmissionPolicy,
    *,
    now: datetime | None = None,
    on_round: Callable[[int], None] | None = None,
) -> SubmissionSummary:
    """Send every sendable pending entry; returns counts by recorded status. `on_round` gets entries per round."""
    summary = SubmissionSummary()
    with database.session() as session:
        summary.add(LedgerStatus.EXPIRED, expire_out_of_window(session, policy, now or utc_now()))
        waived = waive_inactive(session, policy, now or utc_now())
        if waived:
            summary.add(LedgerStatus.REJECTED, waived)
    with ThreadPoolExecutor(max_workers=policy.parallel_batches, thread_name_prefix="metering") as pool:
        while True:
            round_now = now or utc_now()
            with database.session() as session:
                batches = claim_batches(session, policy, round_now)
            if not batches:
                break
            outcomes = list(pool.map(lambda batch: send_batch(client, batch), batches))
            with database.session() as session:
                record_outcomes(session, list(zip(batches, outcomes, strict=True)), round_now, summary)
            summary.batches += len(batches)
            if on_round is not None:
                on_round(sum(len(batch) for batch in batches))
    return summary
