"""Refused requests are tallied: audit_events gain an aggregation key and an occurrence count.

Revision ID: 0012_secrets
Revises: 0011_billing
Create Date: 2026-12-07 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012_secrets"
down_revision: str | Sequence[str] | None = "0011_billing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Existing rows are single occurrences without a key."""
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("aggregation_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("occurrences", sa.Integer(), server_default="1", nullable=False))
        batch_op.create_unique_constraint("uq_audit_events_aggregation_key", ["aggregation_key"])


def downgrade() -> None:
    """Tallies become single rows again (their counts are lost)."""
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_audit_events_aggregation_key", type_="unique")
        batch_op.drop_column("occurrences")
        batch_op.drop_column("aggregation_key")
