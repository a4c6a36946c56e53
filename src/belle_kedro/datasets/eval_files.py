"""Load-only Kedro datasets for BELLE's eval set and judge prompt files.

Both files are inputs written by people, never pipeline outputs, so saving is refused.
"""

from __future__ import annotations

import pandas as pd

from belle_kedro.datasets.read_only import ReadOnlyFileDataset
from belle_kedro.formats.eval import JudgePrompts, load_eval_set, load_judge_prompts


class EvalSetDataset(ReadOnlyFileDataset):
    """BELLE-format eval set -> DataFrame[question, std_answer, class] (class normalised).

    ```yaml
    eval_set:
      type: belle_kedro.datasets.eval_files.EvalSetDataset
      filepath: data/01_raw/eval_set.json
    ```
    """

    def load(self) -> pd.DataFrame:
        return load_eval_set(self._filepath)


class JudgePromptsDataset(ReadOnlyFileDataset):
    """BELLE-format judge prompts -> dict of normalised class -> prompt.

    ```yaml
    judge_prompts:
      type: belle_kedro.datasets.eval_files.JudgePromptsDataset
      filepath: data/01_raw/eval_prompt.json
    ```
    """

    def load(self) -> JudgePrompts:
        return load_judge_prompts(self._filepath)
