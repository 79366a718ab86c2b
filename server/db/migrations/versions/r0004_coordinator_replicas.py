"""Coordinator liveness: one row per coordinator process, moved on by its reaper.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine.reflection import Inspector

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def already_applied(inspector: Inspector) -> bool:
    """Whether a database made before migrations has the table already."""
    return inspector.has_table("coordinator_replicas")


def upgrade() -> None:
    op.create_table(
        "coordinator_replicas",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.Column("succeeded_by", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_coordinator_replicas_last_seen_at", "coordinator_replicas", ["last_seen_at"])


def downgrade() -> None:
    raise NotImplementedError("revisions only go forward: restore a backup to go back")
