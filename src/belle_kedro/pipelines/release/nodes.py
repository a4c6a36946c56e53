"""Nodes of the release pipeline: dataset folder, model folders, registry text, upload.

Each builds :class:`~belle_kedro.pipelines.release.settings.ReleaseSettings` from the
raw ``params:release`` block and hands typed objects to the modules beside it. Variant
inputs arrive as keyword arguments named ``train_data__<variant>`` and
``model_version__<variant>`` (see :mod:`.pipeline`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlflow
import pandas as pd

from belle_kedro.common.config import build
from belle_kedro.pipelines.release.dataset_folder import (
    RunRecords,
    content_digest,
    dataset_folder,
)
from belle_kedro.pipelines.release.settings import ReleaseSettings

TRAIN_DATA = "train_data__"
MODEL_VERSION = "model_version__"


def _settings(params: Mapping[str, Any]) -> ReleaseSettings:
    return build(ReleaseSettings, params, "release")


def by_variant(inputs: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The keyword inputs named ``<prefix><variant>``, keyed by variant."""
    return {
        name.removeprefix(prefix): value
        for name, value in inputs.items()
        if name.startswith(prefix)
    }


def build_dataset_folder(
    holdout: pd.DataFrame,
    generation_summary: Mapping[str, Any],
    generation_prompt: Mapping[str, Any],
    seed_tasks: pd.DataFrame,
    clean_report: Mapping[str, Any],
    split_report: Mapping[str, Any],
    eval_macro: pd.DataFrame,
    champion: Mapping[str, Any],
    run_command: Mapping[str, Any],
    release_params: Mapping[str, Any],
    **variant_inputs: Any,
) -> dict[str, str | bytes]:
    """The dataset folder (Parquet per config, exports, dataset_info.json, card).

    Reads the active MLflow run's id (the release's parent run) for the card.
    """
    settings = _settings(release_params)
    active = mlflow.active_run()
    records = RunRecords(
        generation_summary=generation_summary,
        prompt_digest=content_digest(generation_prompt),
        seed_tasks_digest=content_digest(seed_tasks.to_dict(orient="records")),
        seed_tasks_count=len(seed_tasks),
        clean_report=clean_report,
        split_report=split_report,
        model_versions=by_variant(variant_inputs, MODEL_VERSION),
        eval_macro=eval_macro,
        champion=champion,
        run_command=run_command,
        parent_run_id=active.info.run_id if active else None,
    )
    return dataset_folder(
        holdout, by_variant(variant_inputs, TRAIN_DATA), records, settings.dataset
    )
