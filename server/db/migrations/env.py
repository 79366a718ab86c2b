"""Alembic's environment: runs the revisions on the connection ``server.db.migrate`` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

from taskpost.server.db import models as _models  # noqa: F401  (registers the tables: autogenerate compares them)

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the migrations with server.db.migrate (taskpost db upgrade), not alembic's CLI")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite changes a constraint by copying the table; revisions written by autogenerate say so.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
# The caller's transaction holds the whole upgrade (and, on PostgreSQL, the lock that keeps two
# coordinators from running it at once); Alembic opens none of its own inside it.
with context.begin_transaction():
    context.run_migrations()
