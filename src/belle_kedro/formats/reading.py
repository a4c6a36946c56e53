"""Reading text and JSON Lines files with errors that name the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from belle_kedro.formats.errors import FormatError


def read_text(path: Path) -> str:
    """A UTF-8 file's text (a BOM is dropped); FormatError when missing or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FormatError(path, None, None, "file not found") from None
    except UnicodeDecodeError as error:
        raise FormatError(
            path,
            None,
            None,
            f"is not UTF-8 text ({error.reason} at byte {error.start})",
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
