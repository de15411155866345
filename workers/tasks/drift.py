"""Drift tasks: the beat tick that picks one slice of the clusters, and the observation of one cluster."""

from __future__ import annotations

import logging

from sqlmodel import Session

from core.azure.arm import ArmAccessDenied, ArmRequestFailed
from core.clock import utc_now
from core.clusters.drift import DriftObserver, enqueue_due_observations
from core.clusters.models import Cluster
from core.messaging import TaskNames
from core.settings import get_settings
from core.task_payloads import ObserveClusterDrift
from workers.celery_app import celery_app
from workers.consumer import outbox_consumer, run_in_session
from workers.tasks.provisioning import _arm_for

logger = logging.getLogger(__name__)


@outbox_consumer(ObserveClusterDrift)
def observe_cluster_drift(session: Session, payload: ObserveClusterDrift) -> None:
    """Compare one cluster with ARM; a read ARM refuses is logged and tried again next interval, never drift."""
    cluster_id = payload.cluster_id
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        return
    try:
        report = DriftObserver(get_settings()).observe(session, cluster_id, _arm_for(session, cluster))
    except (ArmAccessDenied, ArmRequestFailed) as error:
        # Raised before anything was recorded (all reads come first). The controller's own passes report lasting
        # access problems; an observation just waits for its next turn.
        logger.warning("drift observation failed", extra={"cluster_id": cluster_id, "error": error.message})
        return
    if report.detected or report.resolved or report.incidents:
        logger.info(
            "drift observed",
            extra={
                "cluster_id": cluster_id,
                "detected": report.detected,
                "resolved": report.resolved,
                "incidents": report.incidents,
            },
        )


@celery_app.task(name=TaskNames.CLUSTER_DRIFT_SWEEP, ignore_result=True)  # type: ignore[untyped-decorator]
def sweep_cluster_drift() -> int:
    """Enqueue an observation for every ready or suspended cluster in this tick's slice of the interval."""
    settings = get_settings()
    count = {"clusters": 0}

    def sweep(session: Session) -> None:
        due = enqueue_due_observations(
            session,
            now=utc_now(),
            interval_seconds=settings.drift_observation_interval_seconds,
            slices=settings.drift_observation_slices,
        )
        count["clusters"] = len(due)

    run_in_session(sweep)
    return count["clusters"]
