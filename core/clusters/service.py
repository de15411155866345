"""Record what a cluster should be; the controller (workers) converges it.

Every change bumps `desired_generation`, writes an audit event and enqueues a reconcile through the
outbox in the caller's transaction. Nothing here talks to Azure.
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, select

from core.audit.actions import AuditAction
from core.audit.service import record_audit_event
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.schemas import ClusterPlacement, KeyPolicy, PrivateLinkPolicy
from core.db import lock_rows
from core.errors import Conflict, NotFound
from core.outbox.service import enqueue
from core.task_payloads import ReconcileCluster

SPEC_FIELDS = (
    "desired_plan_id",
    "desired_quantity",
    "desired_suspended",
    "desired_deleted",
    "pls_visibility_subscriptions",
    "pls_auto_approval_subscriptions",
    "key_policy",
)


def cluster_name_for(subscription_id: str) -> str:
    """A short, stable, ARM-safe cluster name derived from the owning subscription id."""
    return "vast-" + re.sub(r"[^a-z0-9]", "", subscription_id.lower())[:12]


def desired_spec(cluster: Cluster) -> dict[str, Any]:
    """The desired spec as a plain dict (for audit before/after)."""
    return {field: getattr(cluster, field) for field in SPEC_FIELDS} | {"generation": cluster.desired_generation}


def request_cluster(
    session: Session,
    *,
    tenant_id: str,
    subscription_id: str | None,
    plan_id: str,
    quantity: int,
    placement: ClusterPlacement,
    private_link: PrivateLinkPolicy,
    key_policy: KeyPolicy,
    actor: str,
    managed_application_id: str | None = None,
) -> Cluster:
    """Create the cluster row with its first desired spec (generation 1) and enqueue its reconcile."""
    owner = subscription_id or managed_application_id
    if owner is None:
        raise ValueError("a cluster belongs to a subscription or a managed application")
    existing = session.exec(
        select(Cluster).where(
            (Cluster.subscription_id == subscription_id)
            if subscription_id
            else (Cluster.managed_application_id == managed_application_id)
        )
    ).first()
    if existing is not None:
        raise Conflict("a cluster already exists for this subscription", details={"cluster_id": existing.id})
    cluster = Cluster(
        tenant_id=tenant_id,
        subscription_id=subscription_id,
        managed_application_id=managed_application_id,
        name=cluster_name_for(owner),
        region=placement.region,
        azure_subscription_id=placement.azure_subscription_id,
        resource_group=placement.resource_group,
        desired_plan_id=plan_id,
        desired_quantity=quantity,
        pls_visibility_subscriptions=private_link.visibility_subscriptions,
        pls_auto_approval_subscriptions=private_link.auto_approval_subscriptions,
        key_policy=key_policy.model_dump(),
    )
    session.add(cluster)
    session.flush()
    record_audit_event(
        session,
        actor=actor,
        action=AuditAction.CLUSTER_REQUESTED,
        subject_type="cluster",
        subject_id=cluster.id,
        tenant_id=tenant_id,
        after=desired_spec(cluster) | {"placement": placement.model_dump()},
    )
    enqueue(session, ReconcileCluster(cluster_id=cluster.id))
    return cluster


def change_desired_spec(session: Session, cluster_id: str, *, actor: str, reason: str, **changes: Any) -> Cluster:
    """Apply changes to the desired spec under a row lock; a no-op change does not bump the generation."""
    unknown = set(changes) - set(SPEC_FIELDS)
    if unknown:
        raise ValueError(f"not desired-spec fields: {', '.join(sorted(unknown))}")
    cluster = lock_cluster(session, cluster_id)
    if cluster.status == ClusterStatus.DELETED:
        raise Conflict("the cluster is deleted", details={"cluster_id": cluster_id})
    before = desired_spec(cluster)
    effective = {field: value for field, value in changes.items() if getattr(cluster, field) != value}
    if not effective:
        return cluster
    for field, value in effective.items():
        setattr(cluster, field, value)
    cluster.desired_generation += 1
    cluster.updated_at = utc_now()
    session.add(cluster)
    session.flush()
    record_audit_event(
        session,
        actor=actor,
        action=AuditAction.CLUSTER_DESIRED_SPEC_CHANGED,
        subject_type="cluster",
        subject_id=cluster.id,
        tenant_id=cluster.tenant_id,
        before=before,
        after=desired_spec(cluster),
        details={"reason": reason},
    )
    enqueue(session, ReconcileCluster(cluster_id=cluster.id))
    return cluster


def lock_cluster(session: Session, cluster_id: str) -> Cluster:
    """The cluster row, locked for update until the transaction ends."""
    cluster = session.exec(
        lock_rows(select(Cluster).where(Cluster.id == cluster_id)).execution_options(populate_existing=True)
    ).first()
    if cluster is None:
        raise NotFound("cluster not found", details={"cluster_id": cluster_id})
    return cluster
