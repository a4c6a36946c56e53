"""Real tiny SFT runs: the loss falls, checkpoints resume at the right step, the launcher command."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
from transformers import TrainerCallback

from belle_kedro import training
from tests.pipelines.train.records import make_records

TINY_CONFIG = {
    "seed": 7,
    "model": {
        "source": "tiny_bloom",
        "tokenizer": "bytes",
        "tiny_bloom": {"n_layer": 1, "hidden_size": 64, "n_head": 4},
    },
    "finetuning": {"method": "full"},
    "data": {"max_length": 256, "group_by_length": True},
    "eval": {"max_examples": 8},
    "trainer": {
        "num_train_epochs": 1,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "learning_rate": 3e-3,
        "lr_scheduler_type": "constant",
        "logging_steps": 1,
        "eval_strategy": "steps",
        "eval_steps": 4,
        "save_steps": 3,
        "disable_tqdm": True,
    },
}


def tiny_config(**trainer_overrides) -> dict:
    config = copy.deepcopy(TINY_CONFIG)
    config["trainer"].update(trainer_overrides)
    return config


class SimulatedCrash(RuntimeError):
    pass


class CrashAtStep(TrainerCallback):
    """Simulates a killed job right after step ``step`` (and its checkpoint)."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise SimulatedCrash(f"simulated crash after step {self.step}")


class RecordSteps(TrainerCallback):
    def __init__(self):
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


@pytest.mark.slow
def test_a_real_tiny_run_lowers_the_loss(tmp_path):
    run_dir = training.prepare_run_dir(
        tmp_path, "small", make_records(48), make_records(8, seed=1), tiny_config()
    )
    result = training.launch(run_dir, {"nproc_per_node": 1})

    losses = [entry["loss"] for entry in result["log_history"] if "loss" in entry]
    eval_losses = [
        entry["eval_loss"] for entry in result["log_history"] if "eval_loss" in entry
    ]
    assert result["global_step"] == 12
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    assert eval_losses[-1] < eval_losses[0]
    assert result["train_tokens"] > 0 and 0 <= result["padding_waste"] < 0.2
    assert (run_dir / training.MODEL_DIR / "config.json").is_file()
    assert not (run_dir / training.CHECKPOINT_DIR).exists()  # cleaned once finished
    model, tokenizer = training.load_trained(run_dir, tiny_config())
    assert model.config.model_type == "bloom" and tokenizer.eos_token_id is not None


@pytest.mark.slow
def test_a_crashed_run_resumes_from_its_last_checkpoint(tmp_path):
    train, holdout = make_records(48), make_records(8, seed=1)
    config = tiny_config(eval_strategy="no")
    run_dir = training.prepare_run_dir(tmp_path, "small", train, holdout, config)
    with pytest.raises(SimulatedCrash):
        training.run_training(run_dir, callbacks=[CrashAtStep(6)])
    assert sorted(
        path.name for path in (run_dir / training.CHECKPOINT_DIR).iterdir()
    ) == ["checkpoint-3", "checkpoint-6"]

    # Rerunning the same data and config reuses the run folder and continues at step 7.
    assert (
        training.prepare_run_dir(tmp_path, "small", train, holdout, config) == run_dir
    )
    steps = RecordSteps()
    result = training.run_training(run_dir, callbacks=[steps])
    assert result["resumed_from_step"] == 6
    assert steps.steps == [7, 8, 9, 10, 11, 12]
    assert result["global_step"] == 12
    logged = [entry["step"] for entry in result["log_history"] if "loss" in entry]
    assert logged == list(range(1, 13))  # history before the crash survives the resume

    # A finished run is not "resumed" again: a rerun starts from step 0.
    training.prepare_run_dir(tmp_path, "small", train, holdout, config)
    assert not (run_dir / training.RESULT_FILE).exists()


def test_a_changed_config_gets_a_fresh_run_folder(tmp_path):
    train, holdout = make_records(8), make_records(2, seed=1)
    first = training.prepare_run_dir(tmp_path, "small", train, holdout, tiny_config())
    second = training.prepare_run_dir(
        tmp_path, "small", train, holdout, tiny_config(learning_rate=1e-4)
    )
    relaunched = training.prepare_run_dir(
        tmp_path,
        "small",
        train,
        holdout,
        {**tiny_config(), "launcher": {"nproc_per_node": 4}},
    )
    assert first != second
    assert relaunched == first  # how it is launched does not change what it computes


def test_launcher_command_hands_off_to_torchrun_or_deepspeed(tmp_path: Path):
    assert (
        training.launcher_command(tmp_path, {"nproc_per_node": 1}, uses_deepspeed=False)
        is None
    )
    single = training.launcher_command(
        tmp_path, {"nproc_per_node": 2}, uses_deepspeed=False
    )
    assert single == [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "-m", "belle_kedro.training", str(tmp_path),
    ]  # fmt: skip
    multi = training.launcher_command(
        tmp_path,
        {
            "nproc_per_node": 8,
            "nnodes": 2,
            "node_rank": 0,
            "master_addr": "10.0.0.1",
            "master_port": 29400,
        },
        False,
    )
    assert multi[multi.index("--rdzv_endpoint") + 1] == "10.0.0.1:29400"
    assert "--standalone" not in multi
    # DeepSpeed always goes through a launcher, even on one device.
    deepspeed = training.launcher_command(
        tmp_path, {"command": "deepspeed", "nproc_per_node": 1}, uses_deepspeed=True
    )
    assert deepspeed[1:4] == ["-m", "deepspeed.launcher.runner", "--num_gpus"]
    assert deepspeed[-3:] == ["--module", "belle_kedro.training", str(tmp_path)]
