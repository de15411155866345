"""The hourly ledger: raw samples become one entry per (resource, dimension, hour), set-based in SQL.

An hour closes `grace` after it ends. Closing is one INSERT ... SELECT ... GROUP BY with ON CONFLICT
DO NOTHING: it applies each dimension's aggregation (mean, sum, max), the plan's included quantity
(per hour per unit times the purchased quantity), and the dimension's precision and rounding. Running
it again, or over replayed samples, adds nothing. Hours with nothing above the included quantity get
no entry (Marketplace takes only positive quantities).

Samples that reach a closed hour later never change its entry: the same aggregation, run over the
entries whose samples changed, writes an adjustment beside the entry for the operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from billing.quantities import billable_quantity_sql
from billing.sql_inserts import execute_insert_counting, table_of
from core.catalog.models import Aggregation, MeteredDimension, Plan, PlanIncludedQuantity
from core.clock import utc_now
from core.clusters.models import Cluster
from core.columns import UTCDateTime
from core.db import insert_ignoring_conflicts
from core.managed_apps.models import ManagedApplication
from core.subscriptions.models import MarketplaceSubscription
from core.usage.models import LedgerStatus, ResourceKind, UsageLedgerAdjustment, UsageLedgerEntry, UsageSample

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class CloseResult:
    """What one close run wrote."""

    cutoff: datetime
    entries_created: int
    adjustments_recorded: int


def close_cutoff(now: datetime, grace: timedelta) -> datetime:
    """Hours starting at or before this instant are closed: they ended at least `grace` ago."""
    return now - grace - HOUR


def hourly_aggregates(since: datetime | None, cutoff: datetime | None) -> sa.Subquery:
    """Mean, sum, max and newest arrival of the samples per (cluster, dimension, hour): the one heavy GROUP BY."""
    return hourly_select(since, cutoff).subquery("hourly")


def hourly_select(since: datetime | None, cutoff: datetime | None) -> sa.Select[tuple[object, ...]]:
    """The GROUP BY of `hourly_aggregates` as a SELECT, for callers that embed it as a CTE."""
    samples = table_of(UsageSample)
    conditions: list[sa.ColumnElement[bool]] = []
    if cutoff is not None:
        conditions.append(samples.c.hour_start <= cutoff)
    if since is not None:
        conditions.append(samples.c.hour_start >= since)
    return (
        sa.select(
            samples.c.cluster_id,
            samples.c.dimension_id,
            samples.c.hour_start,
            sa.func.avg(samples.c.value).label("mean_value"),
            sa.func.sum(samples.c.value).label("total_value"),
            sa.func.max(samples.c.value).label("max_value"),
            sa.func.max(samples.c.received_at).label("newest_received_at"),
        )
        .where(*conditions)
        .group_by(samples.c.cluster_id, samples.c.dimension_id, samples.c.hour_start)
    )


def measured_quantity(aggregation: sa.ColumnElement[str], hourly: sa.Subquery | sa.CTE) -> sa.ColumnElement[float]:
    """The dimension's aggregation picked from the hourly aggregates."""
    return sa.case(
        (aggregation == Aggregation.SUM.value, hourly.c.total_value),
        (aggregation == Aggregation.MAX.value, hourly.c.max_value),
        else_=hourly.c.mean_value,
    )


def close_hours(
    session: Session,
    *,
    now: datetime | None = None,
    grace: timedelta,
    since: datetime | None = None,
    until: datetime | None = None,
) -> CloseResult:
    """Create the entries of every closed hour in [since, cutoff], then adjustments (flushes; the caller commits)."""
    now = now or utc_now()
    cutoff = close_cutoff(now, grace)
    if until is not None:
        cutoff = min(cutoff, until)
    created = create_entries(session, now=now, since=since, cutoff=cutoff)
    adjustments = record_adjustments(session, now=now, since=since)
    session.flush()
    return CloseResult(cutoff=cutoff, entries_created=created, adjustments_recorded=adjustments)


def create_entries(session: Session, *, now: datetime, since: datetime | None, cutoff: datetime) -> int:
    """One INSERT ... SELECT: an entry per billable (resource, dimension, hour) in [since, cutoff] not yet held.

    On PostgreSQL the GROUP BY is a MATERIALIZED CTE, aggregated as the plain GROUP BY is (the same plan),
    then hash-joined to the few cluster rows; inlined, the planner misjudged the joins' sizes and chose a
    merge join and nested loops around it. The rows are inserted in the order of the ledger's unique key, so
    its index grows at its right edge per resource instead of at random pages, and JIT is off for the
    statement (compiling its expressions took most of a second per close). Profiled at 1.08M samples, what
    remains beyond the GROUP BY is inserting the entries into the ledger's indexes (README, Known gaps).
    """
    postgresql = session.get_bind().dialect.name == "postgresql"
    hourly: sa.Subquery | sa.CTE
    if postgresql:
        hourly = hourly_select(since, cutoff).cte("hourly").prefix_with("MATERIALIZED")
        session.execute(sa.text("SET LOCAL jit = off"))
    else:
        hourly = hourly_aggregates(since, cutoff)
    clusters = table_of(Cluster)
    subscriptions = table_of(MarketplaceSubscription)
    applications = table_of(ManagedApplication)
    plans = table_of(Plan)
    dimensions = table_of(MeteredDimension)
    included = table_of(PlanIncludedQuantity)

    plan_id = sa.func.coalesce(
        subscriptions.c.plan_id, applications.c.plan_id, clusters.c.observed_plan_id, clusters.c.desired_plan_id
    )
    plan_quantity = sa.func.coalesce(
        subscriptions.c.quantity, clusters.c.observed_quantity, clusters.c.desired_quantity
    )
    resource_id = sa.func.coalesce(clusters.c.subscription_id, applications.c.resource_usage_id)
    resource_kind = sa.case(
        (clusters.c.subscription_id.is_not(None), ResourceKind.SAAS.value), else_=ResourceKind.MANAGED_APP.value
    )
    measured = measured_quantity(dimensions.c.aggregation, hourly)
    included_quantity = sa.func.coalesce(included.c.included_per_hour_per_unit, 0.0) * plan_quantity
    billable = billable_quantity_sql(measured, included_quantity, dimensions.c.precision, dimensions.c.rounding)

    selection = (
        sa.select(
            resource_id,
            resource_kind,
            clusters.c.id,
            hourly.c.dimension_id,
            plan_id,
            hourly.c.hour_start,
            measured,
            included_quantity,
            billable,
            sa.literal(LedgerStatus.PENDING),
            sa.literal(now, UTCDateTime()),
        )
        .select_from(hourly)
        .join(clusters, clusters.c.id == hourly.c.cluster_id)
        .outerjoin(subscriptions, subscriptions.c.id == clusters.c.subscription_id)
        .outerjoin(applications, applications.c.application_id == clusters.c.managed_application_id)
        .join(
            plans,
            sa.and_(
                plans.c.plan_id == plan_id,
                plans.c.offer_id == sa.func.coalesce(subscriptions.c.offer_id, plans.c.offer_id),
            ),
        )
        .join(
            dimensions,
            sa.and_(dimensions.c.offer_id == plans.c.offer_id, dimensions.c.dimension_id == hourly.c.dimension_id),
        )
        .outerjoin(included, sa.and_(included.c.plan_pk == plans.c.id, included.c.dimension_pk == dimensions.c.id))
        .where(resource_id.is_not(None), billable > 0)
        .order_by(resource_id, hourly.c.dimension_id, hourly.c.hour_start)
    )
    ledger = table_of(UsageLedgerEntry)
    statement = insert_ignoring_conflicts(session, ledger).from_select(
        [
            "resource_id",
            "resource_kind",
            "cluster_id",
            "dimension_id",
            "plan_id",
            "hour_start",
            "measured_quantity",
            "included_quantity",
            "billable_quantity",
            "status",
            "created_at",
        ],
        selection,
    )
    return execute_insert_counting(session, statement, ledger)


def record_adjustments(session: Session, *, now: datetime, since: datetime | None) -> int:
    """Write an adjustment for each entry whose hour received samples after it was created and now bills differently."""
    hourly = hourly_aggregates(since, None)
    ledger = table_of(UsageLedgerEntry)
    plans = table_of(Plan)
    dimensions = table_of(MeteredDimension)
    measured = measured_quantity(dimensions.c.aggregation, hourly)
    corrected = billable_quantity_sql(
        measured, ledger.c.included_quantity, dimensions.c.precision, dimensions.c.rounding
    )
    selection = (
        sa.select(
            ledger.c.id,
            hourly.c.newest_received_at,
            measured,
            corrected,
            corrected - ledger.c.billable_quantity,
            sa.literal(now, UTCDateTime()),
        )
        .select_from(ledger)
        .join(
            hourly,
            sa.and_(
                hourly.c.cluster_id == ledger.c.cluster_id,
                hourly.c.dimension_id == ledger.c.dimension_id,
                hourly.c.hour_start == ledger.c.hour_start,
            ),
        )
        .join(plans, plans.c.plan_id == ledger.c.plan_id)
        .join(
            dimensions,
            sa.and_(dimensions.c.offer_id == plans.c.offer_id, dimensions.c.dimension_id == ledger.c.dimension_id),
        )
        .where(
            hourly.c.newest_received_at > ledger.c.created_at,
            corrected != ledger.c.billable_quantity,
            # Implied by the join (hourly holds hours from `since` on); said so the ledger's hour index bounds it.
            *([ledger.c.hour_start >= since] if since is not None else []),
        )
    )
    statement = insert_ignoring_conflicts(session, table_of(UsageLedgerAdjustment)).from_select(
        [
            "ledger_entry_id",
            "samples_received_through",
            "corrected_measured_quantity",
            "corrected_billable_quantity",
            "billable_delta",
            "created_at",
        ],
        selection,
    )
    return execute_insert_counting(session, statement, table_of(UsageLedgerAdjustment))
