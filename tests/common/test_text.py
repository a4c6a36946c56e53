"""Text helpers: chunked mapping into Arrow gives what a plain loop gives."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from belle_kedro.common import text
from belle_kedro.common.text import as_texts, map_texts, similarity_key, text_series


def test_map_texts_across_chunk_boundaries_equals_a_plain_loop(monkeypatch):
    monkeypatch.setattr(text, "TEXT_CHUNK", 7)  # 50 rows: 8 chunks, the last short
    rng = random.Random(3)
    alphabet = "春天的诗 AB\u3000ｆｕｌｌ𠀀"  # a space kind, full-width, a non-BMP char
    first = ["".join(rng.choices(alphabet, k=rng.randint(0, 9))) for _ in range(50)]
    second = pd.Series(
        ["".join(rng.choices(alphabet, k=rng.randint(0, 5))) for _ in range(50)]
    )
    mapped = map_texts(lambda a, b: similarity_key(a + b), first, second)
    assert mapped.type == pa.large_string()
    # Chunk by chunk, never joined: a joined copy doubles a 10M-row column's memory.
    assert mapped.num_chunks == 8 and len(mapped.chunk(7)) == 1
    assert mapped.to_pylist() == [
        similarity_key(a + b) for a, b in zip(first, second, strict=True)
    ]
    with pytest.raises(ValueError, match="different lengths"):
        map_texts(similarity_key, first, second[:3])
    assert map_texts(similarity_key, []).to_pylist() == []


def test_a_str_column_round_trips_through_arrow_unchanged():
    column = pd.Series(["写一首诗", "", "𠀀x"], index=[5, 6, 7], dtype=str)
    arrow = as_texts(column)
    assert arrow.type == pa.large_string() and arrow.to_pylist() == column.tolist()
    back = text_series(arrow, column.index)
    pd.testing.assert_series_equal(back, column)
    assert as_texts(pa.chunked_array([["a"], ["b"]])).to_pylist() == ["a", "b"]
    assert np.array_equal(as_texts(["a"]).to_pylist(), ["a"])
