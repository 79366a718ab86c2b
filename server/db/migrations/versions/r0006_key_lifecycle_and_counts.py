"""API key expiry, rotation and task-type limits; a covering index for the job counts.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine.reflection import Inspector

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def already_applied(inspector: Inspector) -> bool:
    """Whether a database made before migrations has these columns already."""
    return "expires_at" in {column["name"] for column in inspector.get_columns("api_keys")}


def upgrade() -> None:
    for column in (
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("task_types", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("previous_hash", sa.String(64), nullable=True),
        sa.Column("previous_prefix", sa.String(16), nullable=True),
        sa.Column("previous_expires_at", sa.Float(), nullable=True),
        sa.Column("rotated_at", sa.Float(), nullable=True),
    ):
        op.add_column("api_keys", column)
    op.create_index("ix_api_keys_previous_hash", "api_keys", ["previous_hash"])
    op.create_index("ix_jobs_counts", "jobs", ["namespace", "type", "priority", "state"])


def downgrade() -> None:
    raise NotImplementedError("revisions only go forward: restore a backup to go back")
