"""Load-only Kedro dataset for BELLE's seed-task JSON Lines file."""

from __future__ import annotations

import pandas as pd

from belle_kedro.datasets.read_only import ReadOnlyFileDataset
from belle_kedro.formats.seeds import load_seed_tasks


class SeedTasksDataset(ReadOnlyFileDataset):
    """Seed tasks as a DataFrame (see ``belle_kedro.formats.seeds.load_seed_tasks``).

    Example catalog entry::

        seed_tasks:
          type: belle_kedro.datasets.seed_tasks.SeedTasksDataset
          filepath: data/01_raw/zh_seed_tasks.json
    """

    def load(self) -> pd.DataFrame:
        """Parse the file; a bad record raises ``FormatError`` naming file, line and field."""
        return load_seed_tasks(self._filepath)
