"""The one error type for bad input files."""

from __future__ import annotations

from pathlib import Path


class FormatError(ValueError):
    """A bad record, named by file, line and field so a user can go straight to it."""

    def __init__(
        self,
        path: str | Path,
        line: int | None,
        field: str | None,
        problem: str,
        *,
        unit: str = "line",
    ):
        self.path = str(path)
        self.line = line  # 1-based; a row of a table when ``unit`` is "row"
        self.field = field
        self.problem = problem
        where = self.path if line is None else f"{self.path}, {unit} {line}"
        what = f" field '{field}'" if field else ""
        super().__init__(f"{where}:{what} {problem}")
