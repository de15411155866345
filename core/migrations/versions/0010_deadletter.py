"""dead letters: outbox rows count their failed attempts and can be dead-lettered

Revision ID: 0010_deadletter
Revises: 0009_drift
Create Date: 2026-12-07 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.columns

revision: str = "0010_deadletter"
down_revision: str | Sequence[str] | None = "0009_drift"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        # Existing rows have failed no counted attempt yet; the default only fills them in.
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("dead_lettered_at", core.columns.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint("ck_outbox_messages_attempts", "attempts >= 0")
        batch_op.create_index(batch_op.f("ix_outbox_messages_dead_lettered_at"), ["dead_lettered_at"], unique=False)
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.alter_column("attempts", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_messages_dead_lettered_at"))
        batch_op.drop_constraint("ck_outbox_messages_attempts", type_="check")
        batch_op.drop_column("dead_lettered_at")
        batch_op.drop_column("attempts")
