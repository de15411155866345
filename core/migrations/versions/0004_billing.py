"""billing: sample hours, rejected samples, ledger adjustments and usage reconciliation reports

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-26 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.columns

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The hour is added nullable, filled from sampled_at, then made required, so existing samples survive.
    with op.batch_alter_table("usage_samples", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hour_start", core.columns.UTCDateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE usage_samples SET hour_start = date_trunc('hour', sampled_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        )
    else:
        op.execute("UPDATE usage_samples SET hour_start = substr(sampled_at, 1, 13) || ':00:00.000000'")
    with op.batch_alter_table("usage_samples", schema=None) as batch_op:
        batch_op.alter_column("hour_start", existing_type=core.columns.UTCDateTime(timezone=True), nullable=False)
        batch_op.create_index(batch_op.f("ix_usage_samples_hour_start"), ["hour_start"], unique=False)
        batch_op.create_index(
            "ix_usage_samples_cluster_id_dimension_id_hour_start",
            ["cluster_id", "dimension_id", "hour_start"],
            unique=False,
        )

    with op.batch_alter_table("usage_ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_usage_ledger_entries_status_hour_start_id", ["status", "hour_start", "id"], unique=False
        )

    op.create_table(
        "rejected_usage_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("dimension_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sampled_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("received_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_rejected_usage_samples_cluster_id_clusters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_usage_samples")),
        sa.UniqueConstraint("cluster_id", "dimension_id", "sampled_at", name="uq_rejected_usage_samples_point"),
    )

    op.create_table(
        "usage_ledger_adjustments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ledger_entry_id", sa.Integer(), nullable=False),
        sa.Column("samples_received_through", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("corrected_measured_quantity", sa.Float(), nullable=False),
        sa.Column("corrected_billable_quantity", sa.Float(), nullable=False),
        sa.Column("billable_delta", sa.Float(), nullable=False),
        sa.Column("created_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_entry_id"],
            ["usage_ledger_entries.id"],
            name=op.f("fk_usage_ledger_adjustments_ledger_entry_id_usage_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_ledger_adjustments")),
        sa.UniqueConstraint("ledger_entry_id", "samples_received_through", name="uq_usage_ledger_adjustments_point"),
    )
    with op.batch_alter_table("usage_ledger_adjustments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_usage_ledger_adjustments_ledger_entry_id"), ["ledger_entry_id"], unique=False
        )

    op.create_table(
        "usage_reconciliation_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_start", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("period_end", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("compared_groups", sa.Integer(), nullable=False),
        sa.Column("difference_count", sa.Integer(), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("created_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_reconciliation_reports")),
    )
    with op.batch_alter_table("usage_reconciliation_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_usage_reconciliation_reports_period_start"), ["period_start"], unique=False
        )

    op.create_table(
        "usage_reconciliation_differences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("resource_id", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("dimension_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("plan_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("usage_date", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ledger_quantity", sa.Float(), nullable=True),
        sa.Column("marketplace_quantity", sa.Float(), nullable=True),
        sa.Column("ledger_count", sa.Integer(), nullable=False),
        sa.Column("marketplace_count", sa.Integer(), nullable=False),
        sa.Column("marketplace_status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("ledger_entry_id", sa.Integer(), nullable=True),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
        sa.CheckConstraint(
            "kind IN ('missing_there', 'missing_here', 'quantity_mismatch', 'expired')",
            name="ck_usage_reconciliation_differences_kind",
        ),
        sa.ForeignKeyConstraint(
            ["ledger_entry_id"],
            ["usage_ledger_entries.id"],
            name=op.f("fk_usage_reconciliation_differences_ledger_entry_id_usage_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["usage_reconciliation_reports.id"],
            name=op.f("fk_usage_reconciliation_differences_report_id_usage_reconciliation_reports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_reconciliation_differences")),
    )
    with op.batch_alter_table("usage_reconciliation_differences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_usage_reconciliation_differences_report_id"), ["report_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_reconciliation_differences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_reconciliation_differences_report_id"))
    op.drop_table("usage_reconciliation_differences")
    with op.batch_alter_table("usage_reconciliation_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_reconciliation_reports_period_start"))
    op.drop_table("usage_reconciliation_reports")
    with op.batch_alter_table("usage_ledger_adjustments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_ledger_adjustments_ledger_entry_id"))
    op.drop_table("usage_ledger_adjustments")
    op.drop_table("rejected_usage_samples")
    with op.batch_alter_table("usage_ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_ledger_entries_status_hour_start_id")
    with op.batch_alter_table("usage_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_samples_cluster_id_dimension_id_hour_start")
        batch_op.drop_index(batch_op.f("ix_usage_samples_hour_start"))
        batch_op.drop_column("hour_start")
