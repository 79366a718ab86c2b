"""``taskpost submit --then``: how the command line becomes a chain of steps, and the client's
``chain_step`` / ``job_spec(then=...)`` checks."""

from __future__ import annotations

import pytest
import typer

from taskpost.client import InvalidParams, chain_step, job_spec
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
