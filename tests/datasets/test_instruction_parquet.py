"""Parquet instruction files: read in row groups; bad input named by file, row, field."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from belle_kedro.common.errors import FormatError
from belle_kedro.datasets.instructions import (
    InstructionFileDataset,
    load_instruction_file,
)


def _write(path: Path, columns: dict[str, pa.Array]) -> Path:
    pq.write_table(pa.table(columns), path, row_group_size=2)
    return path


def test_a_parquet_file_reads_row_group_by_row_group(tmp_path: Path):
    path = _write(
        tmp_path / "records.parquet",
        {
            "instruction": pa.array(["写一首诗", "翻译这句话", "总结全文"]),
            "input": pa.array([None, "你好", ""]),
            "output": pa.array(["好", "hello", "完"]),
        },
    )
    frame = InstructionFileDataset(str(path)).load()
    assert frame["instruction"].tolist() == ["写一首诗", "翻译这句话", "总结全文"]
    assert frame["input"].tolist() == ["", "你好", ""]
    assert frame["source"].tolist() == ["records"] * 3


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"instruction": pa.array(["a b c d"])},
            r"bad\.parquet: field 'output' is missing \(no such column\)",
        ),
        (
            {
                "instruction": pa.array(["一", "二", "三"]),
                "output": pa.array([1, 2, 3]),
            },
            r"bad\.parquet, row 1: field 'output' must be text, not int64",
        ),
        (
            {
                "instruction": pa.array(
                    [b"ok", b"fine", b"\xff\xfe"], type=pa.binary()
                ).view(pa.string()),
                "output": pa.array(["x", "y", "z"]),
            },
            r"bad\.parquet, row 3: field 'instruction' is not UTF-8 text",
        ),
        (
            {
                "instruction": pa.array(["一", "二", None]),
                "output": pa.array(["x"] * 3),
            },
            r"bad\.parquet, row 3: field 'instruction' is missing \(null\)",
        ),
    ],
    ids=["missing column", "non-string", "invalid utf-8", "null"],
)
def test_bad_parquet_input_names_file_row_and_field(
    tmp_path: Path, columns: dict[str, pa.Array], message: str
):
    path = _write(tmp_path / "bad.parquet", columns)
    with pytest.raises(FormatError, match=message):
        load_instruction_file(path)
