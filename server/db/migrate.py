"""Alembic migrations of the coordinator's tables, run from code: no ``alembic.ini`` involved.

The revisions live in ``server/db/migrations/versions``. Every function here takes a synchronous
connection inside a transaction the caller opened (``AsyncConnection.run_sync``), so an upgrade
commits or rolls back as a whole with that transaction. On PostgreSQL it also takes an advisory
lock for the rest of the transaction: coordinator replicas starting together upgrade one after
the other, and the later ones find nothing left to do. On SQLite the caller's write transaction
(``BEGIN IMMEDIATE``) already serialises them.

A database made before migrations has no ``alembic_version`` table: it is stamped with the last
revision whose tables it already has (each early revision says so in ``already_applied``), then
upgraded from there.

To add a revision, copy the newest one in ``versions/`` (or let Alembic write one: with a
connection to a database at head, ``alembic.command.revision(alembic_config(connection),
"message", autogenerate=True, rev_id="0007")``); ``tests/server/test_migrations.py`` checks that
the migrated tables equal the models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from taskpost.server.errors import TaskpostError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key of the upgrade: "taskpost" in ASCII, a number no other tool picks.
_LOCK_KEY = 0x7461736B706F7374


class SchemaNotCurrent(TaskpostError):
    """The database is not at the revision this version of Taskpost needs: run `taskpost db upgrade`."""

    status_code = 503
    code = "schema_not_current"


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands against this version's revisions."""

    current: str | None
    """The revision recorded in ``alembic_version``; None when none is."""
    head: str
    """The newest revision this version knows: the one its models match."""
    made_before_migrations: str | None = None
    """With no revision recorded: the revision that tables made before migrations match."""
    known: bool = True
    """Whether this version knows ``current`` (a newer version may have upgraded the database)."""

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        """One line for ``taskpost db current``."""
        if self.at_head:
            return f"{self.current} (head)"
        if not self.known:
            return (
                f"{self.current} (unknown to this version, whose head is {self.head}: "
                "a newer version of Taskpost upgraded this database)"
            )
        if self.current is not None:
            return f"{self.current} (head is {self.head}: run `taskpost db upgrade`)"
        if self.made_before_migrations is not None:
            return (
                f"none: tables made before migrations, matching {self.made_before_migrations} "
                f"(`taskpost db upgrade` records that and upgrades them to {self.head})"
            )
        return f"none: no tables yet (`taskpost db upgrade` creates them at {self.head})"


@dataclass(frozen=True)
class UpgradeReport:
    """What ``upgrade_to_head`` did."""

    before: str | None
    after: str
    stamped: str | None = None
    """The revision tables made before migrations were found to match, and recorded at."""
    applied: tuple[str, ...] = ()
    """``revision: what it does`` for each revision run, oldest first."""

    def lines(self) -> list[str]:
        """One log line per change; empty when the database was at head already."""
        lines = []
        if self.stamped is not None:
            lines.append(f"found tables made before migrations matching revision {self.stamped}: recorded it")
        lines += [f"applied revision {applied}" for applied in self.applied]
        if self.applied:
            lines.append(self.summary())
        return lines

    def summary(self) -> str:
        """One line for ``taskpost db upgrade``."""
        if not self.applied and self.stamped is None:
            return f"already at {self.after} (head): nothing to do"
        return f"upgraded from {self._from()} to {self.after} (head)"

    def _from(self) -> str:
        if self.before is not None:
            return self.before
        return self.stamped if self.stamped is not None else "an empty database"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for our revisions; ``env.py`` runs them on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision: the one this version's models match."""
    return _head(_scripts())


def schema_state(conn: sa.Connection) -> SchemaState:
    """Where the database of ``conn`` stands; reads only."""
    with _alembic_logs_quiet():
        return _schema_state(conn)


def _schema_state(conn: sa.Connection) -> SchemaState:
    scripts = _scripts()
    head = _head(scripts)
    current = MigrationContext.configure(conn).get_current_revision()
    if current is not None:
        return SchemaState(current, head, known=_knows(scripts, current))
    return SchemaState(None, head, made_before_migrations=_made_before_migrations(conn, scripts))


def upgrade_to_head(conn: sa.Connection) -> UpgradeReport:
    """Upgrade the database of ``conn`` to head inside the caller's (write) transaction."""
    with _alembic_logs_quiet():
        return _upgrade_to_head(conn)


def _upgrade_to_head(conn: sa.Connection) -> UpgradeReport:
    _serialise_upgrades(conn)
    config = alembic_config(conn)
    scripts = _scripts()
    before = MigrationContext.configure(conn).get_current_revision()
    if before is not None and not _knows(scripts, before):
        raise SchemaNotCurrent(
            f"the database is at {SchemaState(before, _head(scripts), known=False).describe()}"
        )
    stamped = None
    if before is None:
        stamped = _made_before_migrations(conn, scripts)
        if stamped is not None:
            command.stamp(config, stamped)
    try:
        command.upgrade(config, "head")
    except CommandError as exc:  # a revision file missing or broken: a packaging error
        raise SchemaNotCurrent(f"the database could not be upgraded: {exc}") from exc
    after = _head(scripts)
    start = before or stamped
    applied = [
        f"{script.revision}: {' '.join(script.doc.split())}"
        for script in scripts.iterate_revisions(after, start or "base")
        if script.revision != start
    ]
    return UpgradeReport(before, after, stamped, tuple(reversed(applied)))


def require_head(conn: sa.Connection) -> None:
    """Raise ``SchemaNotCurrent`` unless the database of ``conn`` is at head."""
    state = schema_state(conn)
    if state.at_head:
        return
    if not state.known:
        raise SchemaNotCurrent(f"the database is at {state.describe()}")
    if state.current is not None:
        found = f"the database is at revision {state.current}"
    elif state.made_before_migrations is not None:
        found = (
            f"the database's tables were made before migrations (they match {state.made_before_migrations})"
        )
    else:
        found = "the database has no tables yet"
    raise SchemaNotCurrent(
        f"{found} and this version needs revision {state.head}: run `taskpost db upgrade` "
        "(or set TASKPOST_AUTO_MIGRATE=true and the coordinator upgrades it when it starts)"
    )


def _serialise_upgrades(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Another coordinator may be upgrading: wait for it, however long the upgrade takes,
        # then find the database at head. Both settings last until the transaction ends.
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


@contextmanager
def _alembic_logs_quiet() -> Iterator[None]:
    """Alembic's INFO lines (its plugins, its DDL mode, each revision) only at DEBUG: the
    report of ``upgrade_to_head`` says what changed, once."""
    alembic = logging.getLogger("alembic")
    level = alembic.level
    if not alembic.isEnabledFor(logging.DEBUG):
        alembic.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic.setLevel(level)


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _head(scripts: ScriptDirectory) -> str:
    head = scripts.get_current_head()
    assert head is not None, "server/db/migrations/versions holds no revision"
    return head


def _knows(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False


def _made_before_migrations(conn: sa.Connection, scripts: ScriptDirectory) -> str | None:
    """The newest revision whose tables a database without ``alembic_version`` has; None: empty."""
    inspector = sa.inspect(conn)
    found = None
    for script in reversed(list(scripts.walk_revisions())):  # oldest first
        applied: Callable[[sa.Inspector], bool] | None = getattr(script.module, "already_applied", None)
        if applied is None or not applied(inspector):
            break
        found = script.revision
    return found
