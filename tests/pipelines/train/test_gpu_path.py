"""What the GPU recipe exercises, run on CPU: DataLoader workers, DeepSpeed's launcher,
a changed process count, a kill during the final cleanup and ZeRO-3's partitioned load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from belle_kedro.pipelines.train import launcher, trainer
from belle_kedro.pipelines.train.models import build_tiny_bloom
from belle_kedro.pipelines.train.trainer import MlflowTarget
from tests.support.project import REPO_ROOT
from tests.support.records import make_records
from tests.support.training import settings_of, tiny_config, with_changes

ZERO2 = str(REPO_ROOT / "conf" / "base" / "deepspeed" / "zero2.json")
ZERO3 = str(REPO_ROOT / "conf" / "base" / "deepspeed" / "zero3_offload.json")


class SimulatedKill(RuntimeError):
    pass


def worker_env() -> dict[str, str]:
    """This interpreter's environment with the worktree's sources first on the path."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_dataloader_workers_count_the_same_tokens_as_the_main_process(mlflow_store):
    """conf/belle's 2 workers: the collator runs in them, the counts must not stay there."""
    mlflow.set_tracking_uri(mlflow_store)
    # An earlier test's active experiment id means nothing in this fresh store.
    mlflow.set_experiment("dataloader_workers")
    results, rates = {}, {}
    for workers in (0, 2):
        config = tiny_config(eval_strategy="no", dataloader_num_workers=workers)
        with mlflow.start_run() as run:
            run_dir = launcher.prepare_run_dir(
                "small", make_records(32), make_records(4, seed=1),
                settings_of(config), mlflow_run=MlflowTarget(mlflow_store, run.info.run_id),
            )  # fmt: skip
            results[workers] = launcher.launch(run_dir)
        rates[workers] = MlflowClient().get_metric_history(
            run.info.run_id, "tokens_per_second"
        )
    with_workers, without = results[2], results[0]
    assert without["train_tokens"] > 0
    assert with_workers["train_tokens"] == without["train_tokens"]
    assert with_workers["padded_tokens"] == without["padded_tokens"]
    assert with_workers["padding_waste"] == without["padding_waste"]
    for result in (with_workers, without):
        assert result["tokens_per_second"] == pytest.approx(
            result["train_tokens"] / result["train_runtime_s"]
        )
        assert 0 < result["step_seconds"] <= result["train_runtime_s"]
        assert result["step_tokens_per_second"] >= result["tokens_per_second"] > 0
    # The per-step MLflow figure moves with workers too (logged at every step).
    assert len(rates[2]) == len(rates[0]) > 0
    assert all(metric.value > 0 for metric in rates[2])


def prepared(records: int = 16, **changes) -> Path:
    config = with_changes(tiny_config(eval_strategy="no"), **changes)
    return launcher.prepare_run_dir(
        "small", make_records(records), make_records(2, seed=1), settings_of(config)
    )


@pytest.mark.slow
def test_the_worker_takes_the_arguments_deepspeeds_launcher_gives_it():
    """deepspeed/launcher/launch.py runs ``python -u -m <module> --local_rank=N <args>``."""
    run_dir = prepared()
    completed = subprocess.run(
        [sys.executable, "-u", "-m", launcher.WORKER_MODULE, "--local_rank=0", str(run_dir)],
        env=worker_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert launcher.is_finished(run_dir)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_real_deepspeed_launcher_trains_two_processes_on_cpu(tmp_path):
    """``train.launcher.command: deepspeed`` end to end: DeepSpeed's runner and launch.py."""
    pytest.importorskip("deepspeed")
    run_dir = prepared(
        32, deepspeed=ZERO2, launcher={"command": "deepspeed", "nproc_per_node": 2}
    )
    result = launcher.launch(run_dir)
    assert result["world_size"] == 2
    assert result["distributed_backend"] == "gloo"
    assert result["global_step"] == 4  # 32 records, 4 per process and step
    assert result["train_tokens"] > 0


def crash_after_first_checkpoint(run_dir: Path) -> None:
    class CrashAtFirstSave(trainer.TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise SimulatedKill("killed after the first checkpoint")

    with pytest.raises(SimulatedKill):
        trainer.run_training(run_dir, callbacks=[CrashAtFirstSave()])


@pytest.mark.slow
def test_a_rerun_with_another_process_count_stops_naming_the_change(capfd):
    one = prepared(32)
    crash_after_first_checkpoint(one)
    checkpoint = one / trainer.CHECKPOINT_DIR / "checkpoint-3"

    # Same data and config at 2 processes: the same run folder (what it computes is
    # the same), but its checkpoint cannot resume there. Refused before the ranks start.
    two = prepared(32, launcher={"command": "torchrun", "nproc_per_node": 2})
    assert two == one
    with pytest.raises(RuntimeError, match="written by 1 process") as refused:
        launcher.launch(two)
    assert "but this run has 2: train.launcher changed" in str(refused.value)
    assert isinstance(refused.value, trainer.WorldSizeChanged)
    assert trainer.checkpoint_world_size(checkpoint) == 1

    # The ranks refuse it too (when a DeepSpeed hostfile sets the count, only they know).
    command = launcher.launcher_command(two, trainer.read_job(two).train)
    assert command is not None
    completed = subprocess.run(command, env=worker_env(), check=False)
    assert completed.returncode != 0
    assert "written by 1 process(es), but this run has 2" in capfd.readouterr().err
    assert not launcher.is_finished(two)
    assert checkpoint.is_dir()  # kept for a rerun at 1 process


@pytest.mark.slow
def test_a_checkpoint_written_before_the_process_count_was_recorded_resumes():
    run_dir = prepared(32)
    crash_after_first_checkpoint(run_dir)
    state_file = (
        run_dir / trainer.CHECKPOINT_DIR / "checkpoint-3" / "trainer_state.json"
    )
    state = json.loads(state_file.read_text(encoding="utf-8"))
    del state["stateful_callbacks"]["WorldSizeRecord"]
    state_file.write_text(json.dumps(state), encoding="utf-8")
    result = launcher.launch(run_dir)
    assert result["resumed_from_step"] == 3 and result["global_step"] == 8


@pytest.mark.slow
def test_a_kill_during_the_final_cleanup_leaves_a_finished_run(monkeypatch):
    run_dir = prepared(24)
    delete = shutil.rmtree

    def killed_halfway(path, *args, **kwargs) -> None:
        if Path(path) != run_dir / trainer.CHECKPOINT_DIR:
            return delete(path, *args, **kwargs)  # the Trainer's own rotation
        newest = max(Path(path).iterdir())
        (newest / "optimizer.pt").unlink()  # a half-deleted checkpoint
        raise SimulatedKill("killed while the checkpoints were deleted")

    monkeypatch.setattr(shutil, "rmtree", killed_halfway)
    with pytest.raises(SimulatedKill):
        launcher.launch(run_dir)
    monkeypatch.undo()

    assert launcher.is_finished(run_dir)  # result.json came first
    written = json.loads((run_dir / trainer.RESULT_FILE).read_text(encoding="utf-8"))
    rerun = launcher.launch(run_dir)
    assert rerun["reused"] is True  # nothing retrained, nothing resumed
    assert rerun["global_step"] == written["global_step"] == 6
    assert not (run_dir / trainer.CHECKPOINT_DIR).exists()  # the rerun finished the job


def test_a_deepspeed_checkpoint_missing_a_ranks_optimizer_shard_is_incomplete(tmp_path):
    checkpoint = tmp_path / "checkpoint-4"
    step = checkpoint / "global_step4"
    step.mkdir(parents=True)
    state = {
        "global_step": 4,
        "stateful_callbacks": {"WorldSizeRecord": {"args": {"world_size": 2}}},
    }
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    (checkpoint / "latest").write_text("global_step4")
    for rank in (0, 1):
        torch.save({}, step / f"bf16_zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")
    assert trainer.checkpoint_is_complete(checkpoint)
    (step / "bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt").unlink()
    assert not trainer.checkpoint_is_complete(checkpoint)
    assert trainer.checkpoint_world_size(checkpoint) == 2  # the record, not the files


# Runs run_training in a process of its own (DeepSpeed sets up torch.distributed and
# accelerate's process-wide state) and reports what transformers saw at the load.
_ZERO3_PROBE = """
import json, sys
from transformers.integrations import is_deepspeed_zero3_enabled
from belle_kedro.pipelines.train import models, trainer

real_load = models.load_base_model

def probe(*args, **kwargs):
    zero3 = is_deepspeed_zero3_enabled()
    model = real_load(*args, **kwargs)
    print(json.dumps({"zero3_enabled": zero3, "partitioned": all(
        hasattr(p, "ds_id") for p in model.parameters())}))
    sys.exit(0)

models.load_base_model = probe
trainer.run_training(sys.argv[1])
"""


@pytest.mark.slow
def test_zero3_builds_the_model_through_transformers_partitioned_path():
    pytest.importorskip("deepspeed")
    run_dir = prepared(deepspeed=ZERO3)
    env = {
        **worker_env(),
        **{"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"},
        **{"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517"},
    }
    completed = subprocess.run(
        [sys.executable, "-c", _ZERO3_PROBE, str(run_dir)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    seen = json.loads(completed.stdout.strip().splitlines()[-1])
    assert seen == {"zero3_enabled": True, "partitioned": True}


def test_a_bf16_model_loads_back_in_bf16_for_registration(tmp_path, byte_tokenizer):
    """The plan's registration figure: transformers 5 reads a model in its saved dtype
    (not fp32, which would double a 7B model's 14 GB in host RAM and on disk)."""
    settings = settings_of(tiny_config())
    model = build_tiny_bloom(byte_tokenizer, settings.model.tiny_bloom, seed=0)
    model.bfloat16()
    model.save_pretrained(tmp_path / trainer.MODEL_DIR)
    byte_tokenizer.save_pretrained(tmp_path / trainer.MODEL_DIR)
    loaded, _ = trainer.load_trained(tmp_path, settings)
    assert {parameter.dtype for parameter in loaded.parameters()} == {torch.bfloat16}
