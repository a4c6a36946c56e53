"""Character-level text utilities shared by every stage.

Chinese has no spaces, so every similarity here works on characters. rouge-score's
default tokenizer keeps only ``[a-z0-9]`` and silently turns a Chinese sentence into an
empty token list; these helpers never do that.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
from rapidfuzz.distance import LCSseq
from tqdm.auto import tqdm

_WHITESPACE = re.compile(r"\s+")
TEXT_CHUNK = 100_000  # rows mapped at once: the only Python strings alive at a time
# pandas' default text dtype (pandas 3): Arrow large_string storage, NaN for missing.
STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)

Texts: TypeAlias = Sequence[Any] | pd.Series | pa.Array | pa.ChunkedArray


def as_texts(texts: Texts) -> pa.LargeStringArray:
    """``texts`` as one Arrow ``large_string`` array (a pandas ``str`` column converts
    without a Python object per value; a list, as tests and benches pass, is copied)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not isinstance(texts, pa.Array):
        texts = pa.array(
            texts if isinstance(texts, pd.Series) else list(texts),
            type=pa.large_string(),
        )
    if texts.type != pa.large_string():
        texts = texts.cast(pa.large_string())
    return texts


def _text_chunks(texts: Texts) -> Iterator[list[Any]]:
    """``texts`` as Python lists of ``TEXT_CHUNK`` values, one chunk at a time."""
    for start in range(0, len(texts), TEXT_CHUNK):
        if isinstance(texts, pd.Series):
            yield texts.iloc[start : start + TEXT_CHUNK].tolist()
        elif isinstance(texts, (pa.Array, pa.ChunkedArray)):
            yield texts.slice(start, TEXT_CHUNK).to_pylist()
        else:
            yield list(texts[start : start + TEXT_CHUNK])


def map_texts(
    function: Callable[..., str], *columns: Texts, progress: str | None = None
) -> pa.ChunkedArray:
    """``function`` of each row's values across ``columns``, as Arrow chunks.

    ``TEXT_CHUNK`` rows at a time, so ten million rows never live as ten million
    Python strings, and the chunks are never joined: joining them would hold a second
    copy of the whole column (at 10M, 2.8 GB for the outputs). ``as_texts`` joins
    them where one array is needed (comparison keys). ``progress`` names a tqdm bar.
    """
    count = len(columns[0])
    if any(len(column) != count for column in columns):
        raise ValueError(f"columns of different lengths: {[len(c) for c in columns]}")
    parts = []
    with tqdm(
        total=count, desc=progress, disable=progress is None, mininterval=2.0
    ) as bar:
        for rows in zip(*map(_text_chunks, columns), strict=True):
            parts.append(
                pa.array(
                    [function(*row) for row in zip(*rows, strict=True)],
                    type=pa.large_string(),
                )
            )
            bar.update(len(rows[0]))
    return pa.chunked_array(parts, type=pa.large_string())


def text_series(values: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    """An Arrow string array (or its chunks) as a pandas ``str`` column, without copying it."""
    chunks = values if isinstance(values, pa.ChunkedArray) else [values]
    return pd.Series(
        # pandas-stubs lag pandas 3, whose ArrowStringArray takes the dtype.
        pd.arrays.ArrowStringArray(  # type: ignore[call-arg]
            pa.chunked_array(chunks, type=pa.large_string()), dtype=STR_DTYPE
        ),
        index=index,
    )


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
