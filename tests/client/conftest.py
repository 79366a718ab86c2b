"""A live coordinator (a real process, tests/e2e's Cluster) with a noop agent, and a client key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    cluster.start_coordinator()
    try:
        cluster.start_agent("--task-type", "noop")
        cluster.wait_agents(1)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def client_key(live: Cluster) -> str:
    response = live.http.post("/keys", json={"role": "client"})
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key
