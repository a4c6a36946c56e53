"""The multi-process path: Kedro's process hands a run folder to torchrun (2 CPU processes, gloo)."""

from __future__ import annotations

import copy
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from belle_kedro import training
from belle_kedro.modeling import load_tokenizer
from belle_kedro.sft import SFTDataset
from tests.pipelines.train.records import make_records
from tests.test_training import TINY_CONFIG

REPO_ROOT = Path(__file__).resolve().parents[1]


def two_process_run(
    tmp_path: Path, mlflow_store: str, **overrides
) -> tuple[dict, str, Path]:
    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("distributed-test")
    config = {**copy.deepcopy(TINY_CONFIG), **overrides}
    config["trainer"].update(eval_strategy="no", save_steps=100)
    with mlflow.start_run() as run:
        run_dir = training.prepare_run_dir(
            tmp_path, "small", make_records(32), make_records(8, seed=1), config,
            mlflow_run={"tracking_uri": mlflow_store, "run_id": run.info.run_id},
        )  # fmt: skip
        result = training.launch(run_dir, {"command": "torchrun", "nproc_per_node": 2})
    return result, run.info.run_id, run_dir


@pytest.mark.slow
def test_two_process_torchrun_ddp_over_gloo_trains_and_logs_from_rank_zero(
    tmp_path, mlflow_store
):
    result, run_id, run_dir = two_process_run(tmp_path, mlflow_store)

    assert result["world_size"] == 2
    # 32 records, 4 per process and step, 2 processes: 4 optimizer steps.
    assert result["global_step"] == 4
    losses = [entry["loss"] for entry in result["log_history"] if "loss" in entry]
    assert losses[-1] < losses[0]
    # Both processes' batches are counted: every token of the epoch is seen once.
    tokenizer = load_tokenizer(TINY_CONFIG["model"])
    assert (
        result["train_tokens"]
        == SFTDataset.from_records(make_records(32), tokenizer, 256).token_count
    )
    history = MlflowClient().get_metric_history(run_id, "train_loss")
    assert sorted(metric.step for metric in history) == [
        1,
        2,
        3,
        4,
    ]  # rank 0 only, once per step
    assert (run_dir / training.MODEL_DIR / "config.json").is_file()
    model, _ = training.load_trained(run_dir, TINY_CONFIG)
    assert model.config.n_layer == 1


@pytest.mark.slow
def test_two_process_deepspeed_zero2_on_cpu(tmp_path, mlflow_store):
    """DeepSpeed through the same hand-off (its CPU accelerator; gloo/shm for communication)."""
    pytest.importorskip("deepspeed")
    zero2 = str(REPO_ROOT / "conf" / "base" / "deepspeed" / "zero2.json")
    result, run_id, run_dir = two_process_run(tmp_path, mlflow_store, deepspeed=zero2)
    assert result["world_size"] == 2
    assert result["global_step"] == 4
    losses = [entry["loss"] for entry in result["log_history"] if "loss" in entry]
    assert losses[-1] < losses[0]
    model, _ = training.load_trained(run_dir, TINY_CONFIG)
    assert model.config.model_type == "bloom"
