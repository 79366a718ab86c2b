"""Splitting long texts at paragraph, sentence and word bounds within a token budget."""

from __future__ import annotations

from taskpost.agent.llm.chunking import estimate_tokens, split_text


def _words(text: str) -> list[str]:
    return text.split()


def test_a_short_text_is_one_piece() -> None:
    assert split_text("  One paragraph.  ", 100) == ["One paragraph."]
    assert estimate_tokens("abcdefgh") == 2
    assert estimate_tokens("abcdefghi") == 3


def test_paragraphs_are_packed_together_and_never_cut_when_they_fit() -> None:
    paragraphs = [f"Paragraph {index} has a few words in it." for index in range(10)]
    pieces = split_text("\n\n".join(paragraphs), 25)  # 100 characters: two paragraphs a piece
    assert pieces == ["\n\n".join(paragraphs[index : index + 2]) for index in range(0, 10, 2)]


def test_a_long_paragraph_breaks_at_sentences_and_a_long_sentence_at_words() -> None:
    sentences = [f"Sentence number {index} ends here." for index in range(8)]
    long_sentence = " ".join(["word"] * 60)
    text = " ".join(sentences) + "\n\n" + long_sentence + "\n\nShort tail."
    pieces = split_text(text, 20)  # 80 characters
    assert all(len(piece) <= 80 for piece in pieces)
    assert _words(" ".join(pieces)) == _words(text)
    assert pieces[0] == " ".join(sentences[:2])
    assert pieces[-1] == "Short tail."


def test_a_word_longer_than_a_piece_is_cut() -> None:
    pieces = split_text("x" * 50, 5)
    assert pieces == ["x" * 20, "x" * 20, "x" * 10]
