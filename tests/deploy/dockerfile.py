"""A small reader of the Dockerfile: its stages, each with its instructions (continuations joined)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from tests.deploy.truth import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages() -> dict[str, Stage]:
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            current = found.setdefault(name.strip(), Stage(name.strip(), base.strip()))
        elif current is not None:
            current.instructions.append((keyword, rest))
    return found


def chain(name: str) -> list[tuple[str, str]]:
    """A target's instructions with those of the stages it is built FROM, oldest first."""
    all_stages = stages()
    stage = all_stages[name]
    inherited = chain(stage.base) if stage.base in all_stages else []
    return inherited + stage.instructions


def last(name: str, keyword: str) -> str:
    return [rest for kw, rest in chain(name) if kw == keyword][-1]


def env(name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for keyword, rest in chain(name):
        if keyword == "ENV":
            found.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return found


def exec_form(text: str) -> list[str]:
    value = json.loads(text.removeprefix("CMD").strip())
    assert isinstance(value, list)
    return [str(word) for word in value]
