"""A Label Studio JSON export that reviewers download by hand; None when absent.

Absent is a normal state (the review may pull from the server instead), so the node
that reads it decides what a missing file means; a file that is there must be JSON.
"""

from __future__ import annotations

import json
from typing import Any

from belle_kedro.common.errors import FormatError
from belle_kedro.datasets.reading import ReadOnlyFileDataset, read_text


class ReviewExportDataset(ReadOnlyFileDataset):
    """The parsed export (a list of tasks, checked by the review), or None."""

    def load(self) -> Any:
        if not self._filepath.is_file():
            return None
        text = read_text(self._filepath)
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise FormatError(
                self._filepath,
                error.lineno,
                None,
                f"is not valid JSON ({error.msg} at column {error.colno})",
            ) from None
