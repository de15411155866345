"""What the provisioning controller did in ARM: one row per deployment it started, one per key rotation."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import StrEnumColumn, UTCDateTime, empty_json_list
from core.statemachine import enum_check


class DeploymentState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ArmDeployment(SQLModel, table=True):
    """One ARM deployment of one step for one generation (and attempt): the proof that nothing ran twice."""

    __tablename__ = "arm_deployments"
    __table_args__ = (
        sa.UniqueConstraint("cluster_id", "step", "generation", "attempt", name="uq_arm_deployments_step_attempt"),
        enum_check("state", DeploymentState, "ck_arm_deployments_state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    cluster_id: str = Field(foreign_key="clusters.id", index=True, max_length=36)
    step: str = Field(max_length=32)
    generation: int
    attempt: int = 1
    deployment_name: str = Field(unique=True, max_length=64)
    resource_group: str = Field(max_length=90)
    parameters: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    parameters_hash: str = Field(max_length=64)
    state: DeploymentState = Field(default=DeploymentState.RUNNING, sa_type=StrEnumColumn(DeploymentState, 16))
    outputs: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # The ids ARM reports the deployment created or updated (outputResources): what deletion may remove.
    output_resources: list[str] = Field(default_factory=empty_json_list, sa_type=sa.JSON)
    error_code: str | None = Field(default=None, max_length=128)
    error_message: str | None = Field(default=None, max_length=4096)
    error_details: list[dict[str, Any]] = Field(default_factory=empty_json_list, sa_type=sa.JSON)
    started_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class KeyRotationState(StrEnum):
    REQUESTED = "requested"
    COMPLETED = "completed"
    FAILED = "failed"


class KeyRotation(SQLModel, table=True):
    """A rotation of a cluster's customer-managed key, asked for by a person or by the key policy."""

    __tablename__ = "key_rotations"
    __table_args__ = (enum_check("state", KeyRotationState, "ck_key_rotations_state"),)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    cluster_id: str = Field(foreign_key="clusters.id", index=True, max_length=36)
    requested_by: str = Field(max_length=256)
    reason: str = Field(default="", max_length=256)
    state: KeyRotationState = Field(default=KeyRotationState.REQUESTED, sa_type=StrEnumColumn(KeyRotationState, 16))
    key_id_before: str | None = Field(default=None, max_length=1024)
    key_id_after: str | None = Field(default=None, max_length=1024)
    error_message: str | None = Field(default=None, max_length=4096)
    requested_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
