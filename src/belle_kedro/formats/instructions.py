"""Alpaca/BELLE instruction files as DataFrames with the record columns (instruction, input, output).

Accepted shapes, told apart per record so one reader serves every published file:

* Alpaca/BELLE: ``{"instruction", "input", "output"}`` (``input`` optional or null);
* BELLE hub copies: ``{"input", "target"}``: instruction and input merged into
  ``input``, the answer in ``target``;
* BELLE seed tasks: ``{"instruction", "instances": [{"input", "output"}], ...}``, one
  row per instance.

A file is either one JSON array of records or JSON Lines (one object a line), whatever
its extension. Every other key is kept as a provenance column; ``source`` is the file
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

from belle_kedro.formats.errors import FormatError
from belle_kedro.formats.reading import json_lines, read_text
from belle_kedro.formats.seeds import parse_instances

INSTRUCTION_COLUMNS = ["instruction", "input", "output"]
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


def _text_field(
    record: dict[str, Any], field: str, path: Path, line: int, *, required: bool
) -> str:
    if field not in record or record[field] is None:
        if required:
            raise FormatError(path, line, field, "is missing")
        return ""
    value = record[field]
    if not isinstance(value, str):
        raise FormatError(
            path, line, field, f"must be a string, got {type(value).__name__}"
        )
    return value


def _rows_of(record: Any, path: Path, line: int) -> list[dict[str, Any]]:
    if not isinstance(record, dict):
        raise FormatError(
            path, line, None, f"must be a JSON object, got {type(record).__name__}"
        )
    extra = {
        key: value
        for key, value in record.items()
        if key not in {*INSTRUCTION_COLUMNS, "target", "instances"}
    }
    if "instances" in record and "output" not in record:
        instruction = _text_field(record, "instruction", path, line, required=True)
        return [
            {"instruction": instruction, **instance, **extra}
            for instance in parse_instances(record["instances"], path, line)
        ]
    if "instruction" not in record and "target" in record:  # BELLE hub copy
        instruction = _text_field(record, "input", path, line, required=True)
        return [
            {
                "instruction": instruction,
                "input": "",
                "output": _text_field(record, "target", path, line, required=True),
                **extra,
            }
        ]
    return [
        {
            "instruction": _text_field(
                record, "instruction", path, line, required=True
            ),
            "input": _text_field(record, "input", path, line, required=False),
            "output": _text_field(record, "output", path, line, required=True),
            **extra,
        }
    ]


def _missing(value: Any) -> bool:
    """None, or the NaN pandas puts where a file lacks a provenance key."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _provenance_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Make extra columns Parquet-safe: nested or mixed-type values become JSON text."""
    for column in frame.columns:
        if column in INSTRUCTION_COLUMNS or frame[column].dtype != object:
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


def load_instruction_file(path: str | Path) -> pd.DataFrame:
    """One instruction file (JSON array or JSON Lines) as instruction records."""
    path = Path(path)
    text = read_text(path)
    records = (
        _array_records(text, path)
        if text.lstrip().startswith("[")
        else json_lines(text, path)
    )
    rows = [row for line, record in records for row in _rows_of(record, path, line)]
    if not rows:
        raise FormatError(path, None, None, "holds no instruction records")
    frame = pd.DataFrame(rows)
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
