"""SLO status, time series and burn-rate alerts per cluster, for the JSON API, the portal and the scheduler.

Objectives per cluster: availability (probe checks that succeeded) and latency (checks that succeeded
under the threshold), from `blob_probe_samples`. Control-plane objectives from the audit trail: time
to provision (cluster.requested -> first cluster.ready) and time to apply a change
(cluster.desired_spec_changed -> the next cluster.ready). Alerts are audit events `slo.burn_rate_alert`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.audit.actions import AuditAction
from core.audit.models import AuditEvent, AuditOutcome
from core.audit.service import record_audit_event
from core.clock import utc_now
from core.clusters.models import Cluster
from core.errors import NotFound, ValidationFailed
from core.identity.principal import Principal
from core.paging import Page, PageRequest, capped_count
from core.probes.models import BlobProbeSample
from core.settings import Settings
from core.slo.objectives import BURN_RATE_RULES, Tally, burn_rate, error_budget_remaining, rule_fires
from core.tenants.models import Tenant

BURN_RATE_WINDOWS = {
    "5m": timedelta(minutes=5),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
}
MAX_SERIES_HOURS = 24 * 31
MAX_SERIES_POINTS = 1000


@dataclass(frozen=True)
class ObjectiveSpec:
    """Which samples count as good for an objective, and its target."""

    name: str
    target: float
    latency_threshold_ms: float | None = None

    def good_filter(self) -> sa.ColumnElement[bool]:
        good: sa.ColumnElement[bool] = col(BlobProbeSample.succeeded).is_(True)
        if self.latency_threshold_ms is not None:
            good = sa.and_(good, col(BlobProbeSample.latency_ms) <= self.latency_threshold_ms)
        return good


def objective_specs(settings: Settings) -> list[ObjectiveSpec]:
    """The probe-based objectives configured for every cluster."""
    return [
        ObjectiveSpec("availability", settings.slo_availability_objective),
        ObjectiveSpec("latency", settings.slo_latency_objective, settings.slo_latency_threshold_ms),
    ]


def visible_cluster(session: Session, principal: Principal, cluster_id: str) -> Cluster:
    """The cluster if the caller may see it: operators see all, customer admins their tenant's (else NotFound)."""
    statement = select(Cluster).where(Cluster.id == cluster_id)
    if not principal.is_operator:
        statement = statement.join(Tenant, col(Tenant.id) == col(Cluster.tenant_id)).where(
            Tenant.entra_tenant_id == principal.entra_tenant_id
        )
    cluster = session.exec(statement).first()
    if cluster is None:
        raise NotFound(f"cluster {cluster_id} not found")
    return cluster


def visible_clusters(session: Session, principal: Principal) -> list[Cluster]:
    """Every cluster the caller may see."""
    statement = select(Cluster).order_by(col(Cluster.created_at))
    if not principal.is_operator:
        statement = statement.join(Tenant, col(Tenant.id) == col(Cluster.tenant_id)).where(
            Tenant.entra_tenant_id == principal.entra_tenant_id
        )
    return list(session.exec(statement).all())


def visible_clusters_page(session: Session, principal: Principal, page: PageRequest) -> Page[Cluster]:
    """One page of the clusters the caller may see, oldest first, with their number (capped)."""
    statement = select(Cluster)
    if not principal.is_operator:
        statement = statement.join(Tenant, col(Tenant.id) == col(Cluster.tenant_id)).where(
            Tenant.entra_tenant_id == principal.entra_tenant_id
        )
    total, capped = capped_count(session, statement)
    rows = session.exec(
        statement.order_by(col(Cluster.created_at), col(Cluster.id)).offset(page.offset).limit(page.size)
    ).all()
    return Page(list(rows), page, total, capped)


def probe_tally(session: Session, cluster_id: str, spec: ObjectiveSpec, since: datetime, until: datetime) -> Tally:
    """Good and total probe samples of one cluster in [since, until)."""
    good = sa.func.sum(sa.case((spec.good_filter(), 1), else_=0))
    statement = select(sa.func.count(), good).where(
        BlobProbeSample.cluster_id == cluster_id, BlobProbeSample.probed_at >= since, BlobProbeSample.probed_at < until
    )
    total, good_count = session.exec(statement).one()
    return Tally(good=int(good_count or 0), total=int(total or 0))


def cluster_slo_status(
    session: Session, settings: Settings, cluster: Cluster, now: datetime | None = None
) -> dict[str, Any]:
    """Attainment, error budget and burn rates per objective, the latest probe run, and control-plane timings."""
    now = now or utc_now()
    window_start = now - timedelta(days=settings.slo_window_days)
    objectives = []
    for spec in objective_specs(settings):
        tally = probe_tally(session, cluster.id, spec, window_start, now)
        rates = {
            label: burn_rate(probe_tally(session, cluster.id, spec, now - span, now), spec.target)
            for label, span in BURN_RATE_WINDOWS.items()
        }
        objectives.append(
            {
                "name": spec.name,
                "target": spec.target,
                "latency_threshold_ms": spec.latency_threshold_ms,
                "window_days": settings.slo_window_days,
                "good": tally.good,
                "total": tally.total,
                "attainment": tally.attainment,
                "error_budget_remaining": error_budget_remaining(tally, spec.target),
                "burn_rates": rates,
                "met": None if tally.attainment is None else tally.attainment >= spec.target,
            }
        )
    return {
        "cluster_id": cluster.id,
        "cluster_name": cluster.name,
        "status": cluster.status,
        "evaluated_at": now.isoformat(),
        "objectives": objectives,
        "latest_probe": latest_probe_run(session, cluster.id),
        "control_plane": control_plane_timings(session, settings, cluster.id),
        "recent_alerts": recent_alerts(session, cluster.id, since=window_start),
    }


def latest_probe_run(session: Session, cluster_id: str) -> dict[str, Any] | None:
    """The checks of the newest probe run, and the exact check that failed if one did."""
    newest = session.exec(
        select(BlobProbeSample.run_id)
        .where(BlobProbeSample.cluster_id == cluster_id)
        .order_by(col(BlobProbeSample.probed_at).desc(), col(BlobProbeSample.id).desc())
        .limit(1)
    ).first()
    if newest is None:
        return None
    samples = session.exec(
        select(BlobProbeSample).where(BlobProbeSample.run_id == newest).order_by(col(BlobProbeSample.id))
    ).all()
    failed = next((sample for sample in samples if not sample.succeeded), None)
    return {
        "run_id": newest,
        "probed_at": samples[0].probed_at.isoformat(),
        "passed": failed is None,
        "failed_check": None
        if failed is None
        else {"check": failed.check_name, "authentication": failed.authentication, "error_code": failed.error_code},
        "checks": [
            {
                "check": sample.check_name,
                "authentication": sample.authentication,
                "succeeded": sample.succeeded,
                "latency_ms": sample.latency_ms,
                "error_code": sample.error_code,
            }
            for sample in samples
        ],
    }


def control_plane_timings(session: Session, settings: Settings, cluster_id: str) -> dict[str, Any]:
    """Time to provision and times to apply changes, from the cluster's audit trail, against their objectives."""
    events = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.subject_type == "cluster",
            AuditEvent.subject_id == cluster_id,
            col(AuditEvent.action).in_(
                [AuditAction.CLUSTER_REQUESTED, AuditAction.CLUSTER_DESIRED_SPEC_CHANGED, AuditAction.CLUSTER_READY]
            ),
        )
        .order_by(col(AuditEvent.occurred_at), col(AuditEvent.id))
    ).all()
    provision_seconds: float | None = None
    change_seconds: list[float] = []
    requested_at: datetime | None = None
    change_started_at: datetime | None = None
    for event in events:
        if event.action == AuditAction.CLUSTER_REQUESTED:
            requested_at = event.occurred_at
        elif event.action == AuditAction.CLUSTER_DESIRED_SPEC_CHANGED and change_started_at is None:
            change_started_at = event.occurred_at
        elif event.action == AuditAction.CLUSTER_READY:
            if requested_at is not None and provision_seconds is None:
                provision_seconds = (event.occurred_at - requested_at).total_seconds()
            elif change_started_at is not None:
                change_seconds.append((event.occurred_at - change_started_at).total_seconds())
            change_started_at = None
    within = [seconds for seconds in change_seconds if seconds <= settings.slo_change_objective_seconds]
    return {
        "time_to_provision_seconds": provision_seconds,
        "time_to_provision_objective_seconds": settings.slo_provision_objective_seconds,
        "time_to_provision_met": None
        if provision_seconds is None
        else provision_seconds <= settings.slo_provision_objective_seconds,
        "changes_applied": len(change_seconds),
        "changes_within_objective": len(within),
        "change_objective_seconds": settings.slo_change_objective_seconds,
        "slowest_change_seconds": max(change_seconds) if change_seconds else None,
    }


def recent_alerts(session: Session, cluster_id: str, *, since: datetime) -> list[dict[str, Any]]:
    """Burn-rate alerts recorded for the cluster since `since`, newest first."""
    events = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.action == AuditAction.SLO_BURN_RATE_ALERT,
            AuditEvent.subject_id == cluster_id,
            AuditEvent.occurred_at >= since,
        )
        .order_by(col(AuditEvent.occurred_at).desc())
        .limit(50)
    ).all()
    return [{"occurred_at": event.occurred_at.isoformat(), **event.details} for event in events]


def cluster_time_series(
    session: Session,
    settings: Settings,
    cluster: Cluster,
    *,
    hours: float,
    bucket_minutes: float,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Per bucket: checks, good checks per objective and the slowest successful latency, for charts."""
    if not 0 < hours <= MAX_SERIES_HOURS:
        raise ValidationFailed(f"hours must be in (0, {MAX_SERIES_HOURS}]")
    if bucket_minutes <= 0 or hours * 60 / bucket_minutes > MAX_SERIES_POINTS:
        raise ValidationFailed(f"bucket_minutes must be positive and give at most {MAX_SERIES_POINTS} points")
    now = now or utc_now()
    start = now - timedelta(hours=hours)
    bucket = timedelta(minutes=bucket_minutes)
    samples = session.exec(
        select(BlobProbeSample)
        .where(BlobProbeSample.cluster_id == cluster.id, BlobProbeSample.probed_at >= start)
        .order_by(col(BlobProbeSample.probed_at))
    ).all()
    point_count = int((now - start) / bucket) + 1
    points: list[dict[str, Any]] = [
        {"start": (start + bucket * index).isoformat(), "total": 0, "available": 0, "fast": 0, "max_latency_ms": None}
        for index in range(point_count)
    ]
    for sample in samples:
        point = points[min(int((sample.probed_at - start) / bucket), point_count - 1)]
        point["total"] += 1
        if sample.succeeded:
            point["available"] += 1
            if sample.latency_ms <= settings.slo_latency_threshold_ms:
                point["fast"] += 1
            point["max_latency_ms"] = max(point["max_latency_ms"] or 0.0, sample.latency_ms)
    return {"cluster_id": cluster.id, "bucket_minutes": bucket_minutes, "points": points}


def evaluate_burn_rate_alerts(
    session: Session, settings: Settings, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Record `slo.burn_rate_alert` per (cluster, objective, rule) that fires and did not fire in its short window."""
    now = now or utc_now()
    horizon = now - max(rule.long_window for rule in BURN_RATE_RULES)
    cluster_ids = session.exec(
        select(BlobProbeSample.cluster_id).where(BlobProbeSample.probed_at >= horizon).distinct()
    ).all()
    fired: list[dict[str, Any]] = []
    for cluster_id in sorted(cluster_ids):
        cluster = session.get(Cluster, cluster_id)
        if cluster is None:
            continue
        for spec in objective_specs(settings):
            for rule in BURN_RATE_RULES:
                long_tally = probe_tally(session, cluster_id, spec, now - rule.long_window, now)
                short_tally = probe_tally(session, cluster_id, spec, now - rule.short_window, now)
                if not rule_fires(rule, long_tally, short_tally, spec.target):
                    continue
                if _alerted_since(session, cluster_id, spec.name, rule.severity, now - rule.short_window):
                    continue
                details = {
                    "objective": spec.name,
                    "severity": rule.severity,
                    "target": spec.target,
                    "threshold": rule.threshold,
                    "long_window_seconds": rule.long_window.total_seconds(),
                    "short_window_seconds": rule.short_window.total_seconds(),
                    "long_burn_rate": burn_rate(long_tally, spec.target),
                    "short_burn_rate": burn_rate(short_tally, spec.target),
                }
                record_audit_event(
                    session,
                    actor="system:slo",
                    action=AuditAction.SLO_BURN_RATE_ALERT,
                    subject_type="cluster",
                    subject_id=cluster_id,
                    tenant_id=cluster.tenant_id,
                    outcome=AuditOutcome.FAILURE,
                    details=details,
                )
                fired.append({"cluster_id": cluster_id, **details})
    return fired


def _alerted_since(session: Session, cluster_id: str, objective: str, severity: str, since: datetime) -> bool:
    events = session.exec(
        select(AuditEvent).where(
            AuditEvent.action == AuditAction.SLO_BURN_RATE_ALERT,
            AuditEvent.subject_id == cluster_id,
            AuditEvent.occurred_at >= since,
        )
    ).all()
    return any(
        event.details.get("objective") == objective and event.details.get("severity") == severity for event in events
    )
