"""Nodes of one variant's SFT: lineage, fine-tuning, registration, summary.

Each runs inside the variant's MLflow child run (``VariantChildRunHook``), so what they
log lands there. Each builds the typed ``train`` settings from its block and hands them
to the modules beside it: :mod:`.launcher` (the run folder, in-process or
torchrun/DeepSpeed training), :mod:`.model_registry` and :mod:`belle_kedro.pipelines.train.tracking`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from belle_kedro.common.config import build
from belle_kedro.common.records import records_digest
from belle_kedro.pipelines.train import (
    launcher,
    model_registry,
    resources,
    tracking,
    trainer,
)
from belle_kedro.pipelines.train.models import base_model_id
from belle_kedro.pipelines.train.settings import TrainSettings


def describe_training_data(
    train_data: pd.DataFrame, holdout: pd.DataFrame, variant: str
) -> dict[str, Any]:
    """The variant's data lineage: name, size and digest of its training and held-out data."""
    return {
        "variant": variant,
        "dataset_name": f"{variant}.train_data",
        "train_size": len(train_data),
        "data_digest": records_digest(train_data),
        "holdout_size": len(holdout),
        "holdout_digest": records_digest(holdout),
    }


def fine_tune(
    train_data: pd.DataFrame,
    holdout: pd.DataFrame,
    lineage: Mapping[str, Any],
    train_params: Mapping[str, Any],
) -> dict[str, Any]:
    """Fine-tune the variant's model (resuming an interrupted run) and log its inputs.

    Logs flattened parameters and ``mlflow.log_input`` lineage to the active (child)
    run; the training loop logs train/eval loss and tokens/s by step to the same run.
    """
    settings = build(TrainSettings, train_params, "train")
    variant = str(lineage["variant"])
    eval_data = launcher.holdout_sample(
        holdout, settings.eval.max_examples, settings.seed
    )
    target = tracking.active_target()
    if target is not None:
        tracking.log_training_inputs(settings, lineage, train_data, eval_data)
    run_dir = launcher.prepare_run_dir(
        variant, train_data, eval_data, settings, mlflow_run=target
    )
    if not launcher.is_finished(run_dir):
        resources.announce(settings, run_dir)  # before any GPU time is spent
    result = launcher.launch(run_dir)
    if target is not None:
        tracking.link_earlier_runs(trainer.read_job(run_dir), result["reused"])
    return {**result, "run_dir": str(run_dir)}


def register_model(
    training_result: Mapping[str, Any],
    lineage: Mapping[str, Any],
    train_params: Mapping[str, Any],
) -> dict[str, Any]:
    """Log the trained model to the child run and register it as a new version.

    A version already registered from the same run folder (same data and config) is
    reused rather than logged again, unless ``train.force`` is set.
    """
    run_dir = Path(training_result["run_dir"])
    settings = build(TrainSettings, train_params, "train")
    source = model_registry.TrainedFrom(
        variant=str(lineage["variant"]),
        train_size=int(lineage["train_size"]),
        data_digest=str(lineage["data_digest"]),
        fingerprint=run_dir.name,
        base_model=base_model_id(settings.model),
    )
    return model_registry.register_trained(run_dir, settings, source)


def summarise_training(
    training_result: Mapping[str, Any],
) -> tuple[dict[str, Any], Figure]:
    """Final metrics for MLflow (``train.*``) and a train/eval loss curve by step."""
    return tracking.final_metrics(training_result), tracking.loss_curve(training_result)
