"""Kedro dataset for the append-only response journal (``raw_responses``)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from belle_kedro.llm.journal import ResponseJournal


class ResponseJournalDataset(AbstractDataset[None, ResponseJournal]):
    """Loads a ``ResponseJournal`` handle; nodes append through it as answers arrive.

    Kedro saves outputs when a node returns, which is too late for answers that must
    survive SIGKILL at any moment, so this dataset hands out the journal itself instead
    of a snapshot. It is never saved through Kedro.

    Example catalog entry::

        raw_responses:
          type: belle_kedro.datasets.journal.ResponseJournalDataset
          filepath: data/01_raw/raw_responses.jsonl
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> ResponseJournal:
        """The journal at ``filepath`` (created on the first append)."""
        return ResponseJournal(Path(self._filepath))

    def save(self, data: None) -> None:
        """Refused: records are appended through the loaded handle, one at a time."""
        raise DatasetError(
            f"'{self._filepath}' is append-only: append through the handle that load() returns"
        )

    def _exists(self) -> bool:
        # Loading always works (an absent file is an empty journal).
        return True

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
