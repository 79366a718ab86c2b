"""Job-type parameter schemas, the result cache, webhooks, and local_path routing.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine.reflection import Inspector

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

_CACHED_ROWS = sa.text("cache_key IS NOT NULL")
_WEBHOOK_ROWS = sa.text("webhook_state IN ('waiting', 'pending')")


def already_applied(inspector: Inspector) -> bool:
    """Whether a database made before migrations has the table already."""
    return inspector.has_table("job_type_schemas")


def upgrade() -> None:
    for column in (
        sa.Column("cache_key", sa.String(64), nullable=True),
        sa.Column("cached_from", sa.String(36), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_state", sa.String(16), nullable=True),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("webhook_next_at", sa.Float(), nullable=True),
        sa.Column("declined_by", sa.JSON(), nullable=True),
    ):
        op.add_column("jobs", column)
    op.create_index(
        "ix_jobs_cache_key",
        "jobs",
        ["namespace", "cache_key"],
        sqlite_where=_CACHED_ROWS,
        postgresql_where=_CACHED_ROWS,
    )
    op.create_index(
        "ix_jobs_webhook_state",
        "jobs",
        ["webhook_state", "webhook_next_at"],
        sqlite_where=_WEBHOOK_ROWS,
        postgresql_where=_WEBHOOK_ROWS,
    )
    op.create_table(
        "job_type_schemas",
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("params_schema", sa.JSON(), nullable=False),
        sa.Column("registered_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("type", "version"),
    )
    op.create_table(
        "namespace_secrets",
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("namespace"),
    )


def downgrade() -> None:
    raise NotImplementedError("revisions only go forward: restore a backup to go back")
