"""Bring a SQLite database made by an earlier version up to the current tables.

There are no migrations yet (Alembic comes later); until then the coordinator upgrades an old
file in place when it starts: missing columns are added (each new column has a server default),
and a table whose constraints changed is rebuilt, which is how SQLite changes a constraint.
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
    return changes


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
