"""A cluster row holds the desired spec, the observed state, the ARM handles and the outputs."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import StrEnumColumn, UTCDateTime, empty_json_list
from core.statemachine import StateMachine, enum_check


class ClusterStatus(StrEnum):
    PENDING = "pending"
    PROVISIONING = "provisioning"
    READY = "ready"
    UPDATING = "updating"
    SUSPENDING = "suspending"
    SUSPENDED = "suspended"
    RESUMING = "resuming"
    DEPROVISIONING = "deprovisioning"
    DELETED = "deleted"
    FAILED = "failed"

    @property
    def settled(self) -> bool:
        """Whether nothing happens in this status until the desired spec changes or an operator acts."""
        return self in SETTLED_CLUSTER_STATUSES


# The one definition of a settled cluster: the controller stops checking it, and whatever waits on it (the
# portal's timeline, the sandbox's report) stops polling. A string status compares equal to its member.
SETTLED_CLUSTER_STATUSES: frozenset[ClusterStatus] = frozenset(
    {ClusterStatus.READY, ClusterStatus.SUSPENDED, ClusterStatus.DELETED, ClusterStatus.FAILED}
)

_ANY_LIVE_TO_FAILED_OR_DELETING = [ClusterStatus.FAILED, ClusterStatus.DEPROVISIONING]

CLUSTER_STATES = StateMachine(
    "cluster",
    {
        ClusterStatus.PENDING: [ClusterStatus.PROVISIONING, *_ANY_LIVE_TO_FAILED_OR_DELETING],
        ClusterStatus.PROVISIONING: [ClusterStatus.READY, *_ANY_LIVE_TO_FAILED_OR_DELETING],
        ClusterStatus.READY: [ClusterStatus.UPDATING, ClusterStatus.SUSPENDING, *_ANY_LIVE_TO_FAILED_OR_DELETING],
        ClusterStatus.UPDATING: [ClusterStatus.READY, ClusterStatus.SUSPENDING, *_ANY_LIVE_TO_FAILED_OR_DELETING],
        ClusterStatus.SUSPENDING: [ClusterStatus.SUSPENDED, *_ANY_LIVE_TO_FAILED_OR_DELETING],
        ClusterStatus.SUSPENDED: [ClusterStatus.RESUMING, *_ANY_LIVE_TO_FAILED_OR_DELETING],
        ClusterStatus.RESUMING: [ClusterStatus.READY, *_ANY_LIVE_TO_FAILED_OR_DELETING],
        ClusterStatus.DEPROVISIONING: [ClusterStatus.DELETED, ClusterStatus.FAILED],
        # An operator retry re-enters the flow from the start; the controller skips steps already done.
        ClusterStatus.FAILED: [ClusterStatus.PROVISIONING, ClusterStatus.DEPROVISIONING],
        ClusterStatus.DELETED: [],
    },
)


class Cluster(SQLModel, table=True):
    __tablename__ = "clusters"
    __table_args__ = (
        enum_check("status", ClusterStatus, "ck_clusters_status"),
        sa.CheckConstraint("desired_quantity >= 1", name="ck_clusters_desired_quantity"),
        sa.CheckConstraint("observed_generation <= desired_generation", name="ck_clusters_generation_order"),
        sa.CheckConstraint(
            "subscription_id IS NOT NULL OR managed_application_id IS NOT NULL", name="ck_clusters_owner"
        ),
    )

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    subscription_id: str | None = Field(
        default=None, foreign_key="marketplace_subscriptions.id", unique=True, max_length=64
    )
    managed_application_id: str | None = Field(default=None, unique=True, max_length=512)
    name: str = Field(max_length=64)
    region: str = Field(max_length=64)
    azure_subscription_id: str = Field(max_length=64)
    resource_group: str = Field(max_length=90)

    # Desired spec; every change bumps desired_generation.
    desired_plan_id: str = Field(max_length=64)
    desired_quantity: int
    desired_suspended: bool = False
    desired_deleted: bool = False
    pls_visibility_subscriptions: list[str] = Field(default_factory=empty_json_list, sa_type=sa.JSON)
    pls_auto_approval_subscriptions: list[str] = Field(default_factory=empty_json_list, sa_type=sa.JSON)
    key_policy: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    desired_generation: int = 1

    # Observed state.
    status: ClusterStatus = Field(default=ClusterStatus.PENDING, sa_type=StrEnumColumn(ClusterStatus, 16), index=True)
    observed_generation: int = 0
    observed_plan_id: str | None = Field(default=None, max_length=64)
    observed_quantity: int | None = None
    current_step: str | None = Field(default=None, max_length=64)
    arm_deployment_name: str | None = Field(default=None, max_length=64)
    arm_operation_url: str | None = Field(default=None, max_length=2048)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error_code: str | None = Field(default=None, max_length=128)
    last_error_message: str | None = Field(default=None, max_length=4096)
    last_error_details: list[dict[str, Any]] = Field(default_factory=empty_json_list, sa_type=sa.JSON)
    retention_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the cluster first served: billing counts usage from the later of this and activation.
    first_ready_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    # Outputs recorded when ready.
    endpoint_fqdn: str | None = Field(default=None, max_length=512)
    pls_alias: str | None = Field(default=None, max_length=512)
    pls_resource_id: str | None = Field(default=None, max_length=1024)
    key_id: str | None = Field(default=None, max_length=1024)
    identity_id: str | None = Field(default=None, max_length=1024)
    # Resources someone else put in our resource group, kept (with the group) when the cluster was deleted.
    leftover_resource_ids: list[str] = Field(default_factory=empty_json_list, sa_type=sa.JSON)

    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
