"""The billing proof: every subscription is billed what its cluster measured inside its billable window.

Ground truth is the façade metrics emulator (its curves are computed, so a read returns the same
samples the collector got). The window rule is applied here on its own, not through billing.window,
so a mistake there shows as a difference: usage counts from the later of the cluster's first ready
time and the subscription's activation until unsubscribe, minus suspensions the offer waives.

For every ledger hour, the measured quantity equals the aggregation (mean, sum, max) of the
in-window ground-truth samples, and the billed quantity follows from it, the entry's included
quantity and the dimension's precision and rounding. Every closed hour with usage above the
inclusion has an entry, where "closed" is per cluster: an hour closes once the cluster's usage was read
through its end (or through the end of its usage, or the cluster was deleted), so a cluster whose reads
failed at the last pass is checked up to its mark, and only if its failure is on the operators' lag list.
Per subscription and dimension, what Marketplace holds plus what the ledger
declared unsent (rejected or expired, with a reason) plus recorded adjustments equals the expected
sum, to the dimension's precision.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlmodel import col, select

from billing.collector import DIMENSION_MEASURES
from billing.quantities import billable_quantity, included_quantity
from core.catalog.models import Aggregation, MeteredDimension, Plan, PlanIncludedQuantity, Rounding
from core.clusters.models import Cluster, ClusterStatus
from core.db import Database
from core.subscriptions.models import MarketplaceSubscription, SubscriptionSuspension
from core.usage.models import LedgerStatus, UsageCollectionMark, UsageLedgerAdjustment, UsageLedgerEntry
from harness.scenario.invariants import InvariantResult

HOUR = timedelta(hours=1)
NAME = "every subscription billed its in-window usage, to each dimension's precision"
DECLARED_UNSENT = (LedgerStatus.REJECTED, LedgerStatus.EXPIRED)
# Clusters the collector reads at every pass, so their marks keep up unless a read fails.
SERVING = (ClusterStatus.READY, ClusterStatus.UPDATING)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _aggregate(values: list[float], aggregation: str) -> float:
    if aggregation == Aggregation.SUM.value:
        return sum(values)
    if aggregation == Aggregation.MAX.value:
        return max(values)
    return sum(values) / len(values)


def _in_window(
    moment: datetime,
    opens: datetime,
    closes: datetime | None,
    waived: list[tuple[datetime, datetime | None]],
) -> bool:
    if moment < opens or (closes is not None and moment >= closes):
        return False
    return not any(start <= moment and (end is None or moment < end) for start, end in waived)


def ground_truth(
    client: httpx.Client, url_template: str, cluster_name: str, start: datetime, end: datetime
) -> list[tuple[datetime, dict[str, float]]]:
    """The emulator's samples in (start, end], one value per dimension each."""
    samples: list[tuple[datetime, dict[str, float]]] = []
    moment = start
    while moment < end:
        # The emulator answers at most a week per read.
        upper = min(moment + timedelta(days=6), end)
        response = client.get(
            url_template.format(cluster_name=cluster_name, endpoint_fqdn="", cluster_id=""),
            params={"start": moment.isoformat(), "end": upper.isoformat()},
        )
        response.raise_for_status()
        for point in response.json()["samples"]:
            sampled_at = datetime.fromisoformat(str(point["timestamp"]).replace("Z", "+00:00"))
            samples.append((sampled_at, {name: measure(point) for name, measure in DIMENSION_MEASURES.items()}))
        moment = upper
    return samples


def _closed_through(
    cluster: Cluster, mark: UsageCollectionMark | None, closes: datetime | None, closed_through: datetime | None
) -> datetime | None:
    """The newest hour start of this cluster surely closed: the run's close cutoff, held back to the hours its
    collection read to the end (all of them once it read past its unsubscribe, or once it is deleted)."""
    if closed_through is None or cluster.status == ClusterStatus.DELETED:
        return closed_through
    if mark is None or mark.collected_through is None or mark.complete_hours_before is None:
        return None
    if closes is not None and _utc(mark.collected_through) >= closes:
        return closed_through
    return min(_hour_of(closed_through), _utc(mark.complete_hours_before) - HOUR)


def billed_as_provided(
    database: Database,
    marketplace: dict[str, Any],
    facade: dict[str, Any],
    ca_bundle: str,
    *,
    closed_through: datetime | None,
    waiving_offers: frozenset[str],
) -> InvariantResult:
    """Check every SaaS subscription's cluster; `closed_through` is the newest hour surely closed."""
    problems: list[str] = []
    held: dict[tuple[str, str], float] = defaultdict(float)
    for event in marketplace["usage_events"]:
        held[(event["resourceId"], event["dimension"])] += float(event["quantity"])
    with database.session() as session:
        rows = session.exec(
            select(Cluster, MarketplaceSubscription).join(
                MarketplaceSubscription, col(MarketplaceSubscription.id) == col(Cluster.subscription_id)
            )
        ).all()
        suspensions: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
        for period in session.exec(select(SubscriptionSuspension)).all():
            suspensions[period.subscription_id].append(
                (_utc(period.suspended_at), _utc(period.reinstated_at) if period.reinstated_at else None)
            )
        dimensions = {
            (dimension.offer_id, dimension.dimension_id): dimension
            for dimension in session.exec(select(MeteredDimension)).all()
        }
        plans = {(plan.offer_id, plan.plan_id): plan for plan in session.exec(select(Plan)).all()}
        included = {
            (row.plan_pk, row.dimension_pk): row.included_per_hour_per_unit
            for row in session.exec(select(PlanIncludedQuantity)).all()
        }
        entries = session.exec(select(UsageLedgerEntry)).all()
        marks = {mark.cluster_id: mark for mark in session.exec(select(UsageCollectionMark)).all()}
        adjustments = session.exec(
            select(UsageLedgerAdjustment).order_by(col(UsageLedgerAdjustment.samples_received_through))
        ).all()
    latest_adjustment = {adjustment.ledger_entry_id: adjustment for adjustment in adjustments}
    entries_by_cluster: dict[str, list[UsageLedgerEntry]] = defaultdict(list)
    for entry in entries:
        if entry.cluster_id is not None:
            entries_by_cluster[entry.cluster_id].append(entry)

    checked = 0
    with httpx.Client(verify=ca_bundle, timeout=60) as client:
        for cluster, subscription in rows:
            label = f"subscription {subscription.id}"
            if cluster.first_ready_at is None or subscription.activated_at is None:
                for entry in entries_by_cluster[cluster.id]:
                    problems.append(
                        f"{label}: {entry.dimension_id} billed for {entry.hour_start:%Y-%m-%dT%H}h, never live"
                    )
                continue
            checked += 1
            opens = max(_utc(cluster.first_ready_at), _utc(subscription.activated_at))
            closes = _utc(subscription.unsubscribed_at) if subscription.unsubscribed_at else None
            waived = suspensions[subscription.id] if subscription.offer_id in waiving_offers else []
            cluster_entries = entries_by_cluster[cluster.id]
            cluster_closed_through = _closed_through(cluster, marks.get(cluster.id), closes, closed_through)
            if (
                closed_through is not None
                and (cluster_closed_through is None or cluster_closed_through < _hour_of(closed_through))
                and cluster.status in SERVING
                and (cluster.id not in marks or marks[cluster.id].failing_since is None)
            ):
                problems.append(
                    f"{label}: hours after {cluster_closed_through} wait unclosed, yet its collection is not "
                    "reported failing"
                )
            newest_entry = max((_utc(entry.hour_start) for entry in cluster_entries), default=None)
            last_hour = max(filter(None, [cluster_closed_through, newest_entry]), default=None)
            if last_hour is None:
                continue
            end = min(last_hour + HOUR, closes) if closes else last_hour + HOUR
            samples = ground_truth(
                client, facade["metrics_url_template"], cluster.name, _hour_of(opens) - timedelta(seconds=1), end
            )
            hourly: dict[tuple[str, datetime], list[float]] = defaultdict(list)
            for sampled_at, values in samples:
                if _in_window(sampled_at, opens, closes, waived):
                    for dimension_id, value in values.items():
                        hourly[(dimension_id, _hour_of(sampled_at))].append(value)
            problems.extend(
                _compare(
                    label,
                    subscription,
                    cluster_entries,
                    hourly,
                    dimensions,
                    plans,
                    included,
                    latest_adjustment,
                    held,
                    cluster_closed_through,
                )
            )
    return InvariantResult(name=NAME, passed=not problems, checked=checked, problems=problems)


def _compare(
    label: str,
    subscription: MarketplaceSubscription,
    entries: list[UsageLedgerEntry],
    hourly: dict[tuple[str, datetime], list[float]],
    dimensions: dict[tuple[str, str], MeteredDimension],
    plans: dict[tuple[str, str], Plan],
    included: dict[tuple[int, int], float],
    latest_adjustment: dict[int, UsageLedgerAdjustment],
    held: dict[tuple[str, str], float],
    closed_through: datetime | None,
) -> list[str]:
    problems: list[str] = []
    expected_sum: dict[str, float] = defaultdict(float)
    accounted_sum: dict[str, float] = defaultdict(float)
    by_key = {(entry.dimension_id, _utc(entry.hour_start)): entry for entry in entries}
    for (dimension_id, hour), entry in by_key.items():
        dimension = dimensions[(subscription.offer_id, dimension_id)]
        values = hourly.get((dimension_id, hour))
        if not values:
            problems.append(f"{label}: {dimension_id} billed for {hour:%Y-%m-%dT%H}h, outside its window")
            continue
        measured = _aggregate(values, dimension.aggregation)
        expected = billable_quantity(
            measured, entry.included_quantity, dimension.precision, Rounding(dimension.rounding)
        )
        adjustment = latest_adjustment.get(entry.id or 0)
        recorded = entry.billable_quantity + (adjustment.billable_delta if adjustment else 0.0)
        if round(recorded - expected, dimension.precision) != 0:
            problems.append(
                f"{label}: {dimension_id} {hour:%Y-%m-%dT%H}h billed {entry.billable_quantity}"
                f"{f' adjusted by {adjustment.billable_delta}' if adjustment else ''}, expected {expected} "
                f"(measured {measured:.6f} from {len(values)} in-window sample(s))"
            )
        expected_sum[dimension_id] += expected
        if entry.status in DECLARED_UNSENT:
            accounted_sum[dimension_id] += recorded
        elif adjustment is not None:
            accounted_sum[dimension_id] += adjustment.billable_delta
    # Closed hours with usage above the inclusion must have an entry (the plan as the subscription holds it now).
    plan = plans.get((subscription.offer_id, subscription.plan_id))
    for (dimension_id, hour), values in hourly.items():
        if (dimension_id, hour) in by_key or closed_through is None or hour > closed_through or plan is None:
            continue
        dimension = dimensions[(subscription.offer_id, dimension_id)]
        allowance = included_quantity(included.get((plan.id or 0, dimension.id or 0), 0.0), subscription.quantity or 1)
        missing = billable_quantity(
            _aggregate(values, dimension.aggregation), allowance, dimension.precision, Rounding(dimension.rounding)
        )
        if missing > 0:
            problems.append(f"{label}: {dimension_id} {hour:%Y-%m-%dT%H}h has {missing} billable but no ledger entry")
    for dimension_id, expected in expected_sum.items():
        precision = dimensions[(subscription.offer_id, dimension_id)].precision
        billed = held.get((subscription.id, dimension_id), 0.0) + accounted_sum[dimension_id]
        if round(billed - expected, precision) != 0:
            problems.append(
                f"{label}: {dimension_id} Marketplace holds {held.get((subscription.id, dimension_id), 0.0):.6f}, "
                f"declared unsent or adjusted {accounted_sum[dimension_id]:.6f}, expected {expected:.6f}"
            )
    return problems
