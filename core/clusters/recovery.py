"""Operator actions that put a failed cluster back on its way."""

from __future__ import annotations

from sqlmodel import Session

from core.audit.actions import AuditAction
from core.audit.service import record_audit_event
from core.clock import utc_now
from core.clusters.models import CLUSTER_STATES, Cluster, ClusterStatus
from core.clusters.service import lock_cluster
from core.errors import Conflict
from core.outbox.service import enqueue
from core.task_payloads import ReconcileCluster


def retry_failed_cluster(session: Session, cluster_id: str, *, actor: str, reason: str) -> Cluster:
    """Give a failed cluster a fresh retry budget; the controller skips every step already done."""
    cluster = lock_cluster(session, cluster_id)
    if cluster.status != ClusterStatus.FAILED:
        raise Conflict(f"only a failed cluster can be retried; this one is {cluster.status}")
    target = ClusterStatus.DEPROVISIONING if cluster.desired_deleted else ClusterStatus.PROVISIONING
    CLUSTER_STATES.check(ClusterStatus.FAILED, target)
    before = {"status": cluster.status, "last_error_code": cluster.last_error_code}
    cluster.status = target
    cluster.attempts = 0
    cluster.next_attempt_at = None
    cluster.updated_at = utc_now()
    session.add(cluster)
    session.flush()
    record_audit_event(
        session,
        actor=actor,
        action=AuditAction.CLUSTER_RETRY_REQUESTED,
        subject_type="cluster",
        subject_id=cluster.id,
        tenant_id=cluster.tenant_id,
        before=before,
        after={"status": cluster.status},
        details={"reason": reason},
    )
    enqueue(session, ReconcileCluster(cluster_id=cluster.id))
    return cluster
