"""train: supervised fine-tuning of one model per sample-size variant."""

from belle_kedro.pipelines.train.pipeline import create_pipeline

__all__ = ["create_pipeline"]
