"""Project pipelines: generate, clean, split, train, evaluate, release; __default__ runs them all."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from belle_kedro.common.variants import variant_names
from belle_kedro.pipelines.clean.pipeline import create_pipeline as clean
from belle_kedro.pipelines.evaluate.pipeline import create_pipeline as evaluate
from belle_kedro.pipelines.generate.pipeline import create_pipeline as generate
from belle_kedro.pipelines.release.pipeline import create_pipeline as release
from belle_kedro.pipelines.split.pipeline import create_pipeline as split
from belle_kedro.pipelines.train.pipeline import create_pipeline as train


def register_pipelines() -> dict[str, Pipeline]:
    """The six stages, in order; split, train, evaluate and release get the variants."""
    variants = variant_names()
    pipelines = {
        "generate": generate(),
        "clean": clean(),
        "split": split(variants),
        "train": train(variants),
        "evaluate": evaluate(variants),
        "release": release(variants),
    }
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
