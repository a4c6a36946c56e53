"""Load-only Kedro datasets for BELLE's eval set and judge prompt files.

Both files are inputs written by people, never pipeline outputs, so saving is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from belle_kedro.formats.eval import JudgePrompts, load_eval_set, load_judge_prompts


class _ReadOnlyFileDataset(AbstractDataset[None, Any]):
    """A local file that is read by one loader function and never written."""

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath).expanduser()
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def save(self, data: None) -> None:
        raise DatasetError(
            f"{type(self).__name__} is read-only; edit {self._filepath} by hand"
        )


class EvalSetDataset(_ReadOnlyFileDataset):
    """BELLE-format eval set -> DataFrame[question, std_answer, class] (class normalised).

    ```yaml
    eval_set:
      type: belle_kedro.datasets.eval_files.EvalSetDataset
      filepath: data/01_raw/eval_set.json
    ```
    """

    def load(self) -> pd.DataFrame:
        return load_eval_set(self._filepath)


class JudgePromptsDataset(_ReadOnlyFileDataset):
    """BELLE-format judge prompts -> dict of normalised class -> prompt.

    ```yaml
    judge_prompts:
      type: belle_kedro.datasets.eval_files.JudgePromptsDataset
      filepath: data/01_raw/eval_prompt.json
    ```
    """

    def load(self) -> JudgePrompts:
        return load_judge_prompts(self._filepath)
