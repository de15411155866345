"""How far each cluster's usage was read: the close bills an hour only once its collection passed the hour's end.

The ledger's unique key leads with the hour, which lets it serve queries by period, so the separate hour_start
index goes: one index less for the close to maintain per new entry.

Revision ID: 0016_usage_collected_through
Revises: 0013_authz
Create Date: 2026-12-08 00:50:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.columns

revision: str = "0016_usage_collected_through"
down_revision: str | Sequence[str] | None = "0015_expected_connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_collection_marks",
        sa.Column("cluster_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("collected_through", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.Column("complete_hours_before", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failing_since", core.columns.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("last_attempt_at", core.columns.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_usage_collection_marks_cluster_id_clusters")
        ),
        sa.PrimaryKeyConstraint("cluster_id", name=op.f("pk_usage_collection_marks")),
    )
    # Clusters collected before this release: their newest sample stands for what was read, so the hours before
    # its hour stay closable as they were (the hour holding it waits for the next read).
    samples = sa.table("usage_samples", sa.column("cluster_id"), sa.column("sampled_at", core.columns.UTCDateTime()))
    marks = sa.table(
        "usage_collection_marks",
        sa.column("cluster_id"),
        sa.column("collected_through", core.columns.UTCDateTime()),
        sa.column("complete_hours_before", core.columns.UTCDateTime()),
        sa.column("consecutive_failures"),
        sa.column("last_attempt_at", core.columns.UTCDateTime()),
    )
    connection = op.get_bind()
    newest = connection.execute(
        sa.select(samples.c.cluster_id, sa.func.max(samples.c.sampled_at)).group_by(samples.c.cluster_id)
    ).all()
    rows = []
    for cluster_id, sampled_at in newest:
        # SQLite hands an aggregate back as text.
        moment = sampled_at if isinstance(sampled_at, datetime) else datetime.fromisoformat(str(sampled_at))
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        rows.append(
            {
                "cluster_id": cluster_id,
                "collected_through": moment,
                "complete_hours_before": moment.replace(minute=0, second=0, microsecond=0),
                "consecutive_failures": 0,
                "last_attempt_at": moment,
            }
        )
    if rows:
        op.bulk_insert(marks, rows)

    with op.batch_alter_table("usage_ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_ledger_entries_hour_start")
        batch_op.drop_constraint("uq_usage_ledger_resource_hour", type_="unique")
        batch_op.create_unique_constraint(
            "uq_usage_ledger_resource_hour", ["hour_start", "resource_id", "dimension_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_ledger_entries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_usage_ledger_resource_hour", type_="unique")
        batch_op.create_unique_constraint(
            "uq_usage_ledger_resource_hour", ["resource_id", "dimension_id", "hour_start"]
        )
        batch_op.create_index("ix_usage_ledger_entries_hour_start", ["hour_start"], unique=False)
    op.drop_table("usage_collection_marks")
