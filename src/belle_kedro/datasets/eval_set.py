"""BELLE's eval set (``eval_set.json``): JSON Lines of ``{question, std_answer, class}``.

BELLE's published files disagree on how a class is spelled: the eval set writes
``open qa`` and the judge-prompt file ``open QA``, and ``closed qa`` uses a NO-BREAK
SPACE (U+00A0) in both. Every class name therefore goes through
:func:`normalize_class` before two files are matched.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

import pandas as pd

from belle_kedro.common.errors import FormatError
from belle_kedro.datasets.reading import ReadOnlyFileDataset, json_objects, text_field

EVAL_SET_COLUMNS = ["question", "std_answer", "class"]

# NFKC already maps U+00A0 and U+3000 to an ASCII space; the zero-width characters
# (and a stray BOM) are not whitespace to ``\s`` but still split words visually.
_ANY_SPACE = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]+")


def normalize_class(name: str) -> str:
    """The form class names are matched in: NFKC, lower case, one ASCII space, trimmed."""
    folded = unicodedata.normalize("NFKC", name).lower()
    return _ANY_SPACE.sub(" ", folded).strip()


def load_eval_set(path: str | Path) -> pd.DataFrame:
    """Read an eval set in BELLE's ``eval_set.json`` format.

    Returns one row per question with string columns ``question``, ``std_answer``
    (empty for open-ended classes, also when the key is absent) and ``class``
    (normalised with :func:`normalize_class`).
    """
    path = Path(path)
    rows: list[dict[str, str]] = []
    for line, record in json_objects(path):
        rows.append(
            {
                "question": text_field(
                    record, "question", path, line, allow_blank=False
                ),
                "std_answer": text_field(
                    record, "std_answer", path, line, required=False
                ),
                "class": normalize_class(
                    text_field(record, "class", path, line, allow_blank=False)
                ),
            }
        )
    if not rows:
        raise FormatError(path, None, None, "holds no questions")
    return pd.DataFrame(rows, columns=EVAL_SET_COLUMNS)


class EvalSetDataset(ReadOnlyFileDataset):
    """The catalog's ``eval_set``: :func:`load_eval_set` of ``filepath``, never saved."""

    def load(self) -> pd.DataFrame:
        """Parse the file; a bad line raises ``FormatError`` naming file, line and field."""
        return load_eval_set(self._filepath)


def eval_set_digest(eval_set: pd.DataFrame) -> str:
    """SHA-256 of the questions, standard answers and classes in file order.

    The identity of the eval set a model was decontaminated against (clean) and scored
    on (evaluate): equal digests mean the same questions.
    """
    digest = hashlib.sha256()
    for row in eval_set.loc[:, EVAL_SET_COLUMNS].itertuples(index=False):
        # Unit/record separators cannot occur in normal text, so fields never run together.
        digest.update("\x1f".join(str(value) for value in row).encode() + b"\x1e")
    return digest.hexdigest()
