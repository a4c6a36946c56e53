"""Project pipelines: generate, clean, (review), split, train, evaluate, release.

``__default__`` runs them in that order. The review stage joins it only when
``review.enabled`` (off by default); split then reads ``reviewed_instructions``
instead of ``clean_instructions``.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from belle_kedro.common.variants import review_enabled, variant_names
from belle_kedro.pipelines.clean.pipeline import create_pipeline as clean
from belle_kedro.pipelines.evaluate.pipeline import create_pipeline as evaluate
from belle_kedro.pipelines.generate.pipeline import create_pipeline as generate
from belle_kedro.pipelines.release.pipeline import create_pipeline as release
from belle_kedro.pipelines.review.pipeline import create_pipeline as review
from belle_kedro.pipelines.review.pipeline import create_tasks_pipeline as review_tasks
from belle_kedro.pipelines.split.pipeline import create_pipeline as split
from belle_kedro.pipelines.train.pipeline import create_pipeline as train


def register_pipelines() -> dict[str, Pipeline]:
    """The stages, in order; split, train, evaluate and release get the run's variants."""
    variants = variant_names()
    reviewed = review_enabled()
    split_pipeline = split(variants)
    if reviewed:
        split_pipeline = Pipeline(
            split_pipeline, inputs={"clean_instructions": "reviewed_instructions"}
        )
    stages = {
        "generate": generate(),
        "clean": clean(),
        "review": review(),
        "split": split_pipeline,
        "train": train(variants),
        "evaluate": evaluate(variants),
        "release": release(variants, reviewed),
    }
    default = [p for name, p in stages.items() if reviewed or name != "review"]
    return {
        **stages,
        "review_tasks": review_tasks(),
        "__default__": sum(default, Pipeline([])),
    }
