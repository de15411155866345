"""Drift in the JSON API: what changed in a cluster's Azure resources behind our back, and what we did about it.

Customers see their own clusters' drift (another tenant's cluster answers 404); operators see every cluster's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.security import OperatorDep, PrincipalDep
from core.clusters.drift import cluster_drift_history, drifts_by_state
from core.clusters.drift_models import ClusterDrift, DriftState
from core.networking.service import visible_cluster
from web.dependencies import MAX_DATABASE_INTEGER, SessionDep
from web.errors import error_responses

router = APIRouter(tags=["drift"], responses=error_responses(401, 404, 422))


class DriftView(BaseModel):
    id: str
    cluster_id: str
    kind: str
    resource_id: str
    step: str
    remedy: str
    state: str
    expected: dict[str, Any]
    observed: dict[str, Any]
    repair_attempts: int
    detected_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None


def _view(row: ClusterDrift) -> DriftView:
    return DriftView.model_validate(row, from_attributes=True)


@router.get("/api/clusters/{cluster_id}/drift")
def get_cluster_drift(cluster_id: str, session: SessionDep, principal: PrincipalDep) -> list[DriftView]:
    """The cluster's drifts, open ones first: each repaired by re-running its step, or an operator's incident."""
    cluster = visible_cluster(session, principal, cluster_id)
    return [_view(row) for row in cluster_drift_history(session, cluster.id)]


@router.get("/api/drift", responses=error_responses(403))
def list_drift(
    session: SessionDep,
    operator: OperatorDep,
    state: Annotated[DriftState, Query(description="open (default) or resolved")] = DriftState.OPEN,
    offset: Annotated[int, Query(ge=0, le=MAX_DATABASE_INTEGER)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[DriftView]:
    """Every cluster's drifts in one state, newest first (operators only)."""
    return [_view(row) for row in drifts_by_state(session, state=state, tenant_id=None, offset=offset, limit=limit)]
