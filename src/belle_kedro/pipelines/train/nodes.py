"""Nodes of one variant's SFT: lineage, fine-tuning, registration, summary.

Each runs inside the variant's MLflow child run (``VariantChildRunHook``), so what they
log lands there. Training itself happens in a run folder handed to
:mod:`.launcher` (in-process, or torchrun/DeepSpeed subprocesses).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: plots are files
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from matplotlib.figure import Figure

from belle_kedro.common.records import records_digest
from belle_kedro.common.secrets import is_secret_parameter
from belle_kedro.common.tracking import as_metrics
from belle_kedro.pipelines.train import launcher, model_registry, trainer

logger = logging.getLogger(__name__)

_MLFLOW_PARAM_MAX = 6000
# Child-run tags: the run whose finished training this one reused / continued.
REUSED_TAG = "belle.reused"
RESUMES_TAG = "belle.resumes"


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


def holdout_sample(
    holdout: pd.DataFrame, max_examples: int | None, seed: int
) -> pd.DataFrame:
    """At most ``max_examples`` held-out records, a seeded sample (all when None)."""
    if max_examples is None or len(holdout) <= max_examples:
        return holdout.reset_index(drop=True)
    return holdout.sample(n=int(max_examples), random_state=seed).reset_index(drop=True)


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
    variant = str(lineage["variant"])
    eval_data = holdout_sample(
        holdout,
        train_params["eval"]["max_examples"],
        int(train_params["seed"]),
    )
    run = mlflow.active_run()
    if run is not None:
        mlflow.log_params(flatten_params(train_params, "train."))
        mlflow.log_params(
            {
                "variant": variant,
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
    run_dir = launcher.prepare_run_dir(
        train_params["checkpoint_root"],
        variant,
        train_data,
        eval_data,
        train_params,
        mlflow_run={
            "tracking_uri": mlflow.get_tracking_uri(),
            "run_id": run.info.run_id,
        }
        if run
        else None,
    )
    result = launcher.launch(run_dir)
    if run is not None:
        # Link this child run to the runs that trained the same folder before it.
        job = launcher.read_job(run_dir)
        if result["reused"] and job["mlflow"]:
            mlflow.set_tag(REUSED_TAG, job["mlflow"]["run_id"])
        elif job["earlier_mlflow_runs"]:
            mlflow.set_tag(RESUMES_TAG, ",".join(job["earlier_mlflow_runs"]))
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
    variant = str(lineage["variant"])
    train_size = int(lineage["train_size"])
    data_digest = str(lineage["data_digest"])
    name = str(train_params["registered_model_name"])
    if not train_params["force"]:
        existing = model_registry.find_registered(
            name,
            variant=variant,
            train_size=train_size,
            data_digest=data_digest,
            fingerprint=run_dir.name,
        )
        if existing is not None:
            logger.info("%s: reusing %s", variant, existing["model_uri"])
            return existing
    model, tokenizer = trainer.load_trained(run_dir, train_params)
    return model_registry.log_and_register(
        model,
        tokenizer,
        registered_model_name=name,
        variant=variant,
        train_size=train_size,
        data_digest=data_digest,
        keep_adapter=bool(train_params["finetuning"]["keep_adapter"]),
        fingerprint=run_dir.name,
    )


def summarise_training(
    training_result: Mapping[str, Any],
) -> tuple[dict[str, Any], Figure]:
    """Final metrics for MLflow (``train.*``) and a train/eval loss curve by step."""
    step = int(training_result["global_step"])
    names = (
        "tokens_per_second",
        "padding_waste",
        "train_loss",
        "eval_loss",
        "train_runtime_s",
        "train_examples",
        "bad_records",
        "dropped_examples",
    )
    metrics = as_metrics({name: training_result[name] for name in names}, step=step)
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
    return metrics, figure
