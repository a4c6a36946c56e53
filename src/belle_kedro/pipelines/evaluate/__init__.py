"""The evaluate pipeline: answers per variant, judge and offline scores, report, champion."""

from belle_kedro.pipelines.evaluate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
