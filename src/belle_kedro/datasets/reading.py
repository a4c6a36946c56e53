"""Reading people's files: text, JSON Lines and string fields, with errors that say where.

Every reader in this package goes through these helpers, so a bad file always gets a
:class:`~belle_kedro.common.errors.FormatError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from belle_kedro.common.errors import FormatError


def read_text(path: Path) -> str:
    """A UTF-8 file's text (a BOM is dropped); FormatError when missing or not UTF-8.

    Bytes that are not UTF-8 are reported with their 1-based line and column.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(path, None, None, "file not found") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        raise FormatError(
            path,
            data.count(b"\n", 0, error.start) + 1,
            None,
            f"is not UTF-8 text ({error.reason} at byte {error.start}, column "
            f"{error.start - line_start + 1}); save the file as UTF-8",
        ) from None


def json_lines(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    """``(1-based line number, parsed value)`` for each non-blank line."""
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield line_number, json.loads(line)
        except json.JSONDecodeError as error:
            raise FormatError(
                path,
                line_number,
                None,
                f"is not valid JSON ({error.msg} at column {error.colno})",
            ) from None


def json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSON Lines file."""
    for line_number, record in json_lines(read_text(path), path):
        if not isinstance(record, dict):
            raise FormatError(
                path,
                line_number,
                None,
                f"must be a JSON object, got {type(record).__name__}",
            )
        yield line_number, record


def text_field(
    record: Mapping[str, Any],
    field: str,
    path: Path,
    line: int,
    *,
    required: bool = True,
    allow_blank: bool = True,
    null_is_absent: bool = False,
    label: str | None = None,
) -> str:
    """The string under ``field``; a FormatError naming file, line and field otherwise.

    An absent field is an error when ``required`` and ``""`` when not; a null one
    counts as absent with ``null_is_absent`` (Alpaca files write ``"input": null``) and
    is a wrong type otherwise. A blank string is an error unless ``allow_blank``.
    ``label`` names the field in the error when it sits inside a list
    (``instances[2].input``).
    """
    name = label or field
    if field not in record or (null_is_absent and record[field] is None):
        if required:
            raise FormatError(path, line, name, "is missing")
        return ""
    value = record[field]
    if not isinstance(value, str):
        raise FormatError(
            path, line, name, f"must be a string, got {type(value).__name__}"
        )
    if not allow_blank and not value.strip():
        raise FormatError(path, line, name, "is empty")
    return value


class ReadOnlyFileDataset(AbstractDataset[None, Any]):
    """A local file read by one loader (``load`` in the subclass) and never written."""

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath).expanduser()
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def save(self, data: None) -> None:
        """Refused: these files are written by people, never by a pipeline."""
        raise DatasetError(
            f"{type(self).__name__} is read-only; refusing to overwrite {self._filepath} "
            "(edit it by hand)"
        )
