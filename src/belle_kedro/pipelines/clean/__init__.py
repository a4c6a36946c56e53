"""clean: BELLE's rule filters and Alpaca-style near-duplicate removal."""

from belle_kedro.pipelines.clean.pipeline import create_pipeline

__all__ = ["create_pipeline"]
