"""Read models of clusters: the provisioning timeline, ARM deployment steps, key rotations, clusters in trouble."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
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
    """Failed clusters, and clusters still in progress that have not changed since `unchanged_since`.

    A cluster waiting out its retention period before deletion is not stuck: it is listed by
    `clusters_in_retention`, and only counts as stuck once its retention ended that long ago without progress.
    """
    failed = select(Cluster).where(Cluster.status == ClusterStatus.FAILED)
    slow = select(Cluster).where(
        col(Cluster.status).in_(IN_PROGRESS_STATUSES),
        col(Cluster.updated_at) < unchanged_since,
        sa.or_(
            col(Cluster.status) != ClusterStatus.DEPROVISIONING,
            col(Cluster.retention_until).is_(None),
            col(Cluster.retention_until) < unchanged_since,
        ),
    )
    ordered_failed = failed.order_by(col(Cluster.updated_at)).limit(limit)
    ordered_slow = slow.order_by(col(Cluster.updated_at)).limit(limit)
    clusters = list(session.exec(ordered_failed).all()) + list(session.exec(ordered_slow).all())
    return sorted(clusters, key=lambda cluster: cluster.updated_at)[:limit]


def clusters_in_retention(session: Session, *, now: datetime, limit: int = 200) -> list[Cluster]:
    """Unsubscribed clusters keeping the customer's data until their retention ends, soonest deletion first."""
    statement = (
        select(Cluster)
        .where(Cluster.status == ClusterStatus.DEPROVISIONING, col(Cluster.retention_until) >= now)
        .order_by(col(Cluster.retention_until), col(Cluster.id))
        .limit(limit)
    )
    return list(session.exec(statement).all())


def stuck_cluster_reason(cluster: Cluster, *, now: datetime) -> str:
    """Why the cluster is on the stuck-work page, in words."""
    if cluster.status == ClusterStatus.FAILED:
        error = ": ".join(part for part in (cluster.last_error_code, cluster.last_error_message) if part)
        return f"Failed after its retry budget ran out. {error or 'No error was recorded.'}"
    minutes = int((now - cluster.updated_at).total_seconds() // 60)
    step = f" at step {cluster.current_step}" if cluster.current_step else ""
    waiting = f" The last error was {cluster.last_error_code}." if cluster.last_error_code else ""
    return f"No progress for {minutes} minutes while {cluster.status}{step}.{waiting}"
