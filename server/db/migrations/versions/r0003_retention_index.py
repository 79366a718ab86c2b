"""An index for retention, which walks the finished jobs of one state oldest first.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine.reflection import Inspector

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def already_applied(inspector: Inspector) -> bool:
    """Whether a database made before migrations has the index already."""
    return "ix_jobs_state_ended" in {index["name"] for index in inspector.get_indexes("jobs")}


def upgrade() -> None:
    # Partial (finished rows only): claims and heartbeats, which never set ended_at, do not
    # maintain it.
    finished = sa.text("ended_at IS NOT NULL")
    op.create_index(
        "ix_jobs_state_ended",
        "jobs",
        ["state", "ended_at"],
        sqlite_where=finished,
        postgresql_where=finished,
    )


def downgrade() -> None:
    raise NotImplementedError("revisions only go forward: restore a backup to go back")
