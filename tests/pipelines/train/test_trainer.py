"""Real tiny SFT runs: the loss falls, checkpoints resume at the right step."""

from __future__ import annotations

import pytest
from transformers import TrainerCallback

from belle_kedro.pipelines.train import launcher, trainer
from tests.support.records import make_records
from tests.support.training import tiny_config


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
    run_dir = launcher.prepare_run_dir(
        tmp_path, "small", make_records(48), make_records(8, seed=1), tiny_config()
    )
    result = launcher.launch(run_dir)

    losses = [entry["loss"] for entry in result["log_history"] if "loss" in entry]
    eval_losses = [
        entry["eval_loss"] for entry in result["log_history"] if "eval_loss" in entry
    ]
    assert result["global_step"] == 12
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    assert eval_losses[-1] < eval_losses[0]
    assert result["train_tokens"] > 0 and 0 <= result["padding_waste"] < 0.2
    assert (run_dir / trainer.MODEL_DIR / "config.json").is_file()
    assert not (run_dir / trainer.CHECKPOINT_DIR).exists()  # cleaned once finished
    model, tokenizer = trainer.load_trained(run_dir, tiny_config())
    assert model.config.model_type == "bloom" and tokenizer.eos_token_id is not None


@pytest.mark.slow
def test_a_crashed_run_resumes_from_its_last_checkpoint(tmp_path):
    train, holdout = make_records(48), make_records(8, seed=1)
    config = tiny_config(eval_strategy="no")
    run_dir = launcher.prepare_run_dir(tmp_path, "small", train, holdout, config)
    with pytest.raises(SimulatedCrash):
        trainer.run_training(run_dir, callbacks=[CrashAtStep(6)])
    assert sorted(
        path.name for path in (run_dir / trainer.CHECKPOINT_DIR).iterdir()
    ) == ["checkpoint-3", "checkpoint-6"]

    # Rerunning the same data and config reuses the run folder and continues at step 7.
    assert (
        launcher.prepare_run_dir(tmp_path, "small", train, holdout, config) == run_dir
    )
    steps = RecordSteps()
    result = trainer.run_training(run_dir, callbacks=[steps])
    assert result["resumed_from_step"] == 6
    assert steps.steps == [7, 8, 9, 10, 11, 12]
    assert result["global_step"] == 12
    logged = [entry["step"] for entry in result["log_history"] if "loss" in entry]
    assert logged == list(range(1, 13))  # history before the crash survives the resume

    # A finished run is not "resumed" again: a rerun starts from step 0.
    launcher.prepare_run_dir(tmp_path, "small", train, holdout, config)
    assert not (run_dir / trainer.RESULT_FILE).exists()
