"""Which deployment steps a drift repair is waiting for: the controller re-runs them as if never deployed."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, select

from core.clusters.drift_models import ClusterDrift, DriftRemedy, DriftState
from core.clusters.provisioning_models import ArmDeployment, DeploymentState


def steps_awaiting_repair(session: Session, cluster_id: str, deployments: Iterable[ArmDeployment]) -> set[str]:
    """Steps of open repair drifts with no successful deployment since the repair was asked for."""
    statement = select(ClusterDrift.step, ClusterDrift.repair_after_deployment_id).where(
        ClusterDrift.cluster_id == cluster_id,
        ClusterDrift.state == DriftState.OPEN,
        ClusterDrift.remedy == DriftRemedy.REPAIR.value,
        col(ClusterDrift.repair_requested_at).is_not(None),
    )
    wanted = session.exec(statement).all()
    if not wanted:
        return set()
    rows = list(deployments)
    waiting: set[str] = set()
    for step, baseline in wanted:
        repaired = any(
            row.step == step and row.state == DeploymentState.SUCCEEDED and (row.id or 0) > (baseline or 0)
            for row in rows
        )
        if not repaired:
            waiting.add(step)
    return waiting
