"""Alpaca/BELLE instruction files as DataFrames of instruction records, and their dataset.

Accepted shapes, told apart per record so one reader serves every published file:

* Alpaca/BELLE: ``{"instruction", "input", "output"}`` (``input`` optional or null);
* BELLE hub copies: ``{"input", "target"}``: instruction and input merged into
  ``input``, the answer in ``target``;
* BELLE seed tasks: ``{"instruction", "instances": [{"input", "output"}], ...}``, one
  row per instance;
* ShareGPT ``{"conversations": [{"from", "value"}, ...], "system"}`` and OpenAI/TRL
  ``{"messages": [{"role", "content"}, ...]}`` (:mod:`.chat_formats`): one exchange
  becomes ``instruction`` (the user turn) and ``output``; any other conversation (more
  turns) becomes a row whose ``skip_reason`` says why (``multi_turn``), which the clean
  report counts and the split leaves out, so nothing disappears unseen.

A file is either one JSON array of records or JSON Lines (one object a line), whatever
its extension, or a Parquet file (``.parquet``: string columns ``instruction``,
``output`` and optionally ``input``, read row group by row group; a missing column, a
non-string column or invalid UTF-8 raises ``FormatError`` naming the row and field). Every other key is kept as a provenance column; ``source`` is the file
stem unless a record names its own. A bad record raises ``FormatError`` with the file,
the 1-based line the record starts on, and the field.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io.core import AbstractDataset, DatasetError

from belle_kedro.common.errors import FormatError
from belle_kedro.common.records import RECORD_COLUMNS, SKIP_REASON
from belle_kedro.datasets.chat_formats import (
    MESSAGES,
    SHAREGPT,
    ChatShapeError,
    read_exchange,
)
from belle_kedro.datasets.reading import json_lines, read_text, text_field
from belle_kedro.datasets.seed_tasks import parse_instances

_DECODER = json.JSONDecoder()
_JSON_WHITESPACE = " \t\n\r"


def _line_starts(text: str) -> list[int]:
    starts = [0]
    position = text.find("\n")
    while position != -1:
        starts.append(position + 1)
        position = text.find("\n", position + 1)
    return starts


def _array_records(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    """``(line, record)`` for each element of a top-level JSON array, in order."""
    starts = _line_starts(text)

    def line_of(offset: int) -> int:
        return bisect_right(starts, offset)

    def skip_space(offset: int) -> int:
        while offset < len(text) and text[offset] in _JSON_WHITESPACE:
            offset += 1
        return offset

    offset = skip_space(text.index("[") + 1)
    if offset < len(text) and text[offset] == "]":
        return
    while True:
        try:
            record, end = _DECODER.raw_decode(text, offset)
        except json.JSONDecodeError as error:
            raise FormatError(
                path, line_of(error.pos), None, f"is not valid JSON ({error.msg})"
            ) from None
        yield line_of(offset), record
        offset = skip_space(end)
        if offset < len(text) and text[offset] == ",":
            offset = skip_space(offset + 1)
            continue
        if offset < len(text) and text[offset] == "]":
            if skip_space(offset + 1) != len(text):
                raise FormatError(
                    path, line_of(offset + 1), None, "has text after the closing ']'"
                )
            return
        raise FormatError(
            path, line_of(offset), None, "is not valid JSON (expected ',' or ']')"
        )


def _chat_rows(
    record: dict[str, Any], shape: dict[str, str], path: Path, line: int
) -> list[dict[str, Any]]:
    try:
        exchange = read_exchange(record, shape)
    except ChatShapeError as error:
        raise FormatError(path, line, error.field, error.message) from None
    extra = {k: v for k, v in record.items() if k not in (shape["list"], "system")}
    if exchange.system is not None:
        extra["system"] = exchange.system
    if exchange.skip_reason is not None:
        empty = dict.fromkeys(RECORD_COLUMNS, "")
        return [{**empty, SKIP_REASON: exchange.skip_reason, **extra}]
    return [
        {
            "instruction": exchange.user,
            "input": "",
            "output": exchange.assistant,
            **extra,
        }
    ]


def _rows_of(record: Any, path: Path, line: int) -> list[dict[str, Any]]:
    if not isinstance(record, dict):
        raise FormatError(
            path, line, None, f"must be a JSON object, got {type(record).__name__}"
        )
    for shape in (SHAREGPT, MESSAGES):
        if shape["list"] in record and "instruction" not in record:
            return _chat_rows(record, shape, path, line)
    extra = {
        key: value
        for key, value in record.items()
        if key not in {*RECORD_COLUMNS, "target", "instances"}
    }
    if "instances" in record and "output" not in record:
        instruction = text_field(record, "instruction", path, line, null_is_absent=True)
        return [
            {"instruction": instruction, **instance, **extra}
            for instance in parse_instances(record["instances"], path, line)
        ]
    if "instruction" not in record and "target" in record:  # BELLE hub copy
        instruction = text_field(record, "input", path, line, null_is_absent=True)
        return [
            {
                "instruction": instruction,
                "input": "",
                "output": text_field(record, "target", path, line, null_is_absent=True),
                **extra,
            }
        ]
    return [
        {
            "instruction": text_field(
                record, "instruction", path, line, null_is_absent=True
            ),
            "input": text_field(
                record, "input", path, line, required=False, null_is_absent=True
            ),
            "output": text_field(record, "output", path, line, null_is_absent=True),
            **extra,
        }
    ]


def _missing(value: Any) -> bool:
    """None, or the NaN pandas puts where a file lacks a provenance key."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _provenance_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Make extra columns Parquet-safe: nested or mixed-type values become JSON text."""
    for column in frame.columns:
        if column in RECORD_COLUMNS or frame[column].dtype != object:
            continue
        kinds = {type(value) for value in frame[column] if not _missing(value)}
        if len(kinds) > 1 or kinds & {dict, list}:
            frame[column] = [
                None
                if _missing(value)
                else value
                if isinstance(value, str)
                else json.dumps(value, ensure_ascii=False)
                for value in frame[column]
            ]
    return frame


def _checked_column(
    path: Path, column: pa.ChunkedArray, name: str, first_row: int
) -> None:
    """FormatError naming the first bad row of a Parquet column that is not valid text."""
    if pa.types.is_null(column.type):
        return
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        valid = column.is_valid().to_pylist()
        row = first_row + (valid.index(True) if True in valid else 0) + 1
        raise FormatError(
            path, row, name, f"must be text, not {column.type}", unit="row"
        )
    try:
        column.validate(full=True)
    except pa.ArrowInvalid:
        # Only on the error path: find the row by decoding each value.
        values = column.cast(pa.binary()).to_pylist()
        for offset, value in enumerate(values):
            try:
                (value or b"").decode("utf-8")
            except UnicodeDecodeError as error:
                raise FormatError(
                    path,
                    first_row + offset + 1,
                    name,
                    f"is not UTF-8 text ({error.reason} at byte {error.start})",
                    unit="row",
                ) from None
        raise


def _load_parquet(path: Path) -> pd.DataFrame:
    """Instruction records from a Parquet file, checked row group by row group."""
    try:
        reader = pq.ParquetFile(path)
    except FileNotFoundError:
        raise FormatError(path, None, None, "file not found") from None
    except pa.ArrowException as error:
        raise FormatError(
            path, None, None, f"is not a Parquet file ({error})"
        ) from None
    names = reader.schema_arrow.names
    for required in ("instruction", "output"):
        if required not in names:
            raise FormatError(path, None, required, "is missing (no such column)")
    frames, first_row = [], 0
    for group in range(reader.num_row_groups):
        table = reader.read_row_group(group)
        for name in RECORD_COLUMNS:
            if name in table.column_names:
                _checked_column(path, table.column(name), name, first_row)
        for name in ("instruction", "output"):
            nulls = table.column(name).is_null().to_pylist()
            if True in nulls:
                row = first_row + nulls.index(True) + 1
                raise FormatError(path, row, name, "is missing (null)", unit="row")
        frames.append(table.to_pandas())
        first_row += table.num_rows
    frame = pd.concat(frames, ignore_index=True)
    if "input" not in frame.columns:
        frame["input"] = ""
    frame["input"] = frame["input"].fillna("")
    return frame


def load_instruction_file(path: str | Path) -> pd.DataFrame:
    """One instruction file (JSON array, JSON Lines or Parquet) as instruction records."""
    path = Path(path)
    if path.suffix == ".parquet":
        return _with_source(_load_parquet(path), path)
    text = read_text(path)
    records = (
        _array_records(text, path)
        if text.lstrip().startswith("[")
        else json_lines(text, path)
    )
    rows = [row for line, record in records for row in _rows_of(record, path, line)]
    if not rows:
        raise FormatError(path, None, None, "holds no instruction records")
    return _with_source(pd.DataFrame(rows), path)


def _with_source(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``source`` is the file stem unless a record names its own; provenance made safe."""
    if "source" not in frame.columns:
        frame["source"] = path.stem
    else:
        frame["source"] = frame["source"].where(frame["source"].notna(), path.stem)
    return _provenance_safe(frame)


def load_instruction_files(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Several files, concatenated in the given order (the order dedup keeps first)."""
    if not paths:
        raise ValueError("no instruction files given")
    frames = [load_instruction_file(path) for path in paths]
    return (
        _provenance_safe(pd.concat(frames, ignore_index=True))
        if len(frames) > 1
        else frames[0]
    )


class InstructionFileDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """Instruction records (``instruction, input, output`` + provenance) from files.

    ``filepath`` is one path or a list of paths, read and concatenated in that order
    (see this module for the accepted shapes). Example::

        generated_instructions:
          type: belle_kedro.datasets.instructions.InstructionFileDataset
          filepath:
            - ${oc.env:BELLE_SHARED_DATA,../shared/data/zh_instructions}/alpaca_zh_carbonz0.json
            - ${oc.env:BELLE_SHARED_DATA,../shared/data/zh_instructions}/alpaca_zh_openchinese_v3.json
    """

    def __init__(
        self, filepath: str | list[str], metadata: dict[str, Any] | None = None
    ) -> None:
        paths = [filepath] if isinstance(filepath, str) else list(filepath)
        if not paths:
            raise DatasetError("InstructionFileDataset needs at least one filepath")
        self._paths = [Path(path) for path in paths]
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        """Parse every file; a bad record raises ``FormatError`` naming file, line, field."""
        return load_instruction_files(self._paths)

    def save(self, data: pd.DataFrame) -> None:
        """Input files belong to the user; the pipeline never rewrites them."""
        raise DatasetError(
            f"InstructionFileDataset is read-only; refusing to overwrite {self._paths}."
        )

    def _exists(self) -> bool:
        return all(path.is_file() for path in self._paths)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": [str(path) for path in self._paths]}
