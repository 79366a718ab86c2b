"""``analyze`` and ``describe`` through a real coordinator and agent process, against a fake
OpenAI-compatible server on 127.0.0.1 (the agent gets its URL by flag and its key by environment)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest

from tests.e2e.conftest import Cluster
from tests.support.fake_llm import expected_answer, fake_llm

pytest.importorskip("openai", reason="needs taskpost[llm]")
Image = pytest.importorskip("PIL.Image", reason="needs Pillow (taskpost[ocr])")

KEY = "sk-e2e-llm-key-5d0c2a91f3"
AGENT_START_S = 60
JOB_S = 60
NOTES = "Minutes of the harbour meeting.\n\nThe ferry will run twice a day from June. The pier needs paint."


def _upload(cluster: Cluster, name: str, data: bytes) -> dict[str, str]:
    response = cluster.http.post("/uploads", params={"name": name}, content=data)
    assert response.status_code == 201, response.text
    return {"name": name, "upload_id": response.json()["upload_id"]}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (20, 120, 220)).save(buffer, format="PNG")
    return buffer.getvalue()


def _done(cluster: Cluster, job: dict[str, Any]) -> dict[str, Any]:
    done = cluster.wait_job(job["id"], {"completed", "dead", "failed"}, timeout_s=JOB_S)
    assert done["state"] == "completed", done
    return done


def test_analyze_and_describe_jobs_run_against_an_openai_compatible_api(cluster: Cluster) -> None:
    with fake_llm([(429, {"retry-after": "0"}, None)]) as llm:
        agent = cluster.start_agent(
            "--task-type", "analyze", "--task-type", "describe",
            "--llm-base-url", llm.base_url, "--llm-model", "e2e-model",
            env={"TASKPOST_LLM_API_KEY": KEY},
        )  # fmt: skip
        cluster.wait_agents(1, timeout_s=AGENT_START_S)
        prompts = {"summary": "Provide a brief summary", "key_points": "Extract key points"}
        inline = cluster.submit(type="analyze", params={"prompts": prompts, "text": "Ship it on Friday."})
        notes = _upload(cluster, "notes.txt", NOTES.encode())
        batch = [{"summary": "Summarise"}, {"task_name": "Actions", "prompt": "List the actions"}]
        uploaded = cluster.submit(type="analyze", inputs=[notes], params={"prompts": batch, "max_tokens": 80})
        png = _png()
        picture = cluster.submit(type="describe", inputs=[_upload(cluster, "blue.png", png)])
        empty = cluster.submit(type="analyze", params={"prompts": prompts}, max_attempts=3)

        first = _done(cluster, inline)["result"]
        assert first["strategy"] == "single" and first["model"] == "e2e-model"
        assert first["tasks"]["summary"]["answer"] == expected_answer(
            "Provide a brief summary\n\n---\n\nShip it on Friday."
        )
        second = _done(cluster, uploaded)
        assert [list(tasks) for tasks in second["result"]["tasks"]] == [["summary"], ["Actions"]]
        assert second["result"]["source"] == "notes.txt"
        assert {output["name"] for output in second["outputs"]} == {"analysis.json", "analysis.md"}
        markdown = cluster.http.get(f"/jobs/{uploaded['id']}/outputs/analysis.md").text
        assert markdown.startswith("# Batch 1\n\n## summary\n\nANSWER:")
        described = _done(cluster, picture)["result"]
        assert described["description"] == expected_answer("Describe this image.")
        assert described["image"]["mime"] == "image/png"
        dead = cluster.wait_job(empty["id"], {"completed", "dead"}, timeout_s=JOB_S)
        assert (dead["state"], dead["attempts"], dead["error"]["kind"]) == ("dead", 1, "no_text")

    requests = llm.requests
    assert len(requests) == 1 + 2 + 2 + 1  # the 429 retried, two prompts, two batch items, one image
    assert {request.headers["authorization"] for request in requests} == {f"Bearer {KEY}"}
    assert {request.body["model"] for request in requests} == {"e2e-model"}
    assert {request.body["max_tokens"] for request in requests if "harbour" in request.text()} == {80}
    images = [url for request in requests for url in request.image_urls()]
    assert images == ["data:image/png;base64," + base64.b64encode(png).decode()]
    jobs = [cluster.job(job["id"]) for job in (inline, uploaded, picture, empty)]
    assert KEY not in json.dumps(jobs)
    assert KEY not in agent.output()
    assert "llm_retry" in agent.output()
