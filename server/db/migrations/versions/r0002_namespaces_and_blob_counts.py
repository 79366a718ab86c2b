"""Namespaces, salted key hashes, upload lifetimes, blob reference counts, attempt outputs.

Development builds between the first release and this revision changed the tables bit by bit
without migrations, so this revision adds only what a table lacks, and a database made before
migrations that has all of it is stamped at this revision instead. The blobs that uploads and
jobs already name are counted into the new ``blobs`` table, so that none is taken for garbage.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine.reflection import Inspector

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

DEFAULT_NAMESPACE = "default"
BIG_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""64-bit on PostgreSQL, as in revision 0001."""
_PER_NAMESPACE = "jobs.idempotency_key unique per namespace"


def _new_columns() -> dict[str, list[sa.Column[object]]]:
    """Columns of tables that already exist; each has a server default or may be NULL."""
    return {
        "api_keys": [
            sa.Column("hash_scheme", sa.String(16), server_default="sha256", nullable=False),
            sa.Column("salt", sa.String(64), nullable=True),
            sa.Column("namespaces", sa.Text(), server_default="[]", nullable=False),
        ],
        "job_types": [sa.Column("last_seen_at", sa.Float(), nullable=True)],
        "uploads": [
            sa.Column("namespace", sa.String(64), server_default=DEFAULT_NAMESPACE, nullable=False),
            sa.Column("last_used_at", sa.Float(), server_default="0", nullable=False),
        ],
    }


def _jobs_columns() -> list[sa.Column[object]]:
    """The jobs table of this revision, in the order its models declare the columns."""
    return [
        sa.Column("seq", BIG_INT, nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("namespace", sa.String(64), server_default=DEFAULT_NAMESPACE, nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=True),
        sa.Column("progress_message", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=True),
        sa.Column("total_timeout_s", sa.Float(), nullable=True),
        sa.Column("retry", sa.JSON(), nullable=False),
        sa.Column("worker_type", sa.String(8), nullable=True),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("attempt_started_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("available_at", sa.Float(), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("lease_token", sa.String(64), nullable=True),
        sa.Column("last_lease_token", sa.String(64), nullable=True),
        sa.Column("worker_id", sa.String(36), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
    ]


def _missing(inspector: Inspector) -> set[str]:
    """What of this revision the database lacks: ``table``, ``table.column`` or ``table.index``."""
    missing = {table for table in ("blobs", "attempt_outputs") if not inspector.has_table(table)}
    for table, columns in [("jobs", _jobs_columns()), *_new_columns().items()]:
        present = {column["name"] for column in inspector.get_columns(table)}
        missing |= {f"{table}.{column.name}" for column in columns if column.name not in present}
    for table, index in (("jobs", "ix_jobs_namespace_seq"), ("uploads", "ix_uploads_last_used_at")):
        if index not in {found["name"] for found in inspector.get_indexes(table)}:
            missing.add(f"{table}.{index}")
    uniques = [tuple(found["column_names"]) for found in inspector.get_unique_constraints("jobs")]
    if ("idempotency_key",) in uniques or ("namespace", "idempotency_key") not in uniques:
        missing.add(_PER_NAMESPACE)
    return missing


def already_applied(inspector: Inspector) -> bool:
    """Whether a database made before migrations has everything this revision adds."""
    return not _missing(inspector)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    missing = _missing(inspector)
    rebuilt_on_sqlite = {_PER_NAMESPACE, "jobs.namespace", "jobs.last_lease_token"}
    if bind.dialect.name == "sqlite" and rebuilt_on_sqlite & missing:
        _rebuild_sqlite_jobs(bind, inspector)
    else:
        _alter_jobs(inspector, missing)
    for table, columns in _new_columns().items():
        for column in columns:
            if f"{table}.{column.name}" in missing:
                op.add_column(table, column)
    if "uploads.last_used_at" in missing:
        # Old uploads count from when they were uploaded, not from the upgrade.
        op.execute("UPDATE uploads SET last_used_at = created_at")
    if "uploads.ix_uploads_last_used_at" in missing:
        op.create_index("ix_uploads_last_used_at", "uploads", ["last_used_at"])
    if "attempt_outputs" in missing:
        op.create_table(
            "attempt_outputs",
            sa.Column("id", BIG_INT, nullable=False),
            sa.Column("job_id", sa.String(36), nullable=False),
            sa.Column("lease_token", sa.String(64), nullable=False),
            sa.Column("name", sa.String(), nullable=False),
            sa.Column("blob_key", sa.String(64), nullable=False),
            sa.Column("size", BIG_INT, nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("job_id", "lease_token", "name", name="uq_attempt_outputs_name"),
        )
    if "blobs" in missing:
        op.create_table(
            "blobs",
            sa.Column("key", sa.String(64), nullable=False),
            sa.Column("refs", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("stored_at", sa.Float(), nullable=True),
            sa.PrimaryKeyConstraint("key"),
        )
        op.create_index("ix_blobs_refs", "blobs", ["refs"])
        op.execute(_count_existing_blobs(bind.dialect.name))


def _alter_jobs(inspector: Inspector, missing: set[str]) -> None:
    for column in _jobs_columns():
        if f"jobs.{column.name}" in missing:
            op.add_column("jobs", column)
    if _PER_NAMESPACE in missing:
        for unique in inspector.get_unique_constraints("jobs"):
            if unique["column_names"] == ["idempotency_key"] and unique["name"]:
                op.drop_constraint(unique["name"], "jobs", type_="unique")
        op.create_unique_constraint(
            "uq_jobs_namespace_idempotency_key", "jobs", ["namespace", "idempotency_key"]
        )
    if "jobs.ix_jobs_namespace_seq" in missing:
        op.create_index("ix_jobs_namespace_seq", "jobs", ["namespace", "seq"])


def _rebuild_sqlite_jobs(bind: sa.Connection, inspector: Inspector) -> None:
    """Copy the jobs into a table of this revision: SQLite changes a constraint no other way.

    Done by hand rather than with Alembic's batch mode, which would rebuild ``ix_jobs_claim``
    without its ``DESC`` (SQLite does not report the order of an index's columns).
    """
    kept = {column["name"] for column in inspector.get_columns("jobs")}
    old = "jobs_before_0002"
    op.rename_table("jobs", old)
    # Index names are global in SQLite: drop the old table's before the new one creates its own.
    for index in sa.inspect(bind).get_indexes(old):
        if index["name"]:
            op.drop_index(index["name"], table_name=old)
    columns = _jobs_columns()
    shared = ", ".join(column.name for column in columns if column.name in kept)
    op.create_table(
        "jobs",
        *columns,
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("namespace", "idempotency_key", name="uq_jobs_namespace_idempotency_key"),
        sa.UniqueConstraint("id"),
    )
    op.execute(f"INSERT INTO jobs ({shared}) SELECT {shared} FROM {old}")
    op.drop_table(old)
    op.create_index("ix_jobs_claim", "jobs", ["state", sa.text("priority DESC"), "seq"])
    op.create_index("ix_jobs_namespace_seq", "jobs", ["namespace", "seq"])
    op.create_index("ix_jobs_state_available", "jobs", ["state", "available_at"])
    op.create_index("ix_jobs_state_lease", "jobs", ["state", "lease_expires_at"])
    op.create_index("ix_jobs_type_state", "jobs", ["type", "state"])


# The blob key of each element of a job's inputs or outputs (a JSON array of objects), per
# dialect. A value that is not an array (a corrupt row) names nothing rather than failing the upgrade.
_JSON_ELEMENTS = {
    "sqlite": (
        "SELECT json_extract(f.value, '$.blob_key'), j.created_at FROM jobs AS j, json_each("
        "CASE WHEN json_valid(j.{column}) THEN CASE WHEN json_type(j.{column}) = 'array'"
        " THEN j.{column} ELSE '[]' END ELSE '[]' END) AS f"
    ),
    "postgresql": (
        "SELECT f.value ->> 'blob_key', j.created_at FROM jobs AS j, json_array_elements("
        "CASE WHEN json_typeof(j.{column}) = 'array' THEN j.{column} ELSE '[]'::json END) AS f"
    ),
}

# Every blob an upload, a job's input or a job's output names, with how many of them do.
_COUNT_EXISTING_BLOBS = """
INSERT INTO blobs (key, refs, created_at, stored_at)
SELECT blob_key, count(*), min(at), min(at) FROM (
    SELECT blob_key, created_at AS at FROM uploads
    UNION ALL {inputs}
    UNION ALL {outputs}
) AS named
WHERE blob_key IS NOT NULL
GROUP BY blob_key
"""


def _count_existing_blobs(dialect: str) -> str:
    elements = _JSON_ELEMENTS[dialect]
    return _COUNT_EXISTING_BLOBS.format(
        inputs=elements.format(column="inputs"), outputs=elements.format(column="outputs")
    )


def downgrade() -> None:
    raise NotImplementedError("revisions only go forward: restore a backup to go back")
