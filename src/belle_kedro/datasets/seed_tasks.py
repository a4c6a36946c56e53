"""Load-only Kedro dataset for BELLE's seed-task JSON Lines file."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from kedro.io.core import AbstractDataset, DatasetError

from belle_kedro.formats.seeds import load_seed_tasks


class SeedTasksDataset(AbstractDataset[None, pd.DataFrame]):
    """Seed tasks as a DataFrame (see ``belle_kedro.formats.seeds.load_seed_tasks``).

    Example catalog entry::

        seed_tasks:
          type: belle_kedro.datasets.seed_tasks.SeedTasksDataset
          filepath: data/01_raw/zh_seed_tasks.json
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        """Parse the file; a bad record raises ``FormatError`` naming file, line and field."""
        return load_seed_tasks(Path(self._filepath))

    def save(self, data: None) -> None:
        """Seed tasks are hand-written input; the pipeline never writes them."""
        raise DatasetError(
            f"SeedTasksDataset is read-only; refusing to overwrite '{self._filepath}'."
        )

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
