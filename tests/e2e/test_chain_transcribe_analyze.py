""" "Transcribe this URL, then summarise it" as one request, through the whole system: a coordinator,
one agent process running ``transcription`` and ``analyze``, espeak-ng speech served on 127.0.0.1,
and an OpenAI-compatible stand-in on 127.0.0.1 that records what the agent sends it. Once through
the Python client and once through ``taskpost submit --then ... --wait``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskpost.client import Client, chain_step
from taskpost.protocol import JobState
from tests.e2e.conftest import ADMIN_KEY, Cluster
from tests.e2e.test_cli_commands import run
from tests.media_fixtures import speech
from tests.media_fixtures.media_server import MediaServer, serve_speech
from tests.support.fake_llm import ANSWER_PREFIX, FakeLlm, fake_llm

pytestmark = [pytest.mark.e2e, pytest.mark.media]

pytest.importorskip("faster_whisper", reason="needs taskpost[stt]")
pytest.importorskip("openai", reason="needs taskpost[llm]")
jiwer = pytest.importorskip("jiwer", reason="needs jiwer (dev dependency)")

AGENT_START_S = 60
CHAIN_S = 120
LLM_KEY = "sk-chain-test-key-0123456789"
PROMPT = "Provide a brief summary"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[MediaServer]:
    if missing := speech.missing_tools():
        pytest.skip(f"needs {', '.join(missing)} to generate test speech")
    with serve_speech(tmp_path / "site") as media_server:
        yield media_server


@pytest.fixture
def llm() -> Iterator[FakeLlm]:
    with fake_llm() as server:
        yield server


@pytest.fixture
def cluster_with_agent(cluster: Cluster, llm: FakeLlm) -> Cluster:
    cluster.start_agent(
        "--task-type", "transcription,analyze",
        "--work-dir", str(cluster.tmp_path / "work"),
        "--llm-base-url", llm.base_url,
        "--llm-model", "chain-test-model",
        env={"TASKPOST_LLM_API_KEY": LLM_KEY},
    )  # fmt: skip
    cluster.wait_agents(1, timeout_s=AGENT_START_S)
    return cluster


def _summarised_text(llm: FakeLlm) -> str:
    """The transcript the agent sent with the prompt (the last request's user message)."""
    request = llm.requests[-1]
    assert request.path.endswith("/chat/completions")
    assert request.headers["authorization"] == f"Bearer {LLM_KEY}"
    assert request.body["model"] == "chain-test-model"
    return request.text()


def test_a_transcription_then_analysis_is_one_request(
    cluster_with_agent: Cluster, site: MediaServer, llm: FakeLlm
) -> None:
    cluster = cluster_with_agent
    with Client(cluster.url, ADMIN_KEY) as client:
        submitted = client.submit(
            "transcription",
            {"url": site.url("speech.wav")},
            then=[chain_step("analyze", {"prompts": {"summary": PROMPT}})],
        )
        assert [step["type"] for step in submitted.job.then] == ["analyze"]
        root, summary = client.wait_chain(submitted.job.id, timeout=CHAIN_S)

    assert root.state is JobState.COMPLETED and summary.state is JobState.COMPLETED, (root, summary)
    assert root.children == [summary.id] and summary.parent_id == root.id
    assert summary.type == "analyze" and summary.namespace == root.namespace
    transcript = next(output for output in root.outputs if output.name == "transcript.txt")
    carried = {entry.name: entry.sha256 for entry in summary.inputs}
    assert carried["transcript.txt"] == transcript.sha256  # the parent's outputs are its inputs

    sent = _summarised_text(llm)
    assert PROMPT in sent
    heard = speech.normalise(sent.replace(PROMPT, ""))
    assert jiwer.wer(speech.normalise(speech.ENGLISH_TEXT), heard) < 0.3, sent
    answer = summary.result["tasks"]["summary"]["answer"]
    assert answer.startswith(ANSWER_PREFIX)
    assert LLM_KEY not in json.dumps(summary.model_dump(mode="json"))

    done = run(
        cluster,
        "submit", "transcription", "-p", f"url={site.url('speech.wav')}",
        "--then", "analyze", "--then-param", f"analyze.prompts={json.dumps({'summary': PROMPT})}",
        "--wait", "--wait-timeout", str(CHAIN_S), "--output-dir", str(cluster.tmp_path / "out"),
    )  # fmt: skip
    last = json.loads(done.stdout)
    assert last["type"] == "analyze" and last["state"] == "completed", done.stdout
    assert last["parent_id"] and last["result"]["tasks"]["summary"]["answer"].startswith(ANSWER_PREFIX)
    saved = sorted(path.name for path in (cluster.tmp_path / "out").rglob("*") if path.is_file())
    assert "transcript.txt" in saved and "analysis.json" in saved, saved
