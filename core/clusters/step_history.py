"""How long each provisioning step usually takes, measured from our own deployments, and where a cluster's steps are."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from sqlmodel import Session, col, select

from core.clusters.provisioning_models import ArmDeployment, DeploymentState

# The most recent completed deployments of a step that its typical duration is the median of.
TYPICAL_DURATION_SAMPLES = 200


def typical_step_seconds(session: Session, steps: Sequence[str]) -> dict[str, float]:
    """The median duration of each step's recent successful deployments; steps never completed are left out."""
    typical: dict[str, float] = {}
    for step in steps:
        rows = session.exec(
            select(ArmDeployment.started_at, ArmDeployment.finished_at)
            .where(
                ArmDeployment.step == step,
                ArmDeployment.state == DeploymentState.SUCCEEDED,
                col(ArmDeployment.finished_at).is_not(None),
            )
            .order_by(col(ArmDeployment.id).desc())
            .limit(TYPICAL_DURATION_SAMPLES)
        ).all()
        durations = [(finished - started).total_seconds() for started, finished in rows if finished is not None]
        if durations:
            typical[step] = max(statistics.median(durations), 0.0)
    return typical


def latest_step_states(session: Session, cluster_id: str) -> dict[str, DeploymentState]:
    """The state of the latest deployment of each step of one cluster (a step not started yet is absent)."""
    rows = session.exec(
        select(ArmDeployment.step, ArmDeployment.state)
        .where(ArmDeployment.cluster_id == cluster_id)
        .order_by(col(ArmDeployment.id))
    ).all()
    # Later rows (a retry, a new generation) overwrite earlier ones.
    return {step: DeploymentState(state) for step, state in rows}
