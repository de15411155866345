"""Settling entries whose answer was lost: ask Marketplace's usage retrieval what it holds, never re-send blindly.

Retrieval reports per day, resource, dimension and plan how many events Marketplace accepted. For
each such group the entries we know are accepted explain part of that count; the rest of the count
belongs to our unknown entries. When it covers all of them they are accepted; when it covers none
they go back to pending (they never arrived) or expire (past the window). A partial count cannot say
which hours arrived, so those go back to pending too: re-sending them is then safe, because
Marketplace answers Duplicate with the original event for every hour it already holds.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from billing.submission import SubmissionPolicy, move_entry
from core.clock import utc_now
from core.db import Database, lock_rows
from core.marketplace.metering_client import MeteringClient, UsageAggregate
from core.usage.models import LedgerStatus, UsageLedgerEntry

logger = logging.getLogger(__name__)

DAY = timedelta(days=1)
GroupKey = tuple[str, str, str, datetime]


@dataclass
class SettlementSummary:
    """Unknown entries by what retrieval showed."""

    timed_out: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, status: str, count: int) -> None:
        """Count entries that moved to `status`."""
        if count:
            self.counts[status] = self.counts.get(status, 0) + count


def day_of(moment: datetime) -> datetime:
    """Midnight UTC of the day holding `moment`."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def group_key(entry: UsageLedgerEntry) -> GroupKey:
    """The retrieval group an entry falls in."""
    return entry.resource_id, entry.dimension_id, entry.plan_id, day_of(entry.hour_start)


def mark_unanswered_unknown(session: Session, answer_timeout: timedelta, now: datetime) -> int:
    """Submitted entries with no recorded answer for too long (their worker died) become unknown."""
    entries = session.exec(
        lock_rows(
            select(UsageLedgerEntry).where(
                UsageLedgerEntry.status == LedgerStatus.SUBMITTED,
                col(UsageLedgerEntry.submitted_at) < now - answer_timeout,
            ),
            skip_locked=True,
        )
    ).all()
    for entry in entries:
        move_entry(
            session, entry, LedgerStatus.UNKNOWN, now, reason="no answer recorded after submission", settled=False
        )
    return len(entries)


def settle_unknown(
    database: Database,
    client: MeteringClient,
    policy: SubmissionPolicy,
    answer_timeout: timedelta,
    *,
    now: datetime | None = None,
) -> SettlementSummary:
    """Resolve every unknown entry through usage retrieval."""
    now = now or utc_now()
    summary = SettlementSummary()
    with database.session() as session:
        summary.timed_out = mark_unanswered_unknown(session, answer_timeout, now)
        unknown = session.exec(
            select(UsageLedgerEntry.hour_start).where(UsageLedgerEntry.status == LedgerStatus.UNKNOWN)
        ).all()
    if not unknown:
        return summary
    first_day = day_of(min(unknown))
    last_day = day_of(max(unknown)) + DAY
    held: dict[GroupKey, UsageAggregate] = {
        (row.resource_id, row.dimension, row.plan_id, day_of(row.usage_date)): row
        for row in client.usage_events(first_day, last_day)
    }
    oldest_sendable, _ = policy.sendable_range(now)
    with database.session() as session:
        entries = session.exec(
            lock_rows(
                select(UsageLedgerEntry).where(
                    col(UsageLedgerEntry.hour_start) >= first_day,
                    col(UsageLedgerEntry.hour_start) < last_day,
                    col(UsageLedgerEntry.status).in_([LedgerStatus.UNKNOWN, LedgerStatus.ACCEPTED]),
                )
            )
        ).all()
        groups: dict[GroupKey, list[UsageLedgerEntry]] = defaultdict(list)
        for entry in entries:
            groups[group_key(entry)].append(entry)
        for key, members in groups.items():
            unknown_members = [entry for entry in members if entry.status == LedgerStatus.UNKNOWN]
            if not unknown_members:
                continue
            accepted_here = len(members) - len(unknown_members)
            aggregate = held.get(key)
            arrived = (aggregate.submitted_count if aggregate else 0) - accepted_here
            if arrived == len(unknown_members):
                for entry in unknown_members:
                    move_entry(session, entry, LedgerStatus.ACCEPTED, now, reason="settled through usage retrieval")
                summary.add(LedgerStatus.ACCEPTED, len(unknown_members))
                continue
            if 0 < arrived < len(unknown_members):
                logger.info(
                    "usage retrieval holds part of the unknown hours; they are sent again to learn which",
                    extra={"group": [str(part) for part in key], "arrived": arrived, "unknown": len(unknown_members)},
                )
            for entry in unknown_members:
                if entry.hour_start < oldest_sendable and arrived <= 0:
                    move_entry(session, entry, LedgerStatus.EXPIRED, now, reason="lost answer; not held by Marketplace")
                    summary.add(LedgerStatus.EXPIRED, 1)
                else:
                    move_entry(
                        session,
                        entry,
                        LedgerStatus.PENDING,
                        now,
                        reason="not held by Marketplace per usage retrieval",
                        settled=False,
                    )
                    summary.add(LedgerStatus.PENDING, 1)
    return summary
