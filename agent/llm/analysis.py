"""Named prompts over a text, map-reduce when the text does not fit the model's context.

A text that fits is sent whole with each prompt (strategy ``single``). A longer one is split once
(``chunking``) into pieces that fit beside the longest prompt and the answer; each prompt is then
asked of every piece, and its partial answers are combined by one more call (``map_reduce``).
When the partial answers themselves do not fit one request, they are combined in groups first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.llm.chunking import estimate_tokens, split_text
from taskpost.agent.llm.client import Completion
from taskpost.agent.llm.profiles import Provider

MESSAGE_OVERHEAD_TOKENS = 16
"""Per message: role and separators, which chars/4 does not see."""
SAFETY = 0.9
"""Share of the context that requests fill: the chars/4 estimate is rough."""
MIN_TEXT_TOKENS = 128


class Chat(Protocol):
    """What the analysis needs of ``LlmClient``."""

    provider: Provider

    def chat(self, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float) -> Completion: ...


@dataclass(frozen=True)
class CallOptions:
    max_tokens: int
    temperature: float
    system: str | None = None


@dataclass
class TaskAnswer:
    """One named prompt's answer and what its calls cost."""

    answer: str
    provider: Provider
    calls: list[Completion] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        prompt = _total(call.prompt_tokens for call in self.calls)
        completion = _total(call.completion_tokens for call in self.calls)
        prices = self.provider.prices
        return {
            "answer": self.answer,
            "model": self.calls[-1].model if self.calls else self.provider.model,
            "provider": self.provider.name,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "latency_s": round(sum(call.latency_s for call in self.calls), 3),
            "cost": prices.cost(prompt, completion) if prices else None,
            "calls": len(self.calls),
        }


def _total(values: Any) -> int | None:
    listed = list(values)
    return None if any(value is None for value in listed) else sum(listed)


def single_prompt(prompt: str, text: str) -> str:
    return f"{prompt}\n\n---\n\n{text}"


def part_prompt(prompt: str, text: str, index: int, count: int) -> str:
    return (
        f"{prompt}\n\n(This is part {index} of {count} of a longer text: answer for this part only.)"
        f"\n\n---\n\n{text}"
    )


def combine_prompt(prompt: str, answers: Sequence[str]) -> str:
    parts = "\n\n".join(f"## Part {index}\n\n{answer}" for index, answer in enumerate(answers, 1))
    return (
        f"{prompt}\n\nThe text was too long to read at once, so it was read in {len(answers)} parts. "
        f"The answers for the parts, in order:\n\n{parts}\n\n---\n\n"
        "Combine them into one answer for the whole text."
    )


class Analyzer:
    """Runs prompts over one text for one provider. ``before_call`` runs before every request
    (progress, and raising ``Cancelled`` to stop between calls)."""

    def __init__(self, chat: Chat, options: CallOptions, *, before_call: Callable[[str], None]) -> None:
        self.chat = chat
        self.options = options
        self.before_call = before_call

    def messages(self, user: str) -> list[dict[str, Any]]:
        system = [{"role": "system", "content": self.options.system}] if self.options.system else []
        return [*system, {"role": "user", "content": user}]

    def request_budget(self) -> int:
        """Tokens the messages of one request may hold."""
        context = self.chat.provider.context_tokens
        budget = int(context * SAFETY) - self.options.max_tokens - 2 * MESSAGE_OVERHEAD_TOKENS
        return budget - estimate_tokens(self.options.system or "")

    def chunks(self, text: str, prompts: Sequence[str]) -> list[str]:
        """``text`` whole when it fits beside every prompt, else in pieces that do."""
        budget = self.request_budget()
        if all(estimate_tokens(single_prompt(prompt, text)) <= budget for prompt in prompts):
            return [text]
        wrapper = max(estimate_tokens(part_prompt(prompt, "", 999, 999)) for prompt in prompts)
        room = budget - wrapper
        if room < MIN_TEXT_TOKENS:
            raise HandlerError(
                f"the prompts and max_tokens={self.options.max_tokens} leave no room for text in "
                f"{self.chat.provider.context_tokens} tokens of context: shorten them, or use a profile "
                "with a larger context_tokens",
                retryable=False,
                kind="bad_params",
            )
        return split_text(text, room)

    def answer(self, name: str, prompt: str, chunks: Sequence[str]) -> TaskAnswer:
        result = TaskAnswer(answer="", provider=self.chat.provider)
        if len(chunks) == 1:
            result.answer = self._call(name, single_prompt(prompt, chunks[0]), result)
            return result
        answers = [
            self._call(name, part_prompt(prompt, chunk, index, len(chunks)), result)
            for index, chunk in enumerate(chunks, 1)
        ]
        while len(groups := self._groups(prompt, answers)) > 1:
            answers = [self._call(name, combine_prompt(prompt, group), result) for group in groups]
        result.answer = self._call(name, combine_prompt(prompt, answers), result)
        return result

    def _groups(self, prompt: str, answers: list[str]) -> list[list[str]]:
        """Consecutive answers, as many per group as one combine request holds (at least two)."""
        budget = self.request_budget()
        groups: list[list[str]] = [[]]
        for answer in answers:
            candidate = [*groups[-1], answer]
            if len(candidate) > 2 and estimate_tokens(combine_prompt(prompt, candidate)) > budget:
                groups.append([answer])
            else:
                groups[-1] = candidate
        return groups

    def _call(self, name: str, user: str, result: TaskAnswer) -> str:
        self.before_call(name)
        options = self.options
        completion = self.chat.chat(
            self.messages(user), max_tokens=options.max_tokens, temperature=options.temperature
        )
        result.calls.append(completion)
        return completion.answer
