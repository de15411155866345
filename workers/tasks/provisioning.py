"""Provisioning tasks: the cluster controller pass, key rotation, private endpoint sync and their sweeps."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import cache

from sqlmodel import Session, col, select

from core.azure.arm import ArmAccessDenied, ArmClient, ArmClientFactory, ArmRequestFailed
from core.clock import utc_now
from core.clusters.controller import ClusterController, overdue_cluster_ids
from core.clusters.key_rotation import perform_key_rotation, request_rotations_due
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import KeyRotation
from core.db import lock_rows
from core.errors import ConfigurationError
from core.managed_apps.observation import built_by_managed_application
from core.messaging import TaskNames
from core.networking.service import sync_private_endpoint_connections
from core.outbox.service import enqueue
from core.settings import get_settings
from core.task_payloads import ReconcileCluster, RotateClusterKey, SyncPrivateEndpoints
from core.tenants.models import Tenant
from workers.celery_app import celery_app
from workers.consumer import outbox_consumer, run_in_session

logger = logging.getLogger(__name__)
# A scheduled check later than this is considered lost and the sweep enqueues a new one.
OVERDUE_GRACE = timedelta(seconds=30)


@cache
def _arm_clients() -> ArmClientFactory:
    # One factory per worker process: credentials and their token caches are shared by every task.
    return ArmClientFactory(get_settings())


@cache
def _controller() -> ClusterController:
    return ClusterController(get_settings(), _arm_clients(), built_elsewhere=built_by_managed_application)


def _arm_for(session: Session, cluster: Cluster) -> ArmClient:
    tenant = session.get(Tenant, cluster.tenant_id)
    if tenant is None:
        raise ConfigurationError(f"cluster {cluster.id} has no tenant row")
    return _arm_clients().for_subscription(tenant.entra_tenant_id, cluster.azure_subscription_id)


@outbox_consumer(ReconcileCluster)
def reconcile_cluster(session: Session, payload: ReconcileCluster) -> None:
    """One controller pass for the cluster (takes the next step only)."""
    _controller().reconcile(session, payload.cluster_id)


@outbox_consumer(RotateClusterKey)
def rotate_cluster_key(session: Session, payload: RotateClusterKey) -> None:
    """Rotate the customer-managed key of a rotation request."""
    rotation = session.get(KeyRotation, payload.rotation_id)
    if rotation is None:
        return
    cluster = session.get(Cluster, rotation.cluster_id)
    if cluster is None:
        return
    perform_key_rotation(session, rotation.id, _arm_for(session, cluster))


@outbox_consumer(SyncPrivateEndpoints)
def sync_private_endpoints(session: Session, payload: SyncPrivateEndpoints) -> None:
    """Apply the connection policy and people's decisions on the cluster's Private Link Service."""
    cluster_id = payload.cluster_id
    cluster = session.get(Cluster, cluster_id)
    if cluster is None or cluster.pls_resource_id is None:
        return
    try:
        sync_private_endpoint_connections(session, cluster, _arm_for(session, cluster))
    except ArmAccessDenied as error:
        logger.warning("private endpoint sync refused by ARM", extra={"cluster_id": cluster_id, "error": error.message})
    except ArmRequestFailed as error:
        if error.transient:
            raise
        logger.warning("private endpoint sync failed", extra={"cluster_id": cluster_id, "error": error.message})


@celery_app.task(name=TaskNames.CLUSTER_SWEEP, ignore_result=True)  # type: ignore[untyped-decorator]
def sweep_clusters() -> dict[str, int]:
    """Re-enqueue clusters whose check is overdue (a lost message) and request rotations due by key policy."""
    report = {"reenqueued": 0, "rotations": 0, "rotation_failures": 0}

    def sweep(session: Session) -> None:
        now = utc_now()
        for cluster_id in overdue_cluster_ids(session, now=now, grace=OVERDUE_GRACE):
            cluster = session.exec(lock_rows(select(Cluster).where(Cluster.id == cluster_id))).first()
            if cluster is None:
                continue
            cluster.next_attempt_at = now
            session.add(cluster)
            enqueue(session, ReconcileCluster(cluster_id=cluster_id))
            report["reenqueued"] += 1
        report["rotations"], report["rotation_failures"] = request_rotations_due(session, now=now)

    run_in_session(sweep)
    logger.info("cluster sweep", extra=report)
    return report


@celery_app.task(name=TaskNames.CLUSTER_PRIVATE_ENDPOINT_SWEEP, ignore_result=True)  # type: ignore[untyped-decorator]
def sweep_private_endpoints() -> int:
    """Enqueue a connection sync for every cluster that has a Private Link Service."""
    count = {"clusters": 0}

    def sweep(session: Session) -> None:
        statement = select(Cluster.id).where(
            col(Cluster.pls_resource_id).is_not(None),
            col(Cluster.status).in_([ClusterStatus.READY, ClusterStatus.UPDATING]),
        )
        for cluster_id in session.exec(statement):
            enqueue(session, SyncPrivateEndpoints(cluster_id=cluster_id))
            count["clusters"] += 1

    run_in_session(sweep)
    return count["clusters"]
