"""Expected connections: consumers a customer admin declared, and the evidence their connection matched.

Revision ID: 0015_expected_connections
Revises: 0013_authz
Create Date: 2026-12-08 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.columns

revision: str = "0015_expected_connections"
down_revision: str | Sequence[str] | None = "0014_operator_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported: a migration keeps the values it was written with.
STATUSES = "'waiting', 'matched', 'expired', 'cancelled'"
KINDS = (
    "'customer-vnet', 'data-factory-managed-vnet', 'synapse-managed-vnet', 'databricks-serverless', "
    "'fabric-managed-vnet', 'ai-search-shared-private-link', 'azure-ml-managed-network'"
)


def upgrade() -> None:
    op.create_table(
        "expected_connections",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("cluster_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("consumer_kind", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("consumer_resource_id", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("expected_endpoint_id", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("expected_endpoint_name", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
        sa.Column("expected_request_message", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
        sa.Column("managed_endpoint_name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("created_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
        sa.Column("matched_connection_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_expected_connections_status"),
        sa.CheckConstraint(f"consumer_kind IN ({KINDS})", name="ck_expected_connections_consumer_kind"),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_expected_connections_cluster_id_clusters")
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_expected_connections_tenant_id_tenants")),
        sa.ForeignKeyConstraint(
            ["matched_connection_id"],
            ["private_endpoint_connections.id"],
            name=op.f("fk_expected_connections_matched_connection_id_private_endpoint_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expected_connections")),
    )
    with op.batch_alter_table("expected_connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_expected_connections_cluster_id"), ["cluster_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_expected_connections_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_expected_connections_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("expected_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_expected_connections_status"))
        batch_op.drop_index(batch_op.f("ix_expected_connections_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_expected_connections_cluster_id"))
    op.drop_table("expected_connections")
