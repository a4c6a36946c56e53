"""The multi-process path: Kedro's process hands a run folder to torchrun (2 CPU processes, gloo)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from belle_kedro.pipelines.train import launcher, token_cache, trainer
from belle_kedro.pipelines.train.models import load_tokenizer
from belle_kedro.pipelines.train.settings import TrainSettings
from belle_kedro.pipelines.train.sft import SFTDataset
from belle_kedro.pipelines.train.trainer import MlflowTarget
from tests.support.project import REPO_ROOT, base_parameters
from tests.support.records import make_records
from tests.support.training import (
    settings_of,
    tiny_config,
    tiny_settings,
    with_changes,
)


def two_process_run(
    tmp_path: Path, mlflow_store: str, **overrides
) -> tuple[dict, str, Path]:
    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("distributed-test")
    config = with_changes(
        tiny_config(eval_strategy="no", save_steps=100),
        launcher={"command": "torchrun", "nproc_per_node": 2},
        **overrides,
    )
    with mlflow.start_run() as run:
        run_dir = launcher.prepare_run_dir(
            "small", make_records(32), make_records(8, seed=1), settings_of(config),
            mlflow_run=MlflowTarget(mlflow_store, run.info.run_id),
        )  # fmt: skip
        result = launcher.launch(run_dir)
    return result, run.info.run_id, run_dir


@pytest.mark.slow
def test_two_process_torchrun_ddp_over_gloo_trains_and_logs_from_rank_zero(
    tmp_path, mlflow_store
):
    result, run_id, run_dir = two_process_run(tmp_path, mlflow_store)

    assert result["world_size"] == 2
    assert result["distributed_backend"] == "gloo"
    assert result["peak_gpu_memory_bytes"] is None  # no GPU here
    # 32 records, 4 per process and step, 2 processes: 4 optimizer steps.
    assert result["global_step"] == 4
    losses = [entry["loss"] for entry in result["log_history"] if "loss" in entry]
    assert losses[-1] < losses[0]
    # Both processes' batches are counted: every token of the epoch is seen once.
    tokenizer = load_tokenizer(tiny_settings().model)
    assert (
        result["train_tokens"]
        == SFTDataset.from_records(
            make_records(32), tokenizer, 256, batch_size=8
        ).token_count
    )
    history = MlflowClient().get_metric_history(run_id, "train_loss")
    assert sorted(metric.step for metric in history) == [
        1,
        2,
        3,
        4,
    ]  # rank 0 only, once per step
    assert (run_dir / trainer.MODEL_DIR / "config.json").is_file()
    model, _ = trainer.load_trained(run_dir, tiny_settings())
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
    model, _ = trainer.load_trained(run_dir, tiny_settings())
    assert model.config.model_type == "bloom"


def declared(deepspeed: str | None = None, **changes) -> TrainSettings:
    """The declared train settings with ``train.launcher`` changes (and ``deepspeed``)."""
    return settings_of(
        with_changes(base_parameters("train"), deepspeed=deepspeed, launcher=changes)
    )


def test_a_changed_config_gets_a_fresh_run_folder(tmp_path):
    train, holdout = make_records(8), make_records(2, seed=1)
    first = launcher.prepare_run_dir("small", train, holdout, tiny_settings())
    second = launcher.prepare_run_dir(
        "small", train, holdout, tiny_settings(learning_rate=1e-4)
    )
    relaunched = launcher.prepare_run_dir(
        "small",
        train,
        holdout,
        settings_of(with_changes(tiny_config(), launcher={"nproc_per_node": 4})),
    )
    assert first != second
    # How it is launched does not change what it computes: the same folder. Its
    # checkpoints resume only at the process count that wrote them (a rerun at another
    # stops, naming the change: test_gpu_path.py).
    assert relaunched == first


def test_launcher_command_hands_off_to_torchrun_or_deepspeed(tmp_path: Path):
    assert launcher.launcher_command(tmp_path, declared(nproc_per_node=1)) is None
    single = launcher.launcher_command(tmp_path, declared(nproc_per_node=2))
    assert single == [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "-m", "belle_kedro.pipelines.train.trainer", str(tmp_path),
    ]  # fmt: skip
    multi = launcher.launcher_command(
        tmp_path,
        declared(
            nproc_per_node=8,
            nnodes=2,
            node_rank=0,
            master_addr="10.0.0.1",
            master_port=29400,
        ),
    )
    assert multi is not None
    assert multi[multi.index("--rdzv_endpoint") + 1] == "10.0.0.1:29400"
    assert "--standalone" not in multi
    # DeepSpeed always goes through a launcher, even on one device.
    deepspeed = launcher.launcher_command(
        tmp_path,
        declared(deepspeed="zero2.json", command="deepspeed", nproc_per_node=1),
    )
    assert deepspeed is not None
    assert deepspeed[1:4] == ["-m", "deepspeed.launcher.runner", "--num_gpus"]
    assert deepspeed[-3:] == [
        "--module",
        "belle_kedro.pipelines.train.trainer",
        str(tmp_path),
    ]


def test_records_with_a_non_text_field_are_counted_and_left_out(tmp_path):
    import json

    train = make_records(6)
    # An object column with a dict in row 1 (pandas-stubs' .at only takes scalars).
    train["output"] = pd.Series(
        [
            {"answer": "a dict, not text"} if label == 1 else text
            for label, text in train["output"].items()
        ],
        index=train.index,
        dtype=object,
    )
    train["input"] = train["input"].astype(object)
    train.at[2, "input"] = 42
    train.at[3, "input"] = None  # missing input is fine: no input
    run_dir = launcher.prepare_run_dir(
        "small", train, make_records(2, seed=1), tiny_settings()
    )
    job = json.loads((run_dir / trainer.JOB_FILE).read_text(encoding="utf-8"))
    assert job["bad_records"] == {"train": 2, "eval": 0}
    # The four good records reach the ranks, in order, through the token cache.
    tokenizer = load_tokenizer(tiny_settings().model)
    written = token_cache.open_view(
        run_dir / trainer.TRAIN_TOKENS,
        token_cache.cache_fingerprint(tokenizer, 256)["id"],
    )
    expected = SFTDataset.from_records(
        train.iloc[[0, 3, 4, 5]], tokenizer, 256, batch_size=8
    )
    assert len(written) == 4
    assert [written[i]["input_ids"].tolist() for i in range(4)] == [
        expected[i]["input_ids"].tolist() for i in range(4)
    ]


def test_a_run_without_held_out_records_prepares(tmp_path):
    run_dir = launcher.prepare_run_dir(
        "small", make_records(4), make_records(1).head(0), tiny_settings()
    )
    job = json.loads((run_dir / trainer.JOB_FILE).read_text(encoding="utf-8"))
    assert job["bad_records"] == {"train": 0, "eval": 0}


def test_a_resumed_folder_remembers_the_runs_that_trained_it_before(tmp_path):
    train, holdout = make_records(8), make_records(2, seed=1)
    for run_id in ("first", "second", "second", "third"):  # kill, rerun, ...
        run_dir = launcher.prepare_run_dir(
            "small", train, holdout, tiny_settings(),
            mlflow_run=MlflowTarget("sqlite:///x.db", run_id),
        )  # fmt: skip
    job = trainer.read_job(run_dir)
    assert job.mlflow is not None and job.mlflow.run_id == "third"
    # Each earlier run once, in order; the current one is not among them.
    assert job.earlier_mlflow_runs == ("first", "second")


def test_a_folder_written_before_train_plan_existed_is_read_and_reused(tmp_path):
    train, holdout = make_records(8), make_records(2, seed=1)
    run_dir = launcher.prepare_run_dir("small", train, holdout, tiny_settings())
    job_file = run_dir / trainer.JOB_FILE
    job = json.loads(job_file.read_text(encoding="utf-8"))
    del job["train"]["plan"]
    job_file.write_text(json.dumps(job), encoding="utf-8")
    assert (
        trainer.read_job(run_dir).train.checkpoint_root
        == tiny_settings().checkpoint_root
    )
    assert launcher.prepare_run_dir("small", train, holdout, tiny_settings()) == run_dir
