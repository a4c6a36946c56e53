"""Wiring of the train pipeline: the same SFT pipeline once per variant namespace."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from belle_kedro.pipelines.train.nodes import (
    describe_training_data,
    fine_tune,
    register_model,
    summarise_training,
)

# Shared by every variant, so kept out of the namespaces.
SHARED_INPUTS = {"holdout"}
SHARED_PARAMETERS = {"params:train"}


def _variant_template(variant: str) -> Pipeline:
    # The variant's name is the one input Kedro cannot supply from the catalog.
    describe = update_wrapper(
        partial(describe_training_data, variant=variant), describe_training_data
    )
    return Pipeline(
        [
            Node(
                describe,
                ["train_data", "holdout"],
                "data_lineage",
                name="describe_training_data",
            ),
            Node(
                fine_tune,
                ["train_data", "holdout", "data_lineage", "params:train"],
                "training_result",
                name="fine_tune",
            ),
            Node(
                register_model,
                ["training_result", "data_lineage", "params:train"],
                "model_version",
                name="register_model",
            ),
            Node(
                summarise_training,
                "training_result",
                ["train_metrics", "loss_curve"],
                name="summarise_training",
            ),
        ]
    )


def create_variant_pipeline(variant: str) -> Pipeline:
    """One variant's SFT pipeline under namespace ``variant`` (``kedro run --namespaces``)."""
    return Pipeline(
        _variant_template(variant),
        namespace=variant,
        inputs=SHARED_INPUTS,
        parameters=SHARED_PARAMETERS,
    )


def create_pipeline(variants: Sequence[str]) -> Pipeline:
    """One namespaced SFT pipeline per variant (the names in ``split.variant_sizes``)."""
    return sum((create_variant_pipeline(variant) for variant in variants), Pipeline([]))
