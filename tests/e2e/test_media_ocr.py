"""OCR and document extraction through the whole system: a real coordinator, a real agent, real engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.media]

pytest.importorskip("rapidocr", reason="needs taskpost[ocr]")
pytest.importorskip("docx", reason="needs taskpost[docs]")
jiwer = pytest.importorskip("jiwer", reason="needs jiwer (dev dependency)")

from tests.media_fixtures import documents as media  # noqa: E402  (imports PIL, of taskpost[ocr])

AGENT_START_S = 60
JOB_S = 90


@pytest.fixture
def mixed_pdf(tmp_path: Path) -> Path:
    """Page 1 with a text layer, page 2 a 200 dpi scan: both paths in one small file."""
    folder = tmp_path / "media"
    folder.mkdir()
    return media.write_mixed_pdf(folder / "letter.pdf")


def _upload(cluster: Cluster, path: Path) -> dict[str, str]:
    response = cluster.http.post("/uploads", params={"name": path.name}, content=path.read_bytes())
    assert response.status_code == 201, response.text
    return {"name": path.name, "upload_id": response.json()["upload_id"]}


def _finished(cluster: Cluster, job: dict[str, Any]) -> dict[str, Any]:
    done = cluster.wait_job(job["id"], {"completed", "dead", "failed"}, timeout_s=JOB_S)
    assert done["state"] == "completed", done
    return done


def _output(cluster: Cluster, job: dict[str, Any], name: str) -> str:
    response = cluster.http.get(f"/jobs/{job['id']}/outputs/{name}")
    assert response.status_code == 200, response.text
    return response.text


def test_an_uploaded_pdf_is_read_by_the_ocr_and_document_tasks(cluster: Cluster, mixed_pdf: Path) -> None:
    cluster.start_agent(
        "--task-type", "ocr", "--task-type", "document", "--work-dir", str(cluster.tmp_path / "work")
    )
    cluster.wait_agents(1, timeout_s=AGENT_START_S)
    ref = _upload(cluster, mixed_pdf)
    ocr_job = cluster.submit(type="ocr", inputs=[ref])
    document_job = cluster.submit(type="document", inputs=[ref], params={"dpi": 200})

    ocr = _finished(cluster, ocr_job)
    assert ocr["progress"] == 1.0
    assert [page["source"] for page in ocr["result"]["pages"]] == ["text_layer", "ocr"]
    assert ocr["result"]["engine"] == "rapidocr"
    assert {output["name"] for output in ocr["outputs"]} == {"text.txt", "ocr.json"}
    first, second = _output(cluster, ocr, "text.txt").split("\f")
    assert first.strip() == "\n".join(media.LINES)
    assert jiwer.cer(" ".join(media.PAGE_TWO), " ".join(second.split())) < 0.03

    document = _finished(cluster, document_job)
    assert document["result"]["page_count"] == 2
    assert document["result"]["ocr_pages"] == 1
    markdown = _output(cluster, document, "document.md")
    assert markdown.startswith("## Page 1\n\n" + "\n".join(media.LINES) + "\n\n## Page 2\n\n")
    scanned = markdown.split("## Page 2\n\n")[1]
    assert jiwer.cer(" ".join(media.PAGE_TWO), " ".join(scanned.split())) < 0.03
    assert "Taskpost invoice 2041" in _output(cluster, document, "document.txt")


def test_a_docx_that_the_ocr_task_cannot_read_goes_dead_at_once(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_agent("--task-type", "ocr", "--work-dir", str(cluster.tmp_path / "work"))
    cluster.wait_agents(1, timeout_s=AGENT_START_S)
    ref = _upload(cluster, media.write_docx(tmp_path / "report.docx"))
    job = cluster.submit(type="ocr", inputs=[ref], max_attempts=3)
    dead = cluster.wait_job(job["id"], {"completed", "dead"}, timeout_s=JOB_S)
    assert dead["state"] == "dead" and dead["attempts"] == 1, dead
    assert dead["error"]["kind"] == "unsupported_input"
    assert dead["error"]["retryable"] is False


def test_the_seeds_relative_local_path_is_read_on_the_agent_that_holds_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The hybrid-mode seed's request as it sends it: no label, a path relative to the worker's folder."""
    worker_folder = tmp_path / "worker"
    (worker_folder / "samples").mkdir(parents=True)
    media.write_mixed_pdf(worker_folder / "samples" / "sample.pdf")
    cluster.start_agent("--task-type", "ocr", "--files-root", str(worker_folder.resolve()))
    cluster.wait_agents(1, timeout_s=AGENT_START_S)
    job = cluster.submit(type="ocr", params={"local_path": "samples/sample.pdf"})
    done = _finished(cluster, job)
    assert [page["source"] for page in done["result"]["pages"]] == ["text_layer", "ocr"]
    first, second = _output(cluster, done, "text.txt").split("\f")
    assert first.strip() == "\n".join(media.LINES)
    assert jiwer.cer(" ".join(media.PAGE_TWO), " ".join(second.split())) < 0.03
