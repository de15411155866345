"""Drift: a difference between what our deployments made in the customer's Azure and what ARM holds now."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import StrEnumColumn, UTCDateTime
from core.statemachine import enum_check


class DriftKind(StrEnum):
    """What changed out of band."""

    RESOURCE_GROUP_DELETED = "resource_group_deleted"
    RESOURCE_DELETED = "resource_deleted"
    SCALE_SET_CAPACITY_CHANGED = "scale_set_capacity_changed"
    SCALE_SET_SKU_CHANGED = "scale_set_sku_changed"
    PLS_VISIBILITY_CHANGED = "pls_visibility_changed"
    PLS_AUTO_APPROVAL_CHANGED = "pls_auto_approval_changed"
    KEY_DISABLED = "key_disabled"
    KEY_DELETED = "key_deleted"
    ROLE_ASSIGNMENT_REMOVED = "role_assignment_removed"


class DriftRemedy(StrEnum):
    """What we do about it: re-run the step that made it, or hand it to an operator (repair could lose data)."""

    REPAIR = "repair"
    INCIDENT = "incident"


class DriftState(StrEnum):
    """open: seen, repair asked for (or incident raised); resolved: ARM agrees with our deployments again."""

    OPEN = "open"
    RESOLVED = "resolved"


class ClusterDrift(SQLModel, table=True):
    """One drift of one cluster, from the observation that saw it to the one that no longer does."""

    __tablename__ = "cluster_drifts"
    __table_args__ = (
        enum_check("kind", DriftKind, "ck_cluster_drifts_kind"),
        enum_check("remedy", DriftRemedy, "ck_cluster_drifts_remedy"),
        enum_check("state", DriftState, "ck_cluster_drifts_state"),
        sa.Index("ix_cluster_drifts_cluster_state", "cluster_id", "state"),
    )

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    cluster_id: str = Field(foreign_key="clusters.id", max_length=36)
    tenant_id: str = Field(max_length=36)
    kind: str = Field(max_length=40)
    # The ARM resource the drift is about (the group itself for resource_group_deleted).
    resource_id: str = Field(max_length=1024)
    # The deployment step whose re-run repairs it (also recorded for incidents: what an operator would re-run).
    step: str = Field(max_length=32)
    remedy: str = Field(max_length=16)
    state: DriftState = Field(default=DriftState.OPEN, sa_type=StrEnumColumn(DriftState, 16))
    expected: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    observed: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # Repairs asked for while this drift stayed open; past the setting's limit it becomes an incident.
    repair_attempts: int = 0
    repair_requested_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The cluster's newest deployment row when the repair was asked for: a later successful deployment of `step`
    # is the repair (ids, not clocks, so hosts with skewed clocks agree).
    repair_after_deployment_id: int | None = None
    detected_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
