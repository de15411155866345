"""Indexes for the operators' list pages: subscriptions sorted by creation and name, audit search by actor and subject.

Revision ID: 0014_operator_indexes
Revises: 0013_authz
Create Date: 2026-12-08 01:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_operator_indexes"
down_revision: str | Sequence[str] | None = "0013_authz"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("marketplace_subscriptions", schema=None) as batch_op:
        batch_op.create_index("ix_marketplace_subscriptions_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_marketplace_subscriptions_name_id", ["name", "id"], unique=False)
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_actor_occurred_at", ["actor", "occurred_at", "id"], unique=False)
        batch_op.create_index(
            "ix_audit_events_subject_id_occurred_at", ["subject_id", "occurred_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_subject_id_occurred_at")
        batch_op.drop_index("ix_audit_events_actor_occurred_at")
    with op.batch_alter_table("marketplace_subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_marketplace_subscriptions_name_id")
        batch_op.drop_index("ix_marketplace_subscriptions_created_at_id")
