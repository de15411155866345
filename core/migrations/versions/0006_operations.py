"""operations: outbox trace context, Blob probe samples, Log Analytics export marks and log spool

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-26 01:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.columns

revision: str = "0006"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("traceparent", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))

    op.create_table(
        "blob_probe_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("cluster_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("check_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("authentication", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error_code", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("error_message", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True),
        sa.Column("probed_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_blob_probe_samples_cluster_id_clusters")
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_blob_probe_samples_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blob_probe_samples")),
    )
    with op.batch_alter_table("blob_probe_samples", schema=None) as batch_op:
        batch_op.create_index("ix_blob_probe_samples_cluster_time", ["cluster_id", "probed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_blob_probe_samples_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_blob_probe_samples_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "monitor_export_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("stream", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("exported_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_export_marks")),
        sa.UniqueConstraint("source", "source_id", name="uq_monitor_export_marks_source_row"),
    )

    op.create_table(
        "log_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.Column("level", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("logger_name", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=8192), nullable=False),
        sa.Column("process", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("correlation_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("trace_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_records")),
    )
    with op.batch_alter_table("log_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_records_recorded_at"), ["recorded_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("log_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_records_recorded_at"))
    op.drop_table("log_records")
    op.drop_table("monitor_export_marks")
    with op.batch_alter_table("blob_probe_samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blob_probe_samples_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_blob_probe_samples_run_id"))
        batch_op.drop_index("ix_blob_probe_samples_cluster_time")
    op.drop_table("blob_probe_samples")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_column("traceparent")
