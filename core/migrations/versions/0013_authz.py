"""Server-side browser sessions, and purchases waiting for the beneficiary's admin to place the cluster.

Revision ID: 0013_authz
Revises: 0012_secrets
Create Date: 2026-12-07 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.columns

revision: str = "0013_authz"
down_revision: str | Sequence[str] | None = "0012_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "browser_sessions",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("entra_tenant_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("object_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("directory_roles", sa.JSON(), nullable=False),
        sa.Column("sealed_data", sa.Text(), nullable=False),
        sa.Column("created_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("signed_in_at", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("roles_checked_at", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_browser_sessions")),
    )
    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_browser_sessions_entra_tenant_id"), ["entra_tenant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_browser_sessions_object_id"), ["object_id"], unique=False)
    with op.batch_alter_table("marketplace_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("placement_pending", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("marketplace_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("placement_pending")
    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_browser_sessions_object_id"))
        batch_op.drop_index(batch_op.f("ix_browser_sessions_entra_tenant_id"))
    op.drop_table("browser_sessions")
