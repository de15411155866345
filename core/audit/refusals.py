"""Audit refused requests as tallies, in their own unit of work, so the refusal is kept when the request rolls back.

A refused request (a bad webhook token, a wrong managed-app `sig`, a body that is not a notification) is counted
in one audit row per action, source, reason and minute: the first refusal inserts the row, the next ones add to
its `occurrences` in the same statement (INSERT ... ON CONFLICT DO UPDATE on the aggregation key), so a flood
costs one row a minute per source and reason, and concurrent API processes agree on the row. The row keeps the
details of the first refusal of its minute as an example. The source is the peer address as the rate limiter
sees it (IPv6 by /64), so the same flood also spends the sender's rate bucket.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.audit.actions import AuditAction
from core.audit.models import AuditEvent, AuditOutcome
from core.clock import utc_now
from core.correlation import current_correlation_id
from core.db import Database
from core.redaction import redact_value

SOURCE_SUBJECT_TYPE = "request_source"
MAX_SOURCE_CHARACTERS = 128
MAX_REASON_CHARACTERS = 256
_audit_events: sa.Table = AuditEvent.__table__  # type: ignore[attr-defined]
# Quoted values and numbers in a refusal's message come from the request (an algorithm name, a JSON error's
# position): masked, they cannot make every refusal a tally of its own.
_REQUEST_PARTS = re.compile(r"'[^']*'|\"[^\"]*\"|\d+")


def refusal_category(reason: str) -> str:
    """The reason as tallies group it: the message with what the request chose masked."""
    return _REQUEST_PARTS.sub("…", reason)[:MAX_REASON_CHARACTERS]


def refusal_window(moment: datetime) -> datetime:
    """The minute a refusal is counted in."""
    return moment.replace(second=0, microsecond=0)


def aggregation_key(action: str, source: str, reason: str, window: datetime) -> str:
    """The tally's identity: SHA-256 of action, source, reason and minute (fixed length, any input)."""
    material = "\n".join((action, source, reason, window.isoformat()))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def record_refusal(
    database: Database,
    *,
    actor: str,
    action: AuditAction,
    source: str,
    reason: str,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Count one refused request in its minute's tally (created with these details when it is the first).

    `reason` is the message the sender got; the first one of a tally is kept verbatim as its example.
    """
    moment = now or utc_now()
    source = source[:MAX_SOURCE_CHARACTERS]
    category = refusal_category(reason)
    row = {
        "occurred_at": moment,
        "actor": actor,
        "action": str(action),  # the row holds the plain value
        "subject_type": SOURCE_SUBJECT_TYPE,
        "subject_id": source,
        "outcome": AuditOutcome.REFUSED,
        "details": redact_value({"reason": reason[:MAX_REASON_CHARACTERS], "category": category, **(details or {})}),
        "correlation_id": current_correlation_id(),
        "aggregation_key": aggregation_key(str(action), source, category, refusal_window(moment)),
        "occurrences": 1,
    }
    with database.engine.begin() as connection:
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        statement = insert(_audit_events).values(row)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["aggregation_key"],
                set_={"occurrences": _audit_events.c.occurrences + 1},
            )
        )
