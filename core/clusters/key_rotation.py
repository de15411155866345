"""Rotation of a cluster's customer-managed key: on demand (a person) and on policy (the sweep)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from core.arm_templates.steps import IDENTITY_KEY_VAULT
from core.audit.actions import AuditAction
from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.azure.arm import ArmAccessDenied, ArmClient, ArmRequestFailed
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment, DeploymentState, KeyRotation, KeyRotationState
from core.clusters.service import lock_cluster
from core.db import lock_rows
from core.errors import Conflict, ControlPlaneError, NotFound
from core.outbox.service import enqueue
from core.task_payloads import RotateClusterKey

logger = logging.getLogger(__name__)
ROTATABLE_STATUSES = frozenset({ClusterStatus.READY, ClusterStatus.UPDATING, ClusterStatus.SUSPENDED})
POLICY_ACTOR = "policy:key-rotation"


class KeyNotRotatable(Conflict):
    """The cluster has no key yet, or is in a state (deploying, failed, deleting) where its key cannot rotate."""

    code = "KeyNotRotatable"


class KeyRotationInProgress(Conflict):
    """A rotation of this cluster's key is requested and not done yet: a second one would race it."""

    code = "KeyRotationInProgress"


def request_key_rotation(session: Session, cluster: Cluster, *, actor: str, reason: str) -> KeyRotation:
    """Record a rotation request and enqueue it.

    KeyNotRotatable while the cluster has no key yet or is not in a rotatable state; KeyRotationInProgress while
    another request is pending.
    """
    cluster = lock_cluster(session, cluster.id)
    if cluster.status not in ROTATABLE_STATUSES or cluster.key_id is None:
        raise KeyNotRotatable(
            f"the key cannot be rotated while the cluster is {cluster.status}", details={"cluster_id": cluster.id}
        )
    pending = session.exec(
        select(KeyRotation).where(KeyRotation.cluster_id == cluster.id, KeyRotation.state == KeyRotationState.REQUESTED)
    ).first()
    if pending is not None:
        raise KeyRotationInProgress("a key rotation is already in progress", details={"rotation_id": pending.id})
    rotation = KeyRotation(cluster_id=cluster.id, requested_by=actor, reason=reason[:256], key_id_before=cluster.key_id)
    session.add(rotation)
    session.flush()
    record_audit_event(
        session,
        actor=actor,
        action=AuditAction.CLUSTER_KEY_ROTATION_REQUESTED,
        subject_type="cluster",
        subject_id=cluster.id,
        tenant_id=cluster.tenant_id,
        details={"rotation_id": rotation.id, "reason": reason},
    )
    enqueue(session, RotateClusterKey(rotation_id=rotation.id))
    return rotation


def perform_key_rotation(session: Session, rotation_id: str, arm: ArmClient) -> KeyRotation:
    """Rotate in Key Vault and record the new key version; transient ARM errors propagate for a retry."""
    rotation = session.exec(lock_rows(select(KeyRotation).where(KeyRotation.id == rotation_id))).first()
    if rotation is None:
        raise NotFound("key rotation not found", details={"rotation_id": rotation_id})
    if rotation.state != KeyRotationState.REQUESTED:
        return rotation
    cluster = lock_cluster(session, rotation.cluster_id)
    key_step = session.exec(
        select(ArmDeployment)
        .where(
            ArmDeployment.cluster_id == cluster.id,
            ArmDeployment.step == IDENTITY_KEY_VAULT,
            ArmDeployment.state == DeploymentState.SUCCEEDED,
        )
        .order_by(col(ArmDeployment.id).desc())
    ).first()
    outputs = key_step.outputs if key_step else {}
    try:
        if not outputs.get("keyVaultUri") or not outputs.get("keyName"):
            raise Conflict("the cluster has no key vault outputs yet")
        new_key_id = arm.rotate_key(str(outputs["keyVaultUri"]), str(outputs["keyName"]))
    except ArmRequestFailed as error:
        if error.transient:
            raise
        return _finish_failed(session, cluster, rotation, error.message)
    except (ArmAccessDenied, Conflict) as error:
        return _finish_failed(session, cluster, rotation, error.message)
    rotation.state = KeyRotationState.COMPLETED
    rotation.key_id_after = new_key_id
    rotation.finished_at = utc_now()
    cluster.key_id = new_key_id
    cluster.updated_at = rotation.finished_at
    session.add_all([rotation, cluster])
    record_audit_event(
        session,
        actor="system:provisioning-controller",
        action=AuditAction.CLUSTER_KEY_ROTATION_COMPLETED,
        subject_type="cluster",
        subject_id=cluster.id,
        tenant_id=cluster.tenant_id,
        before={"key_id": rotation.key_id_before},
        after={"key_id": new_key_id},
        details={"rotation_id": rotation.id, "requested_by": rotation.requested_by},
    )
    return rotation


def _finish_failed(session: Session, cluster: Cluster, rotation: KeyRotation, message: str) -> KeyRotation:
    rotation.state = KeyRotationState.FAILED
    rotation.error_message = message[:4096]
    rotation.finished_at = utc_now()
    session.add(rotation)
    record_audit_event(
        session,
        actor="system:provisioning-controller",
        action=AuditAction.CLUSTER_KEY_ROTATION_FAILED,
        subject_type="cluster",
        subject_id=cluster.id,
        tenant_id=cluster.tenant_id,
        outcome=AuditOutcome.FAILURE,
        details={"rotation_id": rotation.id, "message": message},
    )
    return rotation


def clusters_due_for_rotation(session: Session, *, now: datetime) -> list[Cluster]:
    """Ready clusters whose key is older than their policy's rotation_days (last rotation or first key)."""
    due: list[Cluster] = []
    candidates = session.exec(select(Cluster).where(col(Cluster.status).in_(ROTATABLE_STATUSES))).all()
    for cluster in candidates:
        if cluster.key_id is None:
            continue
        rotation_days = int((cluster.key_policy or {}).get("rotation_days", 90))
        latest = session.exec(
            select(KeyRotation.requested_at)
            .where(KeyRotation.cluster_id == cluster.id)
            .order_by(col(KeyRotation.requested_at).desc())
        ).first()
        key_created = session.exec(
            select(ArmDeployment.finished_at)
            .where(ArmDeployment.cluster_id == cluster.id, ArmDeployment.step == IDENTITY_KEY_VAULT)
            .order_by(col(ArmDeployment.id))
        ).first()
        since = latest or key_created
        if since is not None and since + timedelta(days=rotation_days) <= now:
            due.append(cluster)
    return due


def request_rotations_due(session: Session, *, now: datetime) -> tuple[int, int]:
    """Request a rotation for every cluster whose key policy says it is due: (requested, failed).

    A cluster that started a rotation or left the rotatable states since it was listed is skipped: the rotation
    under way, or the next sweep, covers it. Any other refusal (an IllegalTransition, a bug) is that cluster's alone:
    its savepoint is rolled back, operators are told through the audit trail and the log, and the other clusters
    are still served.
    """
    requested = failed = 0
    for cluster in clusters_due_for_rotation(session, now=now):
        try:
            with session.begin_nested():
                request_key_rotation(session, cluster, actor=POLICY_ACTOR, reason="rotation_days reached")
        except (KeyRotationInProgress, KeyNotRotatable):
            continue
        except Exception as error:
            failed += 1
            # The driver's message of an unexpected error may quote SQL and values: only its type is kept then.
            message = error.message if isinstance(error, ControlPlaneError) else "unexpected error"
            logger.error(
                "requesting a rotation due by policy failed",
                exc_info=error,
                extra={"cluster_id": cluster.id, "error": type(error).__name__},
            )
            record_audit_event(
                session,
                actor=POLICY_ACTOR,
                action=AuditAction.CLUSTER_KEY_ROTATION_FAILED,
                subject_type="cluster",
                subject_id=cluster.id,
                tenant_id=cluster.tenant_id,
                outcome=AuditOutcome.FAILURE,
                details={"stage": "request", "error": type(error).__name__, "message": message[:512]},
            )
            continue
        requested += 1
    return requested, failed
