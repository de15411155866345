"""Gauges computed from the database at scrape time: the same answer from every API process.

Each query reads one table that may belong to a capability not migrated yet on this database;
a table that is missing is skipped rather than failing the whole scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.clock import utc_now
from core.db import Database

logger = logging.getLogger(__name__)

# (metric name, help, SQL grouping by the label columns, label names)
_GROUPED_COUNTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "cp_marketplace_operations",
        "Marketplace operations by processing state and result",
        "SELECT state, COALESCE(result, ''), COUNT(*) FROM marketplace_operations GROUP BY state, result",
        ("state", "result"),
    ),
    (
        "cp_clusters",
        "Clusters by observed status",
        "SELECT status, COUNT(*) FROM clusters GROUP BY status",
        ("status",),
    ),
    (
        "cp_usage_ledger_entries",
        "Usage ledger entries by status",
        "SELECT status, COUNT(*) FROM usage_ledger_entries GROUP BY status",
        ("status",),
    ),
    (
        "cp_reconciliation_differences",
        "Usage reconciliation differences found, by kind",
        "SELECT kind, COUNT(*) FROM usage_reconciliation_differences GROUP BY kind",
        ("kind",),
    ),
    (
        "cp_arm_deployments",
        "ARM deployments of controller steps, by step and state",
        "SELECT step, state, COUNT(*) FROM arm_deployments GROUP BY step, state",
        ("step", "state"),
    ),
    (
        "cp_cluster_drift",
        "Open drifts of clusters (their Azure resources changed out of band), by kind",
        "SELECT d.kind, COUNT(*) FROM cluster_drifts d JOIN clusters c ON c.id = d.cluster_id"
        " WHERE d.state = 'open' AND c.status <> 'deleted' GROUP BY d.kind",
        ("kind",),
    ),
    (
        "cp_audit_events",
        "Audit events recorded, by outcome",
        "SELECT outcome, COUNT(*) FROM audit_events GROUP BY outcome",
        ("outcome",),
    ),
)


class DatabaseGaugeCollector(Collector):
    """Queue depth, outbox lag and state counts, read from the tables when Prometheus scrapes."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        """One read-only connection per scrape; each gauge family from one query."""
        with self.database.engine.connect() as connection:
            yield from self._outbox(connection)
            for name, documentation, query, labels in _GROUPED_COUNTS:
                family = GaugeMetricFamily(name, documentation, labels=list(labels))
                try:
                    rows = connection.execute(sa.text(query)).all()
                except sa.exc.DatabaseError:
                    # The table belongs to a capability this database has not migrated; skip it.
                    connection.rollback()
                    logger.debug("metrics table missing", extra={"metric": name})
                    continue
                for *label_values, count in rows:
                    family.add_metric([str(value) for value in label_values], float(count))
                yield family

    def _outbox(self, connection: sa.Connection) -> Iterator[Metric]:
        backlog = connection.execute(
            sa.text("SELECT COUNT(*) FROM outbox_messages WHERE completed_at IS NULL AND dead_lettered_at IS NULL")
        ).scalar_one()
        # Live rows only: a dead letter waits for an operator, not for the relay, and is counted apart.
        oldest = connection.execute(
            sa.text(
                "SELECT MIN(created_at) FROM outbox_messages"
                " WHERE completed_at IS NULL AND dispatched_at IS NULL AND dead_lettered_at IS NULL"
            )
        ).scalar_one()
        dead = connection.execute(
            sa.text("SELECT COUNT(*) FROM outbox_messages WHERE completed_at IS NULL AND dead_lettered_at IS NOT NULL")
        ).scalar_one()
        yield GaugeMetricFamily(
            "cp_outbox_backlog", "Outbox messages not completed (queue depth)", value=float(backlog)
        )
        yield GaugeMetricFamily(
            "cp_outbox_lag_seconds",
            "Age of the oldest outbox message not dispatched yet (0 when none waits)",
            value=_age_seconds(oldest),
        )
        yield GaugeMetricFamily(
            "cp_outbox_dead_letters",
            "Outbox messages that gave up and wait for an operator (retry or dismiss on the stuck-work page)",
            value=float(dead),
        )


def _age_seconds(value: datetime | str | None) -> float:
    if value is None:
        return 0.0
    # Raw SQL on SQLite hands back text; PostgreSQL hands back an aware datetime.
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (utc_now() - moment).total_seconds())
