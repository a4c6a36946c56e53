"""Wiring of the release pipeline: it reads every stage's outputs, so it runs last."""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Node, Pipeline

from belle_kedro.hooks.run_command import RUN_COMMAND
from belle_kedro.pipelines.release.nodes import (
    MODEL_VERSION,
    TRAIN_DATA,
    build_dataset_folder,
    export_models,
    push_to_hub,
    set_registry_descriptions,
)


def _variant_inputs(
    variants: Sequence[str], prefix: str, dataset: str
) -> dict[str, str]:
    return {f"{prefix}{name}": f"{name}.{dataset}" for name in variants}


def create_pipeline(variants: Sequence[str], reviewed: bool) -> Pipeline:
    """Dataset folder, model folders, registry descriptions and the optional upload;
    ``reviewed``: the review stage ran, so the card states its figures."""
    versions = _variant_inputs(variants, MODEL_VERSION, "model_version")
    return Pipeline(
        [
            Node(
                build_dataset_folder,
                {
                    "holdout": "holdout",
                    "generation_summary": "generation_summary",
                    "generation_prompt": "generation_prompt",
                    "seed_tasks": "seed_tasks",
                    "clean_report": "clean_report",
                    "split_report": "split_report",
                    "eval_macro": "eval_macro",
                    "champion": "champion",
                    "run_command": RUN_COMMAND,
                    "release_params": "params:release",
                    **({"review_report": "review_report"} if reviewed else {}),
                    **_variant_inputs(variants, TRAIN_DATA, "train_data"),
                    **versions,
                },
                "release_dataset",
                name="build_dataset_folder",
            ),
            Node(
                export_models,
                {
                    "eval_table": "eval_table",
                    "eval_macro": "eval_macro",
                    "champion": "champion",
                    "run_command": RUN_COMMAND,
                    "train_params": "params:train",
                    "evaluate_params": "params:evaluate",
                    "release_params": "params:release",
                    **versions,
                },
                "release_models",
                name="export_models",
            ),
            Node(
                set_registry_descriptions,
                {
                    "eval_macro": "eval_macro",
                    "champion": "champion",
                    "train_params": "params:train",
                    **versions,
                },
                "registry_descriptions",
                name="set_registry_descriptions",
            ),
            Node(
                push_to_hub,
                [
                    "release_dataset",
                    "release_models",
                    "hub_credentials",
                    "params:release",
                ],
                "release_push",
                name="push_to_hub",
            ),
        ]
    )
