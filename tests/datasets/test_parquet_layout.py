"""The project's Parquet saves are a function of the table, not of how its columns
are chunked in memory: ``clean`` filters a chunk at a time, and its outputs must stay
the bytes ``DataFrame.to_parquet`` wrote when every column was one array."""

from __future__ import annotations

import io

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kedro.io import DataCatalog

from belle_kedro.datasets.parquet import ParquetDataset, write_parquet


def frame_of(texts: list[str], chunk: int) -> pd.DataFrame:
    column = pa.chunked_array(
        [
            pa.array(texts[i : i + chunk], pa.large_string())
            for i in range(0, len(texts), chunk)
        ]
    )
    return pd.DataFrame(
        {
            "instruction": pd.arrays.ArrowExtensionArray(column),
            "n": np.arange(len(texts)),
        }
    )


def ours(frame: pd.DataFrame, **save_args) -> bytes:
    buffer = io.BytesIO()
    write_parquet(frame, buffer, **save_args)
    return buffer.getvalue()


def pandas(frame: pd.DataFrame, **save_args) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, **save_args)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    # Enough text that each column spans many 1 MiB data pages.
    lengths = np.random.default_rng(0).integers(1, 40, 200_000)
    return ["指令" * int(k) + str(i) for i, k in enumerate(lengths)]


def test_the_bytes_do_not_depend_on_the_chunks(texts):
    whole, cut = frame_of(texts, len(texts)), frame_of(texts, 70_000)
    assert cut["instruction"].array._pa_array.num_chunks == 3
    # pandas' own writer gives other bytes for the same table in other chunks...
    assert pandas(whole) != pandas(cut)
    # ...ours gives, for either, what pandas writes for one array per column.
    assert ours(whole) == ours(cut) == pandas(whole)
    # A row group size the entry names is kept, each group joined on its own.
    written = ours(cut, row_group_size=50_000)
    assert written == pandas(whole, row_group_size=50_000)
    assert pq.ParquetFile(io.BytesIO(written)).metadata.num_row_groups == 4


@pytest.mark.parametrize("index", [None, False, True])
def test_index_attrs_and_empty_frames_are_written_as_pandas_writes_them(index):
    named = pd.DataFrame({"a": ["x", "y"]}, index=pd.Index([5, 7], name="id"))
    named.attrs = {"source": "seed"}
    empty = pd.DataFrame({"a": pd.Series([], dtype=object)})
    for frame in (named, empty):
        assert ours(frame, index=index) == pandas(frame, index=index)
    loaded = pd.read_parquet(io.BytesIO(ours(named)))
    assert loaded.attrs == {"source": "seed"}
    pd.testing.assert_frame_equal(loaded, named)


def test_a_catalog_entry_saves_the_canonical_bytes(tmp_path, texts):
    target = tmp_path / "clean_instructions.parquet"
    catalog = DataCatalog.from_config(
        {
            "clean_instructions": {
                "type": "belle_kedro.datasets.parquet.ParquetDataset",
                "filepath": str(target),
            }
        }
    )
    catalog.save("clean_instructions", frame_of(texts, 30_000))
    assert target.read_bytes() == pandas(frame_of(texts, len(texts)))


def test_an_object_store_save_writes_the_same_bytes(texts):
    dataset = ParquetDataset(filepath="memory:///belle/clean_instructions.parquet")
    dataset.save(frame_of(texts, 30_000))
    with fsspec.open("memory:///belle/clean_instructions.parquet", "rb") as saved:
        assert saved.read() == pandas(frame_of(texts, len(texts)))
    pd.testing.assert_frame_equal(dataset.load(), frame_of(texts, len(texts)))
