"""Operations: Prometheus metrics, SLO status and time series per cluster, and an on-demand Blob probe.

`/metrics` is for the scraper inside the deployment (counts only, no tenant data). The SLO API is what
the portal renders: operators see every cluster, customer admins their tenant's (another tenant's id
answers 404).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.security import OperatorDep, PrincipalDep
from core.audit.actions import AuditAction
from core.audit.service import record_audit_event
from core.outbox.service import enqueue
from core.slo.service import cluster_slo_status, cluster_time_series, visible_cluster, visible_clusters
from core.task_payloads import ProbeClusterBlob
from core.telemetry.database_gauges import DatabaseGaugeCollector
from core.telemetry.metrics import CONTENT_TYPE, render_metrics
from web.dependencies import DatabaseDep, SessionDep, SettingsDep
from web.errors import error_response, error_responses
from web.permissions import public_route

router = APIRouter(tags=["operations"])
NO_SUCH_CLUSTER = error_response("No such cluster, or it belongs to another tenant")


@router.get(
    "/metrics",
    dependencies=[public_route("counts for the scraper inside the deployment; no tenant data")],
    summary="Prometheus metrics of the control plane",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(database: DatabaseDep) -> Response:
    return Response(render_metrics(DatabaseGaugeCollector(database)), media_type=CONTENT_TYPE)


@router.get(
    "/api/operations/slo/clusters",
    summary="SLO status of every cluster the caller may see",
    responses=error_responses(401),
)
def list_cluster_slos(session: SessionDep, settings: SettingsDep, principal: PrincipalDep) -> dict[str, Any]:
    clusters = visible_clusters(session, principal)
    return {"clusters": [cluster_slo_status(session, settings, cluster) for cluster in clusters]}


@router.get(
    "/api/operations/slo/clusters/{cluster_id}",
    summary="SLO status of one cluster: objectives, error budgets, burn rates, latest probe, alerts",
    responses={**error_responses(401, 422), 404: NO_SUCH_CLUSTER},
)
def get_cluster_slo(
    cluster_id: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
) -> dict[str, Any]:
    return cluster_slo_status(session, settings, visible_cluster(session, principal, cluster_id))


@router.get(
    "/api/operations/slo/clusters/{cluster_id}/series",
    summary="Probe results of one cluster per time bucket, for charts",
    responses={**error_responses(401, 422), 404: NO_SUCH_CLUSTER},
)
def get_cluster_slo_series(
    cluster_id: str,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    hours: Annotated[float, Query(gt=0, le=744, description="How far back")] = 24.0,
    bucket_minutes: Annotated[float, Query(gt=0, le=1440, description="Width of one point")] = 60.0,
) -> dict[str, Any]:
    cluster = visible_cluster(session, principal, cluster_id)
    return cluster_time_series(session, settings, cluster, hours=hours, bucket_minutes=bucket_minutes)


@router.post(
    "/api/operations/clusters/{cluster_id}/blob-probe",
    status_code=202,
    summary="Probe a cluster's Blob endpoint now (operators)",
    responses={**error_responses(401, 403, 422), 404: error_response("No such cluster")},
)
def request_blob_probe(cluster_id: str, session: SessionDep, operator: OperatorDep) -> dict[str, Any]:
    cluster = visible_cluster(session, operator, cluster_id)
    message = enqueue(session, ProbeClusterBlob(cluster_id=cluster.id))
    session.flush()  # the answer and the audit event name the outbox row's id
    record_audit_event(
        session,
        actor=operator.actor,
        action=AuditAction.CLUSTER_BLOB_PROBE_REQUESTED,
        subject_type="cluster",
        subject_id=cluster.id,
        tenant_id=cluster.tenant_id,
        details={"outbox_id": message.id},
    )
    return {"cluster_id": cluster.id, "outbox_id": message.id, "status": "queued"}
