"""Bring a SQLite database made by an earlier version up to the current tables.

There are no migrations yet (Alembic comes later); until then the coordinator upgrades an old
file in place when it starts: missing columns and indexes are added (each new column has a server
default), and a table whose constraints changed is rebuilt, which is how SQLite changes a
constraint. The ``blobs`` table, new in this version, is filled with the reference counts of the
blobs that uploads and jobs already name, so that none of them is taken for garbage.
"""

from __future__ import annotations

from sqlalchemy import Connection, MetaData, Table
from sqlalchemy.schema import CreateColumn


def upgrade_tables(conn: Connection, metadata: MetaData) -> list[str]:
    """Upgrade the tables that exist; returns one line per change (empty when none was needed)."""
    changes: list[str] = []
    existing = {
        name for (name,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    jobs = metadata.tables["jobs"]
    if jobs.name in existing and _unique_on(conn, jobs.name, ["idempotency_key"]):
        _rebuild(conn, jobs)
        changes.append("jobs: idempotency keys are unique per namespace (table rebuilt)")
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue
        present = _columns(conn, table.name)
        for col in table.columns:
            if col.name not in present:
                ddl = CreateColumn(col).compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")
                changes.append(f"{table.name}: added column {col.name}")
                if (table.name, col.name) == ("uploads", "last_used_at"):
                    conn.exec_driver_sql("UPDATE uploads SET last_used_at = created_at")
        changes += _add_missing_indexes(conn, table)
    if "blobs" not in existing and {"jobs", "uploads"} <= existing:
        metadata.tables["blobs"].create(conn)
        counted = conn.exec_driver_sql(_COUNT_EXISTING_BLOBS).rowcount
        changes.append(f"blobs: reference counts recorded for {counted} existing blobs")
    return changes


# Every blob an upload, a job's input or a job's output names, with how many of them do. A JSON
# column that does not parse (a corrupt row) names nothing rather than failing the upgrade.
_COUNT_EXISTING_BLOBS = """
INSERT INTO blobs (key, refs, created_at, stored_at)
SELECT blob_key, count(*), min(at), min(at) FROM (
    SELECT blob_key, created_at AS at FROM uploads
    UNION ALL
    SELECT json_extract(f.value, '$.blob_key'), j.created_at
    FROM jobs AS j, json_each(CASE WHEN json_valid(j.inputs) THEN j.inputs ELSE '[]' END) AS f
    UNION ALL
    SELECT json_extract(f.value, '$.blob_key'), j.created_at
    FROM jobs AS j, json_each(CASE WHEN json_valid(j.outputs) THEN j.outputs ELSE '[]' END) AS f
)
WHERE blob_key IS NOT NULL
GROUP BY blob_key
"""


def _add_missing_indexes(conn: Connection, table: Table) -> list[str]:
    present = {row[1] for row in conn.exec_driver_sql(f"PRAGMA index_list({table.name})")}
    added = []
    for index in table.indexes:
        if index.name not in present:
            index.create(conn)
            added.append(f"{table.name}: added index {index.name}")
    return added


def _columns(conn: Connection, table: str) -> list[str]:
    return [row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table})")]


def _unique_on(conn: Connection, table: str, columns: list[str]) -> bool:
    """Whether ``table`` has a unique index (or UNIQUE constraint) on exactly ``columns``."""
    for row in conn.exec_driver_sql(f"PRAGMA index_list({table})").all():
        name, unique = row[1], row[2]
        if unique and [info[2] for info in conn.exec_driver_sql(f"PRAGMA index_info('{name}')")] == columns:
            return True
    return False


def _rebuild(conn: Connection, table: Table) -> None:
    """Recreate ``table`` from its model and copy the rows over (new columns get their defaults)."""
    old = f"{table.name}_before_upgrade"
    conn.exec_driver_sql(f"ALTER TABLE {table.name} RENAME TO {old}")
    # Index names are global in SQLite: drop the old table's before the new one creates its own.
    named = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (old,)
    ).all()
    for (index,) in named:
        conn.exec_driver_sql(f"DROP INDEX {index}")
    table.create(conn)
    kept = set(_columns(conn, old))
    shared = ", ".join(col.name for col in table.columns if col.name in kept)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({shared}) SELECT {shared} FROM {old}")
    conn.exec_driver_sql(f"DROP TABLE {old}")
