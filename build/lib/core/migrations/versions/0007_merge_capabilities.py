"""Merge the lifecycle, provisioning, billing, managed-application and operations branches.

Revision ID: 0007
Revises: 0002, 0003, 0004, 0005, 0006
Create Date: 2026-11-26 01:50:00
"""

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | Sequence[str] | None = ("0002", "0003", "0004", "0005", "0006")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The branches touch different tables; merging needs no schema change."""


def downgrade() -> None:
    """Splitting the branches again needs no schema change either."""
