"""The clusters JSON API: detail, operator retry, key rotation, private endpoint connections.

Customers see only their tenant's clusters (another tenant's id answers 404); operators see all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from api.security import AdminDep, OperatorDep, PrincipalDep
from core.clusters.key_rotation import request_key_rotation
from core.clusters.models import Cluster
from core.clusters.provisioning_models import ArmDeployment, KeyRotation
from core.clusters.recovery import retry_failed_cluster
from core.errors import NotFound
from core.networking.models import ConnectionStatus, PrivateEndpointConnection
from core.networking.service import decide_connection, list_connections, visible_cluster
from web.dependencies import SessionDep
from web.errors import error_response, error_responses

router = APIRouter(prefix="/api/clusters", tags=["clusters"], responses=error_responses(401, 404, 422))


class StepView(BaseModel):
    step: str
    generation: int
    attempt: int
    deployment_name: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    error: dict[str, Any] | None


class ClusterView(BaseModel):
    id: str
    name: str
    status: str
    region: str
    azure_subscription_id: str
    resource_group: str
    desired: dict[str, Any]
    observed: dict[str, Any]
    outputs: dict[str, Any]
    current_step: str | None
    last_error: dict[str, Any] | None
    retention_until: datetime | None
    leftover_resources: list[str] = Field(
        description="Resources someone else created in the cluster's group, kept (with the group) at deletion"
    )
    steps: list[StepView]


class ConnectionView(BaseModel):
    id: str
    connection_name: str
    private_endpoint_id: str | None
    source_subscription_id: str | None
    request_message: str | None
    status: str
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None


class ReasonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=256)


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approved", "rejected"]
    reason: str = Field(min_length=1, max_length=1024)


class RotationView(BaseModel):
    id: str
    state: str
    requested_by: str
    key_id_before: str | None
    key_id_after: str | None


def _cluster_view(cluster: Cluster, deployments: list[ArmDeployment]) -> ClusterView:
    last_error = (
        {"code": cluster.last_error_code, "message": cluster.last_error_message, "details": cluster.last_error_details}
        if cluster.last_error_code
        else None
    )
    return ClusterView(
        id=cluster.id,
        name=cluster.name,
        status=cluster.status,
        region=cluster.region,
        azure_subscription_id=cluster.azure_subscription_id,
        resource_group=cluster.resource_group,
        desired={
            "generation": cluster.desired_generation,
            "plan_id": cluster.desired_plan_id,
            "quantity": cluster.desired_quantity,
            "suspended": cluster.desired_suspended,
            "deleted": cluster.desired_deleted,
            "pls_visibility_subscriptions": cluster.pls_visibility_subscriptions,
            "pls_auto_approval_subscriptions": cluster.pls_auto_approval_subscriptions,
            "key_policy": cluster.key_policy,
        },
        observed={
            "generation": cluster.observed_generation,
            "plan_id": cluster.observed_plan_id,
            "quantity": cluster.observed_quantity,
        },
        outputs={
            "endpoint_fqdn": cluster.endpoint_fqdn,
            "pls_alias": cluster.pls_alias,
            "pls_resource_id": cluster.pls_resource_id,
            "key_id": cluster.key_id,
            "identity_id": cluster.identity_id,
        },
        current_step=cluster.current_step,
        last_error=last_error,
        retention_until=cluster.retention_until,
        leftover_resources=list(cluster.leftover_resource_ids or []),
        steps=[
            StepView(
                step=row.step,
                generation=row.generation,
                attempt=row.attempt,
                deployment_name=row.deployment_name,
                state=row.state,
                started_at=row.started_at,
                finished_at=row.finished_at,
                error={"code": row.error_code, "message": row.error_message, "details": row.error_details}
                if row.error_code
                else None,
            )
            for row in deployments
        ],
    )


def _connection_view(row: PrivateEndpointConnection) -> ConnectionView:
    return ConnectionView.model_validate(row, from_attributes=True)


@router.get("/{cluster_id}")
def get_cluster(cluster_id: str, session: SessionDep, principal: PrincipalDep) -> ClusterView:
    """Desired and observed spec, outputs, every deployment step and the last error."""
    cluster = visible_cluster(session, principal, cluster_id)
    deployments = session.exec(
        select(ArmDeployment).where(ArmDeployment.cluster_id == cluster.id).order_by(col(ArmDeployment.id))
    ).all()
    return _cluster_view(cluster, list(deployments))


@router.post(
    "/{cluster_id}/retry",
    status_code=202,
    responses={**error_responses(403), 409: error_response("The cluster has not failed")},
)
def retry_cluster(cluster_id: str, body: ReasonRequest, session: SessionDep, operator: OperatorDep) -> ClusterView:
    """Operators only: give a failed cluster a fresh retry budget."""
    cluster = retry_failed_cluster(session, cluster_id, actor=operator.actor, reason=body.reason)
    return _cluster_view(cluster, [])


@router.post(
    "/{cluster_id}/key-rotations",
    status_code=202,
    responses={
        **error_responses(403),
        409: error_response("A rotation is already in progress, or the cluster has no key yet"),
    },
)
def rotate_key(cluster_id: str, body: ReasonRequest, session: SessionDep, principal: AdminDep) -> RotationView:
    """Rotate the customer-managed key now (the customer's admins or operators)."""
    cluster = visible_cluster(session, principal, cluster_id)
    rotation = request_key_rotation(session, cluster, actor=principal.actor, reason=body.reason)
    return _rotation_view(rotation)


@router.get("/{cluster_id}/key-rotations/{rotation_id}")
def get_rotation(cluster_id: str, rotation_id: str, session: SessionDep, principal: PrincipalDep) -> RotationView:
    """One key rotation and its outcome."""
    cluster = visible_cluster(session, principal, cluster_id)
    rotation = session.exec(
        select(KeyRotation).where(KeyRotation.id == rotation_id, KeyRotation.cluster_id == cluster.id)
    ).first()
    if rotation is None:
        raise NotFound("key rotation not found", details={"rotation_id": rotation_id})
    return _rotation_view(rotation)


def _rotation_view(rotation: KeyRotation) -> RotationView:
    return RotationView.model_validate(rotation, from_attributes=True)


@router.get("/{cluster_id}/private-endpoint-connections")
def get_connections(
    cluster_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    status: ConnectionStatus | None = None,
) -> list[ConnectionView]:
    """The cluster's private endpoint connections (`?status=pending` for those waiting on a customer admin)."""
    return [_connection_view(row) for row in list_connections(session, principal, cluster_id, status)]


@router.post(
    "/{cluster_id}/private-endpoint-connections/{connection_id}/decision",
    responses={**error_responses(403), 409: error_response("The connection was already decided this way, or rejected")},
)
def decide(
    cluster_id: str, connection_id: str, body: DecisionRequest, session: SessionDep, principal: AdminDep
) -> ConnectionView:
    """Approve or reject a connection as the signed-in person; ARM is updated by the sync task."""
    row = decide_connection(session, principal, cluster_id, connection_id, ConnectionStatus(body.decision), body.reason)
    return _connection_view(row)
