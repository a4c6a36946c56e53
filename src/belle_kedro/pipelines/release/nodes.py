"""Nodes of the release pipeline: dataset folder, model folders, registry text, upload.

Each builds :class:`~belle_kedro.pipelines.release.settings.ReleaseSettings` from the
raw ``params:release`` block and hands typed objects to the modules beside it. Variant
inputs arrive as keyword arguments named ``train_data__<variant>`` and
``model_version__<variant>`` (see :mod:`belle_kedro.pipelines.release.pipeline`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from belle_kedro.common.config import build
from belle_kedro.pipelines.evaluate.settings import EvaluateSettings
from belle_kedro.pipelines.release.dataset_folder import (
    RunRecords,
    content_digest,
    dataset_folder,
)
from belle_kedro.pipelines.release.model_folder import (
    ModelFacts,
    adapter_base,
    folder_writer,
    load_registered,
    model_card,
    registered_adapter,
    released_variants,
)
from belle_kedro.pipelines.release.push import push_release
from belle_kedro.pipelines.release.registry_text import describe_registry
from belle_kedro.pipelines.release.settings import ReleaseSettings
from belle_kedro.pipelines.train.settings import TrainSettings

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
    *,
    generation_summary: Mapping[str, Any],
    generation_prompt: Mapping[str, Any],
    seed_tasks: pd.DataFrame,
    clean_report: Mapping[str, Any],
    split_report: Mapping[str, Any],
    eval_macro: pd.DataFrame,
    champion: Mapping[str, Any],
    run_command: Mapping[str, Any],
    release_params: Mapping[str, Any],
    review_report: Mapping[str, Any] | None = None,
    **variant_inputs: Any,
) -> dict[str, str | bytes]:
    """The dataset folder (Parquet per config, exports, dataset_info.json, card);
    ``review_report`` is wired in only when the review stage runs.

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
        review_report=review_report,
    )
    return dataset_folder(
        holdout, by_variant(variant_inputs, TRAIN_DATA), records, settings.dataset
    )


def _is_adapter(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def export_models(
    eval_table: pd.DataFrame,
    *,
    eval_macro: pd.DataFrame,
    champion: Mapping[str, Any],
    run_command: Mapping[str, Any],
    train_params: Mapping[str, Any],
    evaluate_params: Mapping[str, Any],
    release_params: Mapping[str, Any],
    **variant_inputs: Any,
) -> dict[str, Any]:
    """A folder per released variant (``release.variants``), loaded from the registry.

    Loads each registered version through MLflow (``models:/<name>/<version>``), and
    the adapter a merged LoRA version logged beside it.
    """
    settings = _settings(release_params)
    train = build(TrainSettings, train_params, "train")
    evaluate = build(EvaluateSettings, evaluate_params, "evaluate")
    versions = by_variant(variant_inputs, MODEL_VERSION)
    files: dict[str, Any] = {}
    for variant in released_variants(settings.variants, versions, champion):
        version = versions[variant]
        components = load_registered(str(version["model_uri"]), variant)
        adapter = registered_adapter(version)
        macro = [
            {str(key): value for key, value in row.items()}
            for row in eval_macro[eval_macro["variant"] == variant].to_dict("records")
        ]
        facts = ModelFacts(
            variant=variant,
            version=version,
            is_adapter=_is_adapter(components["model"]),
            table=eval_table[eval_table["variant"] == variant],
            macro=macro[0] if macro else {},
            champion=champion,
            dataset_repo=settings.push.dataset_repo,
            adapter_base=adapter_base(adapter),
            run_command=run_command,
        )
        files[variant] = folder_writer(
            components, evaluate, settings.model.max_shard_size, adapter
        )
        files[f"{variant}/README.md"] = model_card(facts, train, evaluate, settings)
    return files


def set_registry_descriptions(
    eval_macro: pd.DataFrame,
    champion: Mapping[str, Any],
    train_params: Mapping[str, Any],
    **variant_inputs: Any,
) -> dict[str, Any]:
    """Describe the registered model and each version in the MLflow registry."""
    train = build(TrainSettings, train_params, "train")
    versions = by_variant(variant_inputs, MODEL_VERSION)
    return describe_registry(versions, eval_macro, champion, train)


def push_to_hub(
    release_dataset: str,
    release_models: str,
    credentials: Mapping[str, Any],
    release_params: Mapping[str, Any],
) -> dict[str, Any]:
    """Upload both folders with huggingface_hub when ``release.push.enabled`` (network)."""
    settings = _settings(release_params)
    return push_release(
        Path(release_dataset), Path(release_models), credentials, settings.push
    )
