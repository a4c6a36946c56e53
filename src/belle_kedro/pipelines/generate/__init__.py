"""Self-instruct generation of Chinese instruction data (BELLE's first stage)."""

from belle_kedro.pipelines.generate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
