"""Wiring of the split pipeline: pool -> held-out set -> nested variants -> report."""

from collections.abc import Sequence

from kedro.pipeline import Node, Pipeline

from belle_kedro.pipelines.split.nodes import (
    build_variants,
    mix_into_pool,
    split_holdout,
    summarise_split,
)


def create_pipeline(variants: Sequence[str]) -> Pipeline:
    """One ``<variant>.train_data`` output per variant name (the train namespaces)."""
    return Pipeline(
        [
            Node(
                mix_into_pool,
                ["clean_instructions", "mix_in_instructions", "params:split"],
                "split_pool",
                name="mix_into_pool",
            ),
            Node(
                split_holdout,
                ["split_pool", "params:split"],
                ["holdout", "train_pool"],
                name="split_holdout",
            ),
            Node(
                build_variants,
                ["train_pool", "holdout", "mix_in_instructions", "params:split"],
                {name: f"{name}.train_data" for name in variants},
                name="build_variants",
            ),
            Node(
                summarise_split,
                {
                    "holdout": "holdout",
                    "seed": "params:split.seed",
                    **{name: f"{name}.train_data" for name in variants},
                },
                "split_report",
                name="summarise_split",
            ),
        ]
    )
