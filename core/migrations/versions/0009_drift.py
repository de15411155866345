"""drift: what changed out of band in a cluster's Azure resources, and what we did about it

Revision ID: 0009_drift
Revises: 0008_own
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.columns

revision: str = "0009_drift"
down_revision: str | None = "0008_own"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (
    "resource_group_deleted",
    "resource_deleted",
    "scale_set_capacity_changed",
    "scale_set_sku_changed",
    "pls_visibility_changed",
    "pls_auto_approval_changed",
    "key_disabled",
    "key_deleted",
    "role_assignment_removed",
)


def upgrade() -> None:
    kinds = ", ".join(f"'{kind}'" for kind in KINDS)
    op.create_table(
        "cluster_drifts",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("cluster_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("resource_id", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("step", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("remedy", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("expected", sa.JSON(), nullable=False),
        sa.Column("observed", sa.JSON(), nullable=False),
        sa.Column("repair_attempts", sa.Integer(), nullable=False),
        sa.Column("repair_requested_at", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.Column("repair_after_deployment_id", sa.Integer(), nullable=True),
        sa.Column("detected_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"kind IN ({kinds})", name="ck_cluster_drifts_kind"),
        sa.CheckConstraint("remedy IN ('repair', 'incident')", name="ck_cluster_drifts_remedy"),
        sa.CheckConstraint("state IN ('open', 'resolved')", name="ck_cluster_drifts_state"),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"], name=op.f("fk_cluster_drifts_cluster_id_clusters")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_drifts")),
    )
    op.create_index("ix_cluster_drifts_cluster_state", "cluster_drifts", ["cluster_id", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_cluster_drifts_cluster_state", table_name="cluster_drifts")
    op.drop_table("cluster_drifts")
