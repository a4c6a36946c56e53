"""Character-level text utilities shared by every stage.

Chinese has no spaces, so every similarity here works on characters. rouge-score's
default tokenizer keeps only ``[a-z0-9]`` and silently turns a Chinese sentence into an
empty token list; these helpers never do that.
"""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz.distance import LCSseq

_WHITESPACE = re.compile(r"\s+")


def similarity_key(text: str) -> str:
    """The form two texts are compared in: NFKC, lower case, no whitespace."""
    return _WHITESPACE.sub("", unicodedata.normalize("NFKC", text)).lower()


def rouge_l_f(a: str, b: str) -> float:
    """Character-level ROUGE-L F1 of two already-keyed strings.

    With beta = 1, ``F = 2 * LCS / (|a| + |b|)``; the LCS comes from rapidfuzz
    (C speed).
    """
    total = len(a) + len(b)
    if total == 0:
        return 0.0
    return 2.0 * LCSseq.similarity(a, b) / total


def rouge_l(a: str, b: str) -> float:
    """Character-level ROUGE-L F1 of two raw texts (keys them first)."""
    return rouge_l_f(similarity_key(a), similarity_key(b))


def cjk_ratio(text: str) -> float:
    """Share of letters that are CJK ideographs (0 when the text has no letters)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(
        1 for ch in letters if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"
    ) / len(letters)
