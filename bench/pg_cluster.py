"""A throwaway PostgreSQL cluster for the benchmarks, outside pytest.

It is the tests' own ``PostgresCluster`` (tests/support/postgres.py): Debian's binaries, run as
the ``postgres`` user when we are root, listening on 127.0.0.1 only, fsync off, thrown away at
the end. ``TASKPOST_TEST_POSTGRES_URL`` names a running cluster to use instead.

Run from the repository root (``tests`` is not an installed package):
``python -m bench.pg_cluster`` starts one and prints its admin URL until Ctrl-C.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tests.support.postgres import PostgresCluster, session_cluster


@contextmanager
def throwaway_cluster() -> Iterator[PostgresCluster]:
    """A cluster started here (or the external one named by the environment), removed after."""
    cluster = session_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


def main() -> None:
    with throwaway_cluster() as cluster:
        print(cluster.admin_url, flush=True)
        with suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
