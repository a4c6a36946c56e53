"""Readers for BELLE's evaluation files: the eval set and the per-class judge prompts.

Both are JSON Lines despite the ``.json`` name. BELLE's published copies disagree on
how a class is spelled: the eval set writes ``open qa`` and the prompt file ``open QA``,
and ``closed qa`` uses a NO-BREAK SPACE (U+00A0) in both. Every class name therefore
goes through :func:`normalize_class` before two files are matched.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from belle_kedro.formats.errors import FormatError
from belle_kedro.formats.reading import json_lines, read_text

EVAL_SET_COLUMNS = ["question", "std_answer", "class"]

# The judge must answer "得分: x"; a prompt that never asks for it cannot be parsed.
SCORE_MARKER = "得分"

# NFKC already maps U+00A0 and U+3000 to an ASCII space; the zero-width characters
# (and a stray BOM) are not whitespace to ``\s`` but still split words visually.
_ANY_SPACE = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]+")


def normalize_class(name: str) -> str:
    """The form class names are matched in: NFKC, lower case, one ASCII space, trimmed."""
    folded = unicodedata.normalize("NFKC", name).lower()
    return _ANY_SPACE.sub(" ", folded).strip()


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSON Lines file."""
    for line_number, record in json_lines(read_text(path), path):
        if not isinstance(record, dict):
            raise FormatError(
                path,
                line_number,
                None,
                f"expected a JSON object per line, got {type(record).__name__}",
            )
        yield line_number, record


def _required_text(
    record: Mapping[str, Any], field: str, path: Path, line_number: int
) -> str:
    """The non-blank string under ``field``, or a FormatError naming where it is missing."""
    if field not in record:
        raise FormatError(path, line_number, field, "is missing")
    value = record[field]
    if not isinstance(value, str):
        raise FormatError(
            path, line_number, field, f"must be a string, got {type(value).__name__}"
        )
    if not value.strip():
        raise FormatError(path, line_number, field, "is empty")
    return value


def load_eval_set(path: str | Path) -> pd.DataFrame:
    """Read an eval set in BELLE's ``eval_set.json`` format.

    Returns one row per question with string columns ``question``, ``std_answer``
    (empty for open-ended classes, also when the key is absent) and ``class``
    (normalised with :func:`normalize_class`).
    """
    path = Path(path)
    rows: list[dict[str, str]] = []
    for line_number, record in _json_lines(path):
        question = _required_text(record, "question", path, line_number)
        std_answer = record.get("std_answer", "")
        if not isinstance(std_answer, str):
            raise FormatError(
                path,
                line_number,
                "std_answer",
                f"must be a string, got {type(std_answer).__name__}",
            )
        cls = normalize_class(_required_text(record, "class", path, line_number))
        rows.append({"question": question, "std_answer": std_answer, "class": cls})
    if not rows:
        raise FormatError(path, None, None, "holds no questions")
    return pd.DataFrame(rows, columns=EVAL_SET_COLUMNS)


class JudgePrompts(dict[str, str]):
    """Normalised class -> judge prompt, remembering the file it came from for errors."""

    def __init__(self, prompts: Mapping[str, str], source: str | Path):
        super().__init__(prompts)
        self.source = str(source)


class MissingClassPromptError(FormatError, KeyError):
    """An eval class has no judge prompt; catchable as FormatError or KeyError."""

    # KeyError's own __str__ would print the message as a quoted repr.
    __str__ = ValueError.__str__


def load_judge_prompts(path: str | Path) -> JudgePrompts:
    """Read judge prompts in BELLE's ``eval_prompt.json`` format, keyed by normalised class.

    Every prompt must ask for the ``得分: x`` reply; two lines for the same class
    (after normalisation) are an error rather than a silent override.
    """
    path = Path(path)
    prompts: dict[str, str] = {}
    first_seen: dict[str, int] = {}
    for line_number, record in _json_lines(path):
        cls = normalize_class(_required_text(record, "class", path, line_number))
        prompt = _required_text(record, "prompt", path, line_number)
        if cls in prompts:
            raise FormatError(
                path,
                line_number,
                "class",
                f"duplicate class '{cls}' (first on line {first_seen[cls]})",
            )
        if SCORE_MARKER not in prompt:
            raise FormatError(
                path,
                line_number,
                "prompt",
                f"does not ask for the '{SCORE_MARKER}: x' reply the judge parser needs",
            )
        prompts[cls] = prompt
        first_seen[cls] = line_number
    if not prompts:
        raise FormatError(path, None, None, "holds no prompts")
    return JudgePrompts(prompts, path)


def prompt_for_class(prompts: Mapping[str, str], cls: str) -> str:
    """The judge prompt for ``cls`` (any spelling BELLE uses), or a clear error."""
    key = normalize_class(cls)
    try:
        return prompts[key]
    except KeyError:
        source = getattr(prompts, "source", "judge prompts")
        known = ", ".join(sorted(prompts)) or "none"
        raise MissingClassPromptError(
            source,
            None,
            "class",
            f"no judge prompt for class '{key}'; known classes: {known}",
        ) from None
