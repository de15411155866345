"""SLO computation on planted probe samples and audit events: attainment, budgets, multi-window burn-rate alerts."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select

from core.audit.actions import AuditAction
from core.audit.models import AuditEvent
from core.audit.service import record_audit_event
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.probes.models import BlobProbeSample
from core.settings import Settings
from core.slo.service import cluster_slo_status, cluster_time_series, evaluate_burn_rate_alerts
from core.tenants.models import Tenant

pytestmark = pytest.mark.timeout(30)


def planted_cluster(session: Session) -> Cluster:
    tenant = Tenant(entra_tenant_id=str(uuid.uuid4()))
    session.add(tenant)
    session.flush()
    cluster = Cluster(
        tenant_id=tenant.id,
        managed_application_id=f"/subscriptions/{uuid.uuid4()}/providers/Microsoft.Solutions/applications/slo",
        name="slo",
        region="eastus",
        azure_subscription_id=str(uuid.uuid4()),
        resource_group="rg",
        desired_plan_id="standard",
        desired_quantity=1,
        status=ClusterStatus.READY,
        observed_generation=1,
        endpoint_fqdn="slo.example.test",
    )
    session.add(cluster)
    session.flush()
    return cluster


def plant_samples(
    session: Session, cluster: Cluster, at: datetime, *, good: int, bad: int = 0, latency_ms: float = 20.0
) -> None:
    for index in range(good + bad):
        session.add(
            BlobProbeSample(
                run_id=str(uuid.uuid4()),
                cluster_id=cluster.id,
                tenant_id=cluster.tenant_id,
                check_name="put_block_blob",
                authentication="shared_key",
                succeeded=index >= bad,
                latency_ms=latency_ms,
                error_code="ServiceRequestError" if index < bad else None,
                probed_at=at - timedelta(seconds=index),
            )
        )
    session.flush()


def spread_good_samples(session: Session, cluster: Cluster, now: datetime, minutes: int) -> None:
    for minute in range(1, minutes + 1):
        plant_samples(session, cluster, now - timedelta(minutes=minute), good=1)


def fired(session: Session, settings: Settings, cluster: Cluster, now: datetime) -> set[tuple[str, str]]:
    return {
        (alert["objective"], alert["severity"])
        for alert in evaluate_burn_rate_alerts(session, settings, now)
        if alert["cluster_id"] == cluster.id
    }


def test_healthy_cluster_meets_objectives_and_raises_no_alert(session: Session, base_settings: Settings) -> None:
    now = utc_now()
    cluster = planted_cluster(session)
    spread_good_samples(session, cluster, now, 360)

    assert fired(session, base_settings, cluster, now) == set()
    status = cluster_slo_status(session, base_settings, cluster, now)
    availability = next(item for item in status["objectives"] if item["name"] == "availability")
    assert (availability["good"], availability["total"], availability["attainment"]) == (360, 360, 1.0)
    assert availability["error_budget_remaining"] == 1.0
    assert availability["burn_rates"]["1h"] == 0.0
    assert availability["met"] is True


def test_current_failure_burst_fires_the_windows_that_burn_and_only_once(
    session: Session, base_settings: Settings
) -> None:
    now = utc_now()
    cluster = planted_cluster(session)
    spread_good_samples(session, cluster, now, 60)
    plant_samples(session, cluster, now - timedelta(seconds=30), good=5, bad=5)

    # availability (99.9%): 5 bad of 70 in 1 h and 6 h, 5 of 10 in 5 min -> page and ticket.
    # latency (99%): burn 7.1 over 1 h < 14.4 (no page); 7.1 over 6 h and 12.5 over 30 min >= 6 -> ticket.
    assert fired(session, base_settings, cluster, now) == {
        ("availability", "page"),
        ("availability", "ticket"),
        ("latency", "ticket"),
    }
    # Still burning a minute later, but each alert was raised within its short window: nothing new.
    assert fired(session, base_settings, cluster, now + timedelta(minutes=1)) == set()
    alerts = session.exec(
        select(AuditEvent).where(
            AuditEvent.action == AuditAction.SLO_BURN_RATE_ALERT, AuditEvent.subject_id == cluster.id
        )
    ).all()
    assert len(alerts) == 3
    assert {alert.tenant_id for alert in alerts} == {cluster.tenant_id}
    status = cluster_slo_status(session, base_settings, cluster, now)
    availability = next(item for item in status["objectives"] if item["name"] == "availability")
    assert availability["met"] is False
    assert availability["error_budget_remaining"] < 0
    assert len(status["recent_alerts"]) == 3


def test_failures_that_stopped_an_hour_ago_do_not_alert(session: Session, base_settings: Settings) -> None:
    now = utc_now()
    cluster = planted_cluster(session)
    spread_good_samples(session, cluster, now, 60)
    plant_samples(session, cluster, now - timedelta(hours=2), good=0, bad=10)

    assert fired(session, base_settings, cluster, now) == set()


def test_slow_but_successful_checks_spend_only_the_latency_budget(session: Session, base_settings: Settings) -> None:
    now = utc_now()
    cluster = planted_cluster(session)
    plant_samples(
        session, cluster, now - timedelta(seconds=10), good=20, latency_ms=base_settings.slo_latency_threshold_ms * 3
    )

    assert fired(session, base_settings, cluster, now) == {("latency", "page"), ("latency", "ticket")}


def test_control_plane_timings_come_from_the_audit_trail(session: Session, base_settings: Settings) -> None:
    cluster = planted_cluster(session)
    start = utc_now() - timedelta(hours=3)
    for action, offset_minutes in (
        ("cluster.requested", 0),
        ("cluster.ready", 12),
        ("cluster.desired_spec_changed", 60),
        ("cluster.ready", 65),
        ("cluster.desired_spec_changed", 100),
        ("cluster.ready", 160),
    ):
        event = record_audit_event(
            session,
            actor="test",
            action=action,
            subject_type="cluster",
            subject_id=cluster.id,
            tenant_id=cluster.tenant_id,
        )
        event.occurred_at = start + timedelta(minutes=offset_minutes)
        session.add(event)
    session.flush()

    timings = cluster_slo_status(session, base_settings, cluster)["control_plane"]

    assert timings["time_to_provision_seconds"] == 12 * 60
    assert timings["time_to_provision_met"] is True
    assert timings["changes_applied"] == 2
    assert timings["changes_within_objective"] == 1  # 5 min is within 30 min; 60 min is not
    assert timings["slowest_change_seconds"] == 60 * 60


def test_time_series_buckets_samples(session: Session, base_settings: Settings) -> None:
    now = utc_now()
    cluster = planted_cluster(session)
    plant_samples(session, cluster, now - timedelta(minutes=90), good=3, bad=1)
    plant_samples(session, cluster, now - timedelta(minutes=10), good=2)

    series = cluster_time_series(session, base_settings, cluster, hours=2, bucket_minutes=60, now=now)

    assert [(point["total"], point["available"]) for point in series["points"]] == [(4, 3), (2, 2), (0, 0)]
