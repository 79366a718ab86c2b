import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import REQUIRE_ENV, PostgresCluster, PostgresUnavailable, session_cluster
from tests.support.s3 import MotoS3Server, S3Bucket

POSTGRES_DIALECT_READY = True
"""Switch on the ``postgresql`` side of ``database_url`` once server/db has a PostgreSQL dialect."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Tests that call ``configure_logging`` must not change what later tests' caplog sees."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = {
        name: (logger.level, logger.disabled, logger.propagate)
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (logger_level, disabled, propagate) in loggers.items():
        logger = logging.getLogger(name)
        logger.setLevel(logger_level)
        logger.disabled, logger.propagate = disabled, propagate


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the whole session (see tests/support/postgres.py)."""
    try:
        cluster = session_cluster()
    except PostgresUnavailable as error:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{error} ({REQUIRE_ENV}=1)")
        pytest.skip(str(error))
    yield cluster
    cluster.destroy()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh empty database on the session's cluster, dropped after the test: its postgresql:// URL."""
    url = postgres_cluster.create_database()
    yield url
    postgres_cluster.ensure_running()  # a test that stopped the server may end before starting it
    postgres_cluster.drop_database(url)


@pytest.fixture
def postgres_restartable(postgres_cluster: PostgresCluster) -> Iterator[PostgresCluster]:
    """The session's cluster for a test that stops and starts it; running again after the test."""
    if not postgres_cluster.owned:
        pytest.skip("the cluster named by TASKPOST_TEST_POSTGRES_URL is not the tests' to stop")
    yield postgres_cluster
    postgres_cluster.ensure_running()


_DATABASES = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not POSTGRES_DIALECT_READY, reason="the coordinator has no PostgreSQL dialect yet"
        ),
    ),
]


sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For a test about SQLite itself (its files, its query planner, its upgrade path): the ``sqlite``
side of ``database_url`` only."""
postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
"""For a test about PostgreSQL itself (row locks, its planner, outages): the ``postgresql`` side only."""


@pytest.fixture(params=_DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A coordinator database URL, once per database kind: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{(tmp_path / 'data' / 'taskpost.db').as_posix()}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3Server]:
    """moto's S3 server on 127.0.0.1 for the whole session (see tests/support/s3.py)."""
    pytest.importorskip("moto.server", reason="moto's S3 server comes with the dev extra")
    server = MotoS3Server(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: MotoS3Server) -> S3Bucket:
    """A fresh, empty bucket on the session's S3 server."""
    return S3Bucket.create(s3_server)
