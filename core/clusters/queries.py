"""Read models of clusters: the provisioning timeline, ARM deployment steps, key rotations, clusters in trouble."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from core.audit.models import AuditEvent
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment, KeyRotation

TIMELINE_LIMIT = 300
# Statuses in which the controller is working; a cluster left in one of them too long needs a look.
IN_PROGRESS_STATUSES = (
    ClusterStatus.PENDING,
    ClusterStatus.PROVISIONING,
    ClusterStatus.UPDATING,
    ClusterStatus.SUSPENDING,
    ClusterStatus.RESUMING,
    ClusterStatus.DEPROVISIONING,
)


def cluster_timeline(session: Session, cluster_id: str, *, limit: int = TIMELINE_LIMIT) -> list[AuditEvent]:
    """The cluster's audit events, oldest first: what the controller and people did to it."""
    statement = (
        select(AuditEvent)
        .where(AuditEvent.subject_type == "cluster", AuditEvent.subject_id == cluster_id)
        .order_by(col(AuditEvent.occurred_at), col(AuditEvent.id))
        .limit(limit)
    )
    return list(session.exec(statement).all())


def cluster_deployments(session: Session, cluster_id: str) -> list[ArmDeployment]:
    """Every ARM deployment the controller started for the cluster, in order."""
    statement = select(ArmDeployment).where(ArmDeployment.cluster_id == cluster_id).order_by(col(ArmDeployment.id))
    return list(session.exec(statement).all())


def recent_key_rotations(session: Session, cluster_id: str, *, limit: int = 10) -> list[KeyRotation]:
    """The newest key rotations of the cluster first."""
    statement = (
        select(KeyRotation)
        .where(KeyRotation.cluster_id == cluster_id)
        .order_by(col(KeyRotation.requested_at).desc())
        .limit(limit)
    )
    return list(session.exec(statement).all())


def clusters_needing_attention(session: Session, *, unchanged_since: datetime, limit: int = 200) -> list[Cluster]:
    """Failed clusters, and clusters still in progress that have not changed since `unchanged_since`."""
    failed = select(Cluster).where(Cluster.status == ClusterStatus.FAILED)
    slow = select(Cluster).where(
        col(Cluster.status).in_(IN_PROGRESS_STATUSES), col(Cluster.updated_at) < unchanged_since
    )
    clusters = list(session.exec(failed.limit(limit)).all()) + list(session.exec(slow.limit(limit)).all())
    return sorted(clusters, key=lambda cluster: cluster.updated_at)[:limit]
