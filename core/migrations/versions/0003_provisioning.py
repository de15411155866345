"""provisioning: ARM deployments per step and generation, key rotations

Revision ID: 0003
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.columns

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "arm_deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("step", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("deployment_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("resource_group", sqlmodel.sql.sqltypes.AutoString(length=90), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("parameters_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("error_code", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("error_message", sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=True),
        sa.Column("error_details", sa.JSON(), nullable=False),
        sa.Column("started_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('running', 'succeeded', 'failed')", name="ck_arm_deployments_state"),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"], name=op.f("fk_arm_deployments_cluster_id_clusters")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arm_deployments")),
        sa.UniqueConstraint("cluster_id", "step", "generation", "attempt", name="uq_arm_deployments_step_attempt"),
        sa.UniqueConstraint("deployment_name", name=op.f("uq_arm_deployments_deployment_name")),
    )
    op.create_index(op.f("ix_arm_deployments_cluster_id"), "arm_deployments", ["cluster_id"], unique=False)
    op.create_table(
        "key_rotations",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("cluster_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("key_id_before", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("key_id_after", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("error_message", sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=True),
        sa.Column("requested_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('requested', 'completed', 'failed')", name="ck_key_rotations_state"),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.id"], name=op.f("fk_key_rotations_cluster_id_clusters")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_rotations")),
    )
    op.create_index(op.f("ix_key_rotations_cluster_id"), "key_rotations", ["cluster_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_key_rotations_cluster_id"), table_name="key_rotations")
    op.drop_table("key_rotations")
    op.drop_index(op.f("ix_arm_deployments_cluster_id"), table_name="arm_deployments")
    op.drop_table("arm_deployments")
