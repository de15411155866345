"""marketplace lifecycle: operation generations, confirmed landing tokens, reconciliation reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.columns

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "marketplace_reconciliation_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("requested_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.Column("subscriptions_seen", sa.Integer(), nullable=False),
        sa.Column("operations_seen", sa.Integer(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True),
        sa.CheckConstraint(
            "status IN ('requested', 'completed', 'failed')", name="ck_marketplace_reconciliation_reports_status"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_marketplace_reconciliation_reports")),
    )
    with op.batch_alter_table("marketplace_reconciliation_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_marketplace_reconciliation_reports_status"), ["status"], unique=False)

    with op.batch_alter_table("marketplace_operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("desired_generation", sa.Integer(), nullable=True))

    with op.batch_alter_table("marketplace_subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("confirmed_token_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_marketplace_subscriptions_confirmed_token_sha256"), ["confirmed_token_sha256"]
        )


def downgrade() -> None:
    with op.batch_alter_table("marketplace_subscriptions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_marketplace_subscriptions_confirmed_token_sha256"), type_="unique")
        batch_op.drop_column("confirmed_token_sha256")

    with op.batch_alter_table("marketplace_operations", schema=None) as batch_op:
        batch_op.drop_column("desired_generation")

    with op.batch_alter_table("marketplace_reconciliation_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_marketplace_reconciliation_reports_status"))

    op.drop_table("marketplace_reconciliation_reports")
