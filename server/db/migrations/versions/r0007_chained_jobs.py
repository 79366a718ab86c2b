"""Chained jobs: a job's ``then`` steps, and the links between parents and children.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine.reflection import Inspector

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def already_applied(inspector: Inspector) -> bool:
    """Whether a database made before migrations has the columns already."""
    return any(column["name"] == "parent_id" for column in inspector.get_columns("jobs"))


def upgrade() -> None:
    for column in (
        sa.Column("parent_id", sa.String(36), nullable=True),
        sa.Column("chain_index", sa.Integer(), nullable=True),
        sa.Column("then_steps", sa.JSON(), nullable=True),
        sa.Column("children", sa.JSON(), nullable=True),
    ):
        op.add_column("jobs", column)
    op.create_index("uq_jobs_parent_step", "jobs", ["parent_id", "chain_index"], unique=True)


def downgrade() -> None:
    raise NotImplementedError("revisions only go forward: restore a backup to go back")
