"""Text cut into sentences, the unit of speech synthesis, progress and cancellation."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

MAX_SENTENCE_CHARS = 400
"""Longer runs without a full stop (lists, tables) are cut at commas or spaces."""

_SENTENCE_END = re.compile("(?<=[.!?\u2026][\"'\u201d\u2019)\\]])\\s+|(?<=[.!?\u2026])\\s+|\n\\s*\n")
_SOFT_BREAK = re.compile(r"[,;:]\s+")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, each on one line, none empty or over ``MAX_SENTENCE_CHARS``."""
    found: list[str] = []
    for piece in _SENTENCE_END.split(text):
        sentence = " ".join(piece.split())
        if sentence:
            found.extend(_cut(sentence))
    return found


def _cut(sentence: str) -> Iterator[str]:
    while len(sentence) > MAX_SENTENCE_CHARS:
        head = sentence[:MAX_SENTENCE_CHARS]
        soft = [match.end() for match in _SOFT_BREAK.finditer(head)]
        at = soft[-1] if soft else head.rfind(" ") + 1 or MAX_SENTENCE_CHARS
        yield sentence[:at].strip()
        sentence = sentence[at:].strip()
    if sentence:
        yield sentence


def batches(sentences: Sequence[str], *, max_sentences: int = 20, max_chars: int = 2000) -> list[list[str]]:
    """Consecutive runs of sentences, each at most ``max_sentences`` long and about ``max_chars``."""
    runs: list[list[str]] = []
    current: list[str] = []
    size = 0
    for sentence in sentences:
        if current and (len(current) >= max_sentences or size + len(sentence) > max_chars):
            runs.append(current)
            current, size = [], 0
        current.append(sentence)
        size += len(sentence)
    if current:
        runs.append(current)
    return runs
