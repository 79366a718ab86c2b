"""Map-reduce without a server: partial answers too long for one combine request are combined in
groups first, and every request stays within the context."""

from __future__ import annotations

from typing import Any

from taskpost.agent.llm.analysis import Analyzer, CallOptions
from taskpost.agent.llm.chunking import estimate_tokens
from taskpost.agent.llm.client import Completion
from taskpost.agent.llm.profiles import Provider


class LongWindedChat:
    """Answers every request with 400 characters (100 estimated tokens) and keeps the requests."""

    def __init__(self, context_tokens: int) -> None:
        self.provider = Provider(
            name="stub", base_url="http://127.0.0.1:9/v1", model="m", context_tokens=context_tokens
        )
        self.requests: list[str] = []

    def chat(self, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float) -> Completion:
        self.requests.append("\n".join(message["content"] for message in messages))
        answer = f"answer {len(self.requests):03d} " + "x" * 389
        return Completion(answer, "m", 10, 100, 0.001)


def test_partial_answers_that_do_not_fit_are_combined_in_groups() -> None:
    chat = LongWindedChat(context_tokens=600)
    called: list[str] = []
    analyzer = Analyzer(chat, CallOptions(max_tokens=50, temperature=0), before_call=called.append)
    result = analyzer.answer("summary", "Summarise", [f"chunk {index}" for index in range(10)])

    assert len(chat.requests) == 10 + 3 + 1  # ten parts, three groups of them, one final combine
    assert called == ["summary"] * 14
    for request in chat.requests:
        assert estimate_tokens(request) + 50 <= 600
    assert "answer 011" in chat.requests[-1] and "answer 013" in chat.requests[-1]
    assert result.answer.startswith("answer 014")
    assert result.to_json()["calls"] == 14 and result.to_json()["prompt_tokens"] == 140
