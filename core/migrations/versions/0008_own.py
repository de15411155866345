"""Ownership in the customer's subscription: the resources each deployment created, and what deletion left behind.

Revision ID: 0008_own
Revises: 0007
Create Date: 2026-12-07 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_own"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Both columns start empty: rows written before this release recorded no resource ids."""
    with op.batch_alter_table("arm_deployments") as batch:
        batch.add_column(sa.Column("output_resources", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(sa.Column("leftover_resource_ids", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("leftover_resource_ids")
    with op.batch_alter_table("arm_deployments") as batch:
        batch.drop_column("output_resources")
