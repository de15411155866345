"""What the SLO pages show of a cluster: core.slo's status and time series, SLI charts, and the active alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from core.clock import utc_now
from core.clusters.models import Cluster
from core.settings import Settings
from core.slo.service import cluster_slo_status, cluster_time_series
from portal.slo_chart import SliChart, build_sli_chart

CHART_HOURS = 24
CHART_BUCKET_MINUTES = 60


@dataclass(frozen=True)
class ClusterSlo:
    """One cluster's SLO status (as core.slo computes it), its charts and the alerts still in force."""

    cluster: Cluster
    status: dict[str, Any]
    charts: list[SliChart]
    active_alerts: list[dict[str, Any]]

    @property
    def has_samples(self) -> bool:
        return any(objective["total"] for objective in self.status["objectives"])


def cluster_slo(
    session: Session, settings: Settings, cluster: Cluster, *, with_charts: bool, now: datetime | None = None
) -> ClusterSlo:
    """Status (and, for the detail page, the last day's SLI charts) evaluated at one instant."""
    now = now or utc_now()
    status = cluster_slo_status(session, settings, cluster, now=now)
    charts: list[SliChart] = []
    if with_charts:
        series = cluster_time_series(
            session, settings, cluster, hours=CHART_HOURS, bucket_minutes=CHART_BUCKET_MINUTES, now=now
        )
        charts = [build_sli_chart(item["name"], item["target"], series) for item in status["objectives"]]
    return ClusterSlo(cluster, status, charts, active_alerts(status["recent_alerts"], now))


def active_alerts(alerts: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Alerts whose long window still holds the burn that raised them; older ones are history."""
    return [
        alert
        for alert in alerts
        if datetime.fromisoformat(alert["occurred_at"]) >= now - timedelta(seconds=alert["long_window_seconds"])
    ]
