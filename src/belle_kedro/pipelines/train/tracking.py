"""What a variant's SFT tells MLflow: its parameters and inputs, links, final figures.

Everything here logs to (or reads) the active MLflow run: the variant's child run,
which ``VariantChildRunHook`` opens around the train nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: plots are files
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from matplotlib.figure import Figure

from belle_kedro.common.secrets import is_secret_parameter
from belle_kedro.common.tracking import as_metrics
from belle_kedro.pipelines.train.settings import TrainSettings
from belle_kedro.pipelines.train.trainer import Job, MlflowTarget

_MLFLOW_PARAM_MAX = 6000
# Child-run tags: the run whose finished training this one reused / continued.
REUSED_TAG = "belle.reused"
RESUMES_TAG = "belle.resumes"
# Final figures of a training result logged as train.* metrics.
FINAL_METRICS = (
    "tokens_per_second",
    "padding_waste",
    "train_loss",
    "eval_loss",
    "train_runtime_s",
    "train_examples",
    "bad_records",
    "dropped_examples",
)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``, dropping keys that look like secrets.

    ``SecretRedactionHook`` already refuses a run whose secret-looking parameters have a
    value; dropping them here keeps even an empty one out of MLflow.
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if is_secret_parameter(str(key)):
            continue
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = str(value)[:_MLFLOW_PARAM_MAX]
    return flat


def active_target() -> MlflowTarget | None:
    """The active MLflow run, by id, for launcher processes to log to (None: no run)."""
    run = mlflow.active_run()
    if run is None:
        return None
    return MlflowTarget(tracking_uri=mlflow.get_tracking_uri(), run_id=run.info.run_id)


def log_training_inputs(
    settings: TrainSettings,
    lineage: Mapping[str, Any],
    train_data: pd.DataFrame,
    eval_data: pd.DataFrame,
) -> None:
    """Log the flattened ``train.*`` settings and ``mlflow.log_input`` lineage."""
    mlflow.log_params(flatten_params(settings.as_dict(), "train."))
    mlflow.log_params(
        {
            "variant": lineage["variant"],
            "train_size": lineage["train_size"],
            "data_digest": lineage["data_digest"],
        }
    )
    mlflow.log_input(
        mlflow.data.from_pandas(  # type: ignore[attr-defined]
            train_data,
            name=str(lineage["dataset_name"]),
            digest=str(lineage["data_digest"])[:36],
        ),
        context="training",
    )
    mlflow.log_input(
        mlflow.data.from_pandas(  # type: ignore[attr-defined]
            eval_data, name="holdout", digest=str(lineage["holdout_digest"])[:36]
        ),
        context="evaluation",
    )


def link_earlier_runs(job: Job, reused: bool) -> None:
    """Tag the active run with the runs that trained the same run folder before it."""
    if reused and job.mlflow:
        mlflow.set_tag(REUSED_TAG, job.mlflow.run_id)
    elif job.earlier_mlflow_runs:
        mlflow.set_tag(RESUMES_TAG, ",".join(job.earlier_mlflow_runs))


def final_metrics(training_result: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The result's final figures as ``train.*`` metrics at its last step."""
    return as_metrics(
        {name: training_result[name] for name in FINAL_METRICS},
        step=int(training_result["global_step"]),
    )


def loss_curve(training_result: Mapping[str, Any]) -> Figure:
    """Train and eval (held-out) loss by step, from the result's log history."""
    history = pd.DataFrame(training_result["log_history"])
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for column, label in (("loss", "train loss"), ("eval_loss", "eval loss (holdout)")):
        if column in history:
            points = history.dropna(subset=[column])
            axes.plot(
                points["step"], points[column], marker="o", markersize=3, label=label
            )
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(f"{training_result['variant']}: SFT loss")
    axes.legend()
    figure.tight_layout()
    plt.close(figure)
    return figure
