"""Web pages through the whole system: a coordinator, an agent process and a site on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Cluster
from tests.support.page_server import Answer, PageServer, html, page_server
from tests.support.pages import ARTICLE, BOILERPLATE, MAIN_TEXT, ROBOTS

pytest.importorskip("trafilatura", reason="needs taskpost[web]")

FINAL = {"completed", "dead", "failed", "cancelled"}


@pytest.fixture
def site() -> Iterator[PageServer]:
    with page_server() as running:
        running.add("/robots.txt", Answer(200, {"Content-Type": "text/plain"}, ROBOTS.encode()))
        running.add("/news/lighthouse", html(ARTICLE))
        running.add("/members/lighthouse", html(ARTICLE))
        yield running


def test_pages_through_agents_with_and_without_the_flag(cluster: Cluster, site: PageServer) -> None:
    """One agent allows private addresses (label ``open``), one refuses them (label ``closed``)."""
    work = str(cluster.tmp_path / "work")
    cluster.start_agent("--task-type", "webpage", "--work-dir", work, "--label", "open")
    cluster.start_agent(
        "--task-type", "webpage", "--work-dir", work, "--label", "closed", allow_private_urls=False
    )
    cluster.wait_agents(2)
    page = cluster.submit(type="webpage", params={"url": site.url("/news/lighthouse")}, labels=["open"])
    members = cluster.submit(
        type="webpage", params={"url": site.url("/members/lighthouse")}, labels=["open"], max_attempts=3
    )
    closed = cluster.submit(
        type="webpage", params={"url": site.url("/news/lighthouse")}, labels=["closed"], max_attempts=3
    )

    done = cluster.wait_job(page["id"], FINAL)
    assert done["state"] == "completed", done
    result = done["result"]
    assert MAIN_TEXT in result["text"] and not [word for word in BOILERPLATE if word in result["text"]]
    assert (result["title"], result["language"]) == ("The last lighthouse keepers", "en-GB")
    assert result["final_url"] == site.url("/news/lighthouse")
    assert {item["name"] for item in done["outputs"]} == {"page.md", "page.txt", "metadata.json"}
    markdown = cluster.http.get(f"/jobs/{page['id']}/outputs/page.md").text
    assert "## Winter storms" in markdown and "About us" not in markdown

    for job, kind in ((members, "robots_disallowed"), (closed, "unsafe_address")):
        dead = cluster.wait_job(job["id"], FINAL)
        assert dead["state"] == "dead" and dead["attempts"] == 1, dead
        assert dead["error"]["kind"] == kind and dead["error"]["retryable"] is False, dead
    assert "--allow-private-urls" in cluster.job(closed["id"])["error"]["message"]
    assert [path for path, _, _ in site.requests].count("/news/lighthouse") == 1, (
        "the closed agent sent nothing"
    )
