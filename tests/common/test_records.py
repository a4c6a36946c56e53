"""Instruction records: the digest that links split, train, MLflow and the registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from belle_kedro.common.records import as_text_records, records_digest, select_rows
from belle_kedro.common.text import STR_DTYPE
from tests.support.records import make_records


def test_records_digest_is_stable_and_content_sensitive():
    records = make_records(10)
    assert records_digest(records) == records_digest(records.copy())
    changed = records.copy()
    changed.loc[3, "output"] = str(changed.loc[3, "output"]) + "。"
    assert records_digest(changed) != records_digest(records)
    assert records_digest(records.iloc[::-1]) != records_digest(records)


def test_extra_columns_do_not_change_the_digest():
    records = make_records(5)
    assert records_digest(records.assign(source="x")) == records_digest(records)


def test_text_records_fill_missing_text_and_name_missing_columns():
    records = make_records(3)
    records.loc[1, "input"] = None
    assert as_text_records(records, "r")["input"].tolist()[1] == ""
    with pytest.raises(ValueError, match=r"pool lacks the column\(s\) \['output'\]"):
        as_text_records(records.drop(columns="output"), "pool")


def test_selected_rows_equal_boolean_indexing_and_keep_arrow_chunks_apart():
    chunked = pd.concat(
        [
            pd.DataFrame(
                {
                    "instruction": pd.Series(texts, dtype=STR_DTYPE),
                    "score": [0.5] * len(texts),
                    "category": pd.Categorical(["a"] * len(texts)),
                    "raw": [None, 3][: len(texts)],
                }
            )
            for texts in (["写诗", "翻译"], ["总结", None])
        ],
        ignore_index=True,
    )
    keep = np.array([True, False, False, True])
    selected = select_rows(chunked, keep)
    pd.testing.assert_frame_equal(selected, chunked[keep].reset_index(drop=True))
    # Filtered chunk by chunk: the two chunks are never joined into one array.
    assert selected["instruction"].array.__arrow_array__().num_chunks == 2
    assert select_rows(chunked, np.zeros(4, dtype=bool)).empty
