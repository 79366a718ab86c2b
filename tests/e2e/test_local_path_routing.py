"""``local_path`` without a files-root label, through a real coordinator and real agent processes,
each with its own ``--files-root``: the seed's ``{"local_path": "samples/sample.pdf"}``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster, wait_until

pytest.importorskip("pypdfium2", reason="needs taskpost[docs]")
pytest.importorskip("reportlab", reason="needs reportlab (dev dependency)")

from tests.media_fixtures.documents import LINES, write_text_pdf

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLE = "samples/sample.pdf"


def _roots(tmp_path: Path) -> tuple[Path, Path]:
    """Two files roots; only the second holds the sample."""
    lacking, holding = tmp_path / "root-lacking", tmp_path / "root-holding"
    lacking.mkdir()
    (holding / "samples").mkdir(parents=True)
    write_text_pdf(holding / SAMPLE)
    return lacking.resolve(), holding.resolve()


def _agent_ids(cluster: Cluster) -> dict[str, str]:
    return {worker["name"]: worker["id"] for worker in cluster.wait_agents(2)}


def test_a_relative_path_declined_by_one_agent_runs_on_the_one_that_has_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    lacking, holding = _roots(tmp_path)
    cluster.start_agent("--task-type", "document", "--files-root", str(lacking), name="lacking")
    cluster.start_agent(
        "--task-type", "document", "--task-type", "noop", "--files-root", str(holding), name="holding"
    )
    ids = _agent_ids(cluster)
    # Keep the holding agent busy, so that the lacking one claims the document job first.
    busy = cluster.submit(type="noop", params={"sleep_s": 3})
    cluster.wait_job(busy["id"], {"processing"})
    job = cluster.submit(type="document", params={"local_path": SAMPLE}, max_attempts=1)
    wait_until(
        lambda: any(e["kind"] == "declined" for e in cluster.events(job["id"])),
        30,
        "the lacking agent to decline",
    )
    done = cluster.wait_job(job["id"], {"completed", "dead"}, timeout_s=60)
    assert done["state"] == "completed", done
    assert done["attempts"] == 1  # the decline used none: max_attempts=1 was enough
    declines = [e for e in cluster.events(job["id"]) if e["kind"] == "declined"]
    assert [e["worker_id"] for e in declines] == [ids["lacking"]]
    assert str(lacking) in declines[0]["detail"]
    text = cluster.http.get(f"/jobs/{job['id']}/outputs/document.txt")
    assert text.status_code == 200 and LINES[0] in text.text


def test_an_absolute_path_is_routed_to_the_agent_whose_root_holds_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    lacking, holding = _roots(tmp_path)
    cluster.start_agent("--task-type", "document", "--files-root", str(lacking), name="lacking")
    cluster.start_agent("--task-type", "document", "--files-root", str(holding), name="holding")
    ids = _agent_ids(cluster)
    # The short form: the body is the params.
    response = cluster.http.post("/jobs/document", json={"local_path": str(holding / SAMPLE)})
    assert response.status_code == 201, response.text
    job = response.json()["job"]
    assert job["labels"] == [f"files-root:{holding}"]
    done = cluster.wait_job(job["id"], {"completed", "dead"}, timeout_s=60)
    assert done["state"] == "completed", done
    assert done["worker_id"] == ids["holding"]
    assert not [e for e in cluster.events(job["id"]) if e["kind"] == "declined"]
    unknown = cluster.http.post(
        "/jobs", json={"type": "document", "params": {"local_path": "/nowhere/a.pdf"}}
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"]["field"] == "params.local_path"
    assert str(holding) in unknown.json()["error"]["message"]


def test_a_file_no_agent_has_ends_not_found_naming_the_roots_tried(cluster: Cluster, tmp_path: Path) -> None:
    lacking, holding = _roots(tmp_path)
    cluster.start_agent("--task-type", "document", "--files-root", str(lacking), name="lacking")
    cluster.start_agent("--task-type", "document", "--files-root", str(holding), name="holding")
    _agent_ids(cluster)
    job = cluster.submit(type="document", params={"local_path": "samples/missing.pdf"})
    dead = cluster.wait_job(job["id"], {"dead", "completed"}, timeout_s=60)
    assert dead["state"] == "dead", dead
    assert dead["attempts"] == 0
    assert dead["error"]["kind"] == "not_found"
    assert "samples/missing.pdf" in dead["error"]["message"]
    assert str(lacking) in dead["error"]["message"] and str(holding) in dead["error"]["message"]
