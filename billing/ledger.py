"""The hourly ledger: raw samples become one entry per (resource, dimension, hour), set-based in SQL.

An hour closes `grace` after it ends. Closing is one INSERT ... SELECT ... GROUP BY with ON CONFLICT
DO NOTHING: it applies each dimension's aggregation (mean, sum, max), the plan's included quantity
(per hour per unit times the purchased quantity), and the dimension's precision and rounding. Running
it again, or over replayed samples, adds nothing. Hours with nothing above the included quantity get
no entry (Marketplace takes only positive quantities).

An hour of a cluster closes only once the collector has read the cluster through the hour's end (its mark in
usage_collection_marks), or through the instant its usage stopped counting (unsubscribed, or a suspension the
offer waives; its last partial hour), or when the cluster is deleted (nothing more can come). A cluster whose
metrics cannot be read keeps its hours open, listed for operators (billing.reports.collection_lag), instead of
billing them without their samples.

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
from billing.window import usage_stopped_at
from core.catalog.models import Aggregation, MeteredDimension, Plan, PlanIncludedQuantity
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.columns import UTCDateTime
from core.db import insert_ignoring_conflicts
from core.managed_apps.models import ManagedApplication
from core.subscriptions.models import MarketplaceSubscription
from core.usage.models import (
    LedgerStatus,
    ResourceKind,
    UsageCollectionMark,
    UsageLedgerAdjustment,
    UsageLedgerEntry,
    UsageSample,
)

HOUR = timedelta(hours=1)
# Memory for the close's sort of its new entries (PostgreSQL's default 4 MB spilled 215k entries to disk).
CLOSE_WORK_MEM = "64MB"


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
    waiving_offers: frozenset[str] = frozenset(),
) -> CloseResult:
    """Create the entries of every closed hour in [since, cutoff], then adjustments (flushes; the caller commits).

    `waiving_offers` are the offers whose catalog waives suspended usage: a suspension of theirs ends a cluster's
    usage, so its last partial hour closes once read through the suspension.
    """
    now = now or utc_now()
    cutoff = close_cutoff(now, grace)
    if until is not None:
        cutoff = min(cutoff, until)
    created = create_entries(session, now=now, since=since, cutoff=cutoff, waiving_offers=waiving_offers)
    adjustments = record_adjustments(session, now=now, since=since)
    session.flush()
    return CloseResult(cutoff=cutoff, entries_created=created, adjustments_recorded=adjustments)


def billing_terms(waiving_offers: frozenset[str]) -> sa.Select[tuple[object, ...]]:
    """Per (cluster, dimension): what an hour of it bills under and whether it may close, from the few small tables.

    The resource and plan (the subscription's, else the managed application's, else the cluster's), the
    dimension's aggregation, precision and rounding, the plan's included quantity times the purchased quantity;
    and how far the cluster's hours may close: before `complete_hours_before` (its collection's mark), before
    `stopped_at` once the collection read past the end of its usage, or all of them once it is deleted.
    """
    clusters = table_of(Cluster)
    subscriptions = table_of(MarketplaceSubscription)
    applications = table_of(ManagedApplication)
    plans = table_of(Plan)
    dimensions = table_of(MeteredDimension)
    included = table_of(PlanIncludedQuantity)
    marks = table_of(UsageCollectionMark)
    open_suspensions, stopped_at = usage_stopped_at(waiving_offers)

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
    return (
        sa.select(
            clusters.c.id.label("cluster_id"),
            dimensions.c.dimension_id,
            resource_id.label("resource_id"),
            resource_kind.label("resource_kind"),
            plan_id.label("plan_id"),
            dimensions.c.aggregation,
            dimensions.c.precision,
            dimensions.c.rounding,
            (sa.func.coalesce(included.c.included_per_hour_per_unit, 0.0) * plan_quantity).label("included_quantity"),
            # Nothing more can come from a deleted cluster.
            (clusters.c.status == ClusterStatus.DELETED).label("deleted"),
            marks.c.complete_hours_before,
            sa.case((stopped_at <= marks.c.collected_through, stopped_at), else_=None).label("stopped_at"),
        )
        .select_from(clusters)
        .outerjoin(subscriptions, subscriptions.c.id == clusters.c.subscription_id)
        .outerjoin(applications, applications.c.application_id == clusters.c.managed_application_id)
        .join(
            plans,
            sa.and_(
                plans.c.plan_id == plan_id,
                plans.c.offer_id == sa.func.coalesce(subscriptions.c.offer_id, plans.c.offer_id),
            ),
        )
        .join(dimensions, dimensions.c.offer_id == plans.c.offer_id)
        .outerjoin(included, sa.and_(included.c.plan_pk == plans.c.id, included.c.dimension_pk == dimensions.c.id))
        .outerjoin(marks, marks.c.cluster_id == clusters.c.id)
        .outerjoin(open_suspensions, open_suspensions.c.subscription_id == clusters.c.subscription_id)
        .where(resource_id.is_not(None))
    )


def create_entries(
    session: Session,
    *,
    now: datetime,
    since: datetime | None,
    cutoff: datetime,
    waiving_offers: frozenset[str] = frozenset(),
) -> int:
    """One INSERT ... SELECT: an entry per billable (resource, dimension, hour) in [since, cutoff] not yet held.

    The hourly aggregates are joined once, on (cluster, dimension), to the billing terms (`billing_terms`: a few
    rows per cluster, built from the small tables first), rather than row by row to each catalog table. On
    PostgreSQL both are MATERIALIZED CTEs, so the GROUP BY is the plain GROUP BY's plan and the planner does not
    misjudge the joins' sizes; the rows are inserted in the order of the ledger's unique key (hour first), so
    its index grows at its right edge; JIT is off for the statement (compiling its expressions took most of a
    second) and the sort gets the memory to stay off disk. Profiled at 1.08M samples (README, Known gaps).
    """
    postgresql = session.get_bind().dialect.name == "postgresql"
    hourly: sa.Subquery | sa.CTE
    terms: sa.Subquery | sa.CTE
    if postgresql:
        hourly = hourly_select(since, cutoff).cte("hourly").prefix_with("MATERIALIZED")
        terms = billing_terms(waiving_offers).cte("terms").prefix_with("MATERIALIZED")
        session.execute(sa.text("SET LOCAL jit = off"))
        session.execute(sa.text(f"SET LOCAL work_mem = '{CLOSE_WORK_MEM}'"))
    else:
        hourly = hourly_aggregates(since, cutoff)
        terms = billing_terms(waiving_offers).subquery("terms")
    measured = measured_quantity(terms.c.aggregation, hourly)
    billable = billable_quantity_sql(measured, terms.c.included_quantity, terms.c.precision, terms.c.rounding)
    read_through = sa.or_(
        terms.c.deleted,
        hourly.c.hour_start < terms.c.complete_hours_before,
        hourly.c.hour_start < terms.c.stopped_at,
    )
    selection = (
        sa.select(
            terms.c.resource_id,
            terms.c.resource_kind,
            terms.c.cluster_id,
            hourly.c.dimension_id,
            terms.c.plan_id,
            hourly.c.hour_start,
            measured,
            terms.c.included_quantity,
            billable,
            sa.literal(LedgerStatus.PENDING),
            sa.literal(now, UTCDateTime()),
        )
        .select_from(hourly)
        .join(
            terms,
            sa.and_(terms.c.cluster_id == hourly.c.cluster_id, terms.c.dimension_id == hourly.c.dimension_id),
        )
        .where(read_through, billable > 0)
        .order_by(hourly.c.hour_start, terms.c.resource_id, hourly.c.dimension_id)
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
