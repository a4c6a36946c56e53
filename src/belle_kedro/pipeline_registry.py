"""Project pipelines: generate, clean, split, train, evaluate; __default__ runs them all."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

PIPELINE_ORDER = ("generate", "clean", "split", "train", "evaluate")


def register_pipelines() -> dict[str, Pipeline]:
    """Discover one pipeline per folder under ``pipelines/`` and add ``__default__``."""
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipelines[name] for name in PIPELINE_ORDER if name in pipelines), Pipeline([])
    )
    return pipelines
