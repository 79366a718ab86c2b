"""Operators: API key expiry, rotation and task-type limits; a covering index for the job counts;
job events that carry data and never reuse an id; dashboard sessions.

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


BIG_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def already_applied(inspector: Inspector) -> bool:
    """Whether a database made before migrations has the table already."""
    return inspector.has_table("dashboard_sessions")


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
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_job_events_with_autoincrement()
    else:
        op.add_column("job_events", sa.Column("data", sa.JSON(), nullable=True))
    op.create_index("ix_job_events_kind_at", "job_events", ["kind", "at"])
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dashboard_sessions_key_id", "dashboard_sessions", ["key_id"])
    op.create_index("ix_dashboard_sessions_expires_at", "dashboard_sessions", ["expires_at"])


def _rebuild_job_events_with_autoincrement() -> None:
    """SQLite only adds AUTOINCREMENT to a new table: copy the rows over (ids kept)."""
    old = "job_events_before_0006"
    op.drop_index("ix_job_events_job_id", table_name="job_events")
    op.rename_table("job_events", old)
    op.create_table(
        "job_events",
        sa.Column("id", BIG_INT, nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("worker_id", sa.String(36), nullable=True),
        sa.Column("detail", sa.String(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    shared = "id, job_id, at, kind, attempt, worker_id, detail"
    op.execute(f"INSERT INTO job_events ({shared}) SELECT {shared} FROM {old}")
    op.drop_table(old)
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])


def downgrade() -> None:
    raise NotImplementedError("revisions only go forward: restore a backup to go back")
