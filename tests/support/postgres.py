"""A throwaway PostgreSQL cluster for the tests, started from Debian's binaries on 127.0.0.1.

PostgreSQL refuses to run as root, and CI runs as root: then every server command (initdb,
pg_ctl) runs as the ``postgres`` user through ``runuser``, on a data directory in a temporary
folder that user owns. Run as anyone else, the commands run as that user. The cluster listens on
127.0.0.1 only (its unix socket stays in its own folder), trusts local connections, and runs
with fsync off: its data is thrown away at the end of the session.

``TASKPOST_TEST_POSTGRES_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``) names a
running cluster to use instead; its role must be allowed to create databases. Such a cluster is
not this module's to stop, so the outage tests skip on it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from taskpost.launch import free_port

EXTERNAL_URL_ENV = "TASKPOST_TEST_POSTGRES_URL"
REQUIRE_ENV = "TASKPOST_TEST_REQUIRE_POSTGRES"
"""Set to 1 (as .ci/run does) to fail, not skip, when no PostgreSQL can be started."""
SERVER_USER = "postgres"
SUPERUSER = "postgres"
_COMMAND_TIMEOUT_S = 120

# Settings for a disposable test cluster: durability off, room for a few coordinator replicas
# with their pools, and nothing listening beyond 127.0.0.1.
_SERVER_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
"""


_ROOT_PREFIX = "taskpost-pg-"
_ROOT_PARENT = "/tmp" if Path("/tmp").is_dir() else None
_OWNER_FILE = "owner.pid"
"""The id of the process that made a cluster: one whose owner is gone was left running by a test
run that was killed before its clean-up (a timeout, a SIGKILL), and is stopped by the next."""


def _stop_orphans(bin_dir: Path) -> None:
    parent = Path(_ROOT_PARENT or tempfile.gettempdir())
    for owner_file in parent.glob(f"{_ROOT_PREFIX}*/{_OWNER_FILE}"):
        try:
            owner = int(owner_file.read_text())
            os.kill(owner, 0)
            continue  # its owner still runs: not ours to touch
        except ProcessLookupError:
            pass
        except (ValueError, OSError):
            continue
        PostgresCluster("", bin_dir, owner_file.parent).destroy()


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here (install Debian's ``postgresql`` package, as .ci/run does)."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin``, or the folder of ``initdb`` on the PATH."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    for candidate in reversed(debian):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).parent
    raise PostgresUnavailable(PostgresUnavailable.__doc__)


def _runs_as_root() -> bool:
    return os.geteuid() == 0


def _run(
    args: Sequence[str], *, cwd: Path | None = None, as_server: bool = False, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command, as the server's user when ``as_server`` and we are root."""
    if as_server and _runs_as_root():
        args = ["runuser", "-u", SERVER_USER, "--", *args]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    result = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def with_database(url: str, database: str) -> str:
    """``url`` naming ``database`` instead of its own."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@dataclass
class PostgresCluster:
    """One PostgreSQL server: either started here (``owned``) or named by an admin URL."""

    admin_url: str
    """A ``postgresql://`` URL of a superuser on the maintenance database ``postgres``."""
    bin_dir: Path | None = None
    root: Path | None = None
    """The temporary folder with the data directory, socket and log (owned clusters only)."""

    @property
    def owned(self) -> bool:
        return self.root is not None

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "an external cluster has no data directory here"
        return self.root / "data"

    @property
    def pid_file(self) -> Path:
        """postmaster.pid: the server's process id on its first line, while it runs."""
        return self.data_dir / "postmaster.pid"

    @property
    def log_file(self) -> Path:
        assert self.root is not None, "an external cluster has no log here"
        return self.root / "server.log"

    @classmethod
    def create(cls) -> PostgresCluster:
        """initdb a fresh cluster in a temporary folder and start it on a free port."""
        bin_dir = find_bin_dir()
        _stop_orphans(bin_dir)
        # /tmp rather than $TMPDIR: the postgres user must reach it, and the socket's path must
        # stay under the 107 bytes a unix socket name allows.
        root = Path(tempfile.mkdtemp(prefix=_ROOT_PREFIX, dir=_ROOT_PARENT))
        (root / _OWNER_FILE).write_text(str(os.getpid()))
        if _runs_as_root():
            account = pwd.getpwnam(SERVER_USER)
            os.chown(root, account.pw_uid, account.pw_gid)
        port = free_port()
        cluster = cls(f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres", bin_dir, root)
        try:
            _run(
                [
                    str(bin_dir / "initdb"),
                    "--pgdata",
                    str(cluster.data_dir),
                    "--username",
                    SUPERUSER,
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                cwd=root,
                as_server=True,
            )
            conf = _SERVER_CONF.format(port=port, socket_dir=root)
            with (cluster.data_dir / "postgresql.conf").open("a") as handle:
                handle.write(conf)
            cluster.start()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    @classmethod
    def external(cls, admin_url: str) -> PostgresCluster:
        return cls(admin_url, bin_dir=_psql_dir())

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None and self.root is not None
        command = [str(self.bin_dir / "pg_ctl"), "--pgdata", str(self.data_dir), *args]
        return _run(command, cwd=self.root, as_server=True, check=check)

    def start(self) -> None:
        self._pg_ctl("--wait", "--timeout", "60", "--log", str(self.log_file), "start")

    def stop(self) -> None:
        """Stop the server as an operator would for maintenance: ``pg_ctl -m fast stop``."""
        self._pg_ctl("--wait", "--timeout", "60", "--mode", "fast", "stop")

    def running(self) -> bool:
        return self.owned and self._pg_ctl("status", check=False).returncode == 0

    def ensure_running(self) -> None:
        if self.owned and not self.running():
            self.start()

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The server is down inside the block and up again after it, whatever happens."""
        self.stop()
        try:
            yield
        finally:
            self.ensure_running()

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL command as the superuser; its unaligned output."""
        psql = str(self.bin_dir / "psql") if self.bin_dir is not None else "psql"
        url = with_database(self.admin_url, database)
        flags = ["--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--set", "ON_ERROR_STOP=1"]
        return _run([psql, *flags, "--dbname", url, "--command", sql]).stdout

    def create_database(self) -> str:
        """A new empty database (copied from template0); its URL."""
        name = f"taskpost_test_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {_quote_ident(name)} TEMPLATE template0")
        return with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url``, closing whatever connections are still open on it."""
        name = urlsplit(url).path.lstrip("/")
        self.psql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def database_exists(self, url: str) -> bool:
        name = urlsplit(url).path.lstrip("/").replace("'", "''")
        return self.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'").strip() == "1"

    def destroy(self) -> None:
        """Stop the server (fast: its data is thrown away) and remove its folder."""
        if self.root is None:
            return
        if self.running():
            self._pg_ctl("--wait", "--mode", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _psql_dir() -> Path | None:
    try:
        return find_bin_dir()
    except PostgresUnavailable:
        return None  # psql from the PATH, if any


def session_cluster() -> PostgresCluster:
    """The cluster for this test session: the one named by the environment, or a new one."""
    external = os.environ.get(EXTERNAL_URL_ENV)
    if external:
        return PostgresCluster.external(external)
    return PostgresCluster.create()
