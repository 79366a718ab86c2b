"""Splitting a long text into pieces that fit a model's context.

Tokens are estimated as characters / 4 (close for English; no tokenizer tables to download).
Pieces break at paragraphs, then sentences, then words; a single word longer than a piece is cut.
"""

from __future__ import annotations

import math
import re

CHARS_PER_TOKEN = 4

_LEVELS = (
    (re.compile(r"\n[ \t]*\n\s*"), "\n\n"),
    (re.compile(r"(?<=[.!?…])\s+"), " "),
    (re.compile(r"\s+"), " "),
)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def split_text(text: str, max_tokens: int) -> list[str]:
    """``text`` in order, in pieces of at most ``max_tokens`` (estimated) each."""
    limit = max(1, max_tokens) * CHARS_PER_TOKEN
    return [piece for piece in _pack(text.strip(), limit, 0) if piece]


def _pack(text: str, limit: int, level: int) -> list[str]:
    if len(text) <= limit:
        return [text]
    if level == len(_LEVELS):
        return [text[start : start + limit] for start in range(0, len(text), limit)]
    pattern, joiner = _LEVELS[level]
    pieces: list[str] = []
    current = ""
    for part in pattern.split(text):
        part = part.strip()
        if not part:
            continue
        if len(part) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.extend(_pack(part, limit, level + 1))
            continue
        joined = f"{current}{joiner}{part}" if current else part
        if len(joined) <= limit:
            current = joined
        else:
            pieces.append(current)
            current = part
    if current:
        pieces.append(current)
    return pieces
