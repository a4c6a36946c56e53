"""The split pipeline: a held-out set plus nested, seeded sample-size variants."""

from belle_kedro.pipelines.split.pipeline import create_pipeline

__all__ = ["create_pipeline"]
