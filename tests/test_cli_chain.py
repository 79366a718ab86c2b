"""``taskpost submit --then``: how the command line becomes a chain of steps, and the client's
``chain_step`` / ``job_spec(then=...)`` checks."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import typer

from taskpost import submit as submitting
from taskpost.client import InvalidParams, chain_step, job_spec
from taskpost.protocol import JobPublic, JobSubmitted
from taskpost.submit import parse_chain


def test_repeated_then_is_a_sequence_with_params_by_type_or_position() -> None:
    chain = parse_chain(
        ["analyze", "noop", "noop"],
        ['analyze.prompts={"summary": "Sum up"}', "2.sleep_s=1", "3.fail=boom"],
        None,
    )
    assert chain == [
        {
            "type": "analyze",
            "params": {"prompts": {"summary": "Sum up"}},
            "then": [
                {
                    "type": "noop",
                    "params": {"sleep_s": 1},
                    "then": [{"type": "noop", "params": {"fail": "boom"}, "then": []}],
                }
            ],
        }
    ]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["noop.sleep_s=1"], "repeats"),
        (["webpage.url=x"], "not one of the --then steps"),
        (["sleep_s=1"], "STEP.key=value"),
        (["4.x=1"], "not one of the --then steps"),
    ],
)
def test_a_then_param_that_names_no_single_step_is_refused(pairs: list[str], message: str) -> None:
    with pytest.raises(typer.BadParameter, match=message):
        parse_chain(["noop", "noop"], pairs, None)


def test_then_json_is_the_whole_list_and_excludes_the_other_options() -> None:
    steps = parse_chain([], [], '[{"type": "analyze"}, {"type": "noop"}]')
    assert [step["type"] for step in steps] == ["analyze", "noop"]
    with pytest.raises(typer.BadParameter, match="alone"):
        parse_chain(["noop"], [], "[]")
    with pytest.raises(typer.BadParameter, match="JSON list"):
        parse_chain([], [], '{"type": "noop"}')


def test_job_spec_takes_steps_as_models_or_dicts_and_checks_them_like_the_server() -> None:
    step = chain_step("analyze", {"prompts": {"summary": "Sum up"}}, priority="high")
    spec = job_spec("transcription", {"url": "https://example.org/a.mp3"}, then=[step, {"type": "noop"}])
    assert [s.type for s in spec.then] == ["analyze", "noop"]
    assert spec.then[0].priority is not None and spec.then[0].priority.value == "high"
    with pytest.raises(InvalidParams, match="then"):
        job_spec("noop", then=[{"type": "noop", "params": {}, "bogus": 1}])
    deep = {"type": "noop"}
    for _ in range(4):
        deep = {"type": "noop", "then": [deep]}
    with pytest.raises(InvalidParams, match="nested 5 deep"):
        job_spec("noop", then=[deep])


def test_wait_timeout_covers_the_whole_chain_not_each_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(submitting.time, "monotonic", lambda: clock[0])
    job = JobPublic.model_validate(
        {"id": "j1", "type": "noop", "state": "completed", "priority": "default", "params": {},
         "meta": {}, "created_at": datetime.now(UTC), "attempts": 1, "max_attempts": 3}
    )  # fmt: skip
    asked: list[float | None] = []

    def wait(job_id: str, timeout: float | None, **_: Any) -> JobPublic:
        clock[0] += 7.0  # the first job took 7 of the 10 seconds
        return job

    def wait_chain(job_id: str, timeout: float | None) -> list[JobPublic]:
        asked.append(timeout)
        return [job]

    client = SimpleNamespace(
        submit=lambda *a, **k: JobSubmitted(job=job, created=True),
        wait=wait,
        wait_chain=wait_chain,
    )
    submitting.submit_and_wait(
        client,  # type: ignore[arg-type]
        "noop", {}, {},
        priority="default", run_at=None, delay_s=None, cache=None, webhook_url=None,
        then=[{"type": "noop"}], wait=True, wait_timeout_s=10.0, output_dir=None, echo=lambda line: None,
    )  # fmt: skip
    assert asked == [pytest.approx(3.0)]
