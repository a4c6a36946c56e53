"""Real tiny SFT runs: the loss falls, checkpoints resume at the right step."""

from __future__ import annotations

import random

import numpy as np
import pytest
from transformers import TrainerCallback

from belle_kedro.pipelines.train import launcher, trainer
from belle_kedro.pipelines.train.models import load_model_and_tokenizer
from belle_kedro.pipelines.train.sft import (
    PaddingStats,
    SFTCollator,
    SFTDataset,
    TokenArrays,
)
from tests.support.project import base_parameters, merged
from tests.support.records import make_records
from tests.support.training import (
    settings_of,
    tiny_config,
    tiny_settings,
    with_changes,
)


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
        "small", make_records(48), make_records(8, seed=1), tiny_settings()
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
    model, tokenizer = trainer.load_trained(run_dir, tiny_settings())
    assert model.config.model_type == "bloom" and tokenizer.eos_token_id is not None


@pytest.mark.slow
def test_a_crashed_run_resumes_from_its_last_checkpoint(tmp_path):
    train, holdout = make_records(48), make_records(8, seed=1)
    config = tiny_settings(eval_strategy="no")
    run_dir = launcher.prepare_run_dir("small", train, holdout, config)
    with pytest.raises(SimulatedCrash):
        trainer.run_training(run_dir, callbacks=[CrashAtStep(6)])
    assert sorted(
        path.name for path in (run_dir / trainer.CHECKPOINT_DIR).iterdir()
    ) == ["checkpoint-3", "checkpoint-6"]

    # Rerunning the same data and config reuses the run folder and continues at step 7.
    assert launcher.prepare_run_dir("small", train, holdout, config) == run_dir
    steps = RecordSteps()
    result = trainer.run_training(run_dir, callbacks=[steps])
    assert result["resumed_from_step"] == 6
    assert steps.steps == [7, 8, 9, 10, 11, 12]
    assert result["global_step"] == 12
    logged = [entry["step"] for entry in result["log_history"] if "loss" in entry]
    assert logged == list(range(1, 13))  # history before the crash survives the resume

    # A finished run is reused as it is, not trained again ...
    assert launcher.prepare_run_dir("small", train, holdout, config) == run_dir
    reused = launcher.launch(run_dir)
    assert reused["reused"] is True and reused["global_step"] == 12
    # ... unless train.force asks for a fresh run from step 0.
    forced = settings_of(with_changes(tiny_config(eval_strategy="no"), force=True))
    assert launcher.prepare_run_dir("small", train, holdout, forced) == run_dir
    assert not (run_dir / trainer.RESULT_FILE).exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "tear",
    [
        lambda checkpoint: (checkpoint / "trainer_state.json").unlink(),
        lambda checkpoint: (checkpoint / "optimizer.pt").write_bytes(
            (checkpoint / "optimizer.pt").read_bytes()[:1000]
        ),
        lambda checkpoint: (checkpoint / "model.safetensors").write_bytes(
            (checkpoint / "model.safetensors").read_bytes()[:-10]
        ),
    ],
    ids=["no-trainer-state", "truncated-optimizer", "truncated-weights"],
)
def test_a_torn_checkpoint_is_set_aside_and_the_one_before_resumed(tmp_path, tear):
    train, holdout = make_records(48), make_records(8, seed=1)
    config = tiny_settings(eval_strategy="no")
    run_dir = launcher.prepare_run_dir("small", train, holdout, config)
    with pytest.raises(SimulatedCrash):
        trainer.run_training(run_dir, callbacks=[CrashAtStep(6)])
    # A kill while checkpoint-6 was being written.
    tear(run_dir / trainer.CHECKPOINT_DIR / "checkpoint-6")

    result = launcher.launch(run_dir)
    assert result["resumed_from_step"] == 3 and result["global_step"] == 12
    torn = [path.name for path in (run_dir / trainer.TORN_DIR).iterdir()]
    assert len(torn) == 1 and torn[0].startswith("checkpoint-6-")


def test_only_complete_checkpoints_count(tmp_path):
    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text('{"global_step": 2}')
    assert not trainer.checkpoint_is_complete(checkpoint)  # no weights
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(4, 4)}, checkpoint / "model.safetensors")
    torch.save({"state": 1}, checkpoint / "optimizer.pt")
    assert trainer.checkpoint_is_complete(checkpoint)
    (checkpoint / "trainer_state.json").write_text('{"global_st')
    assert not trainer.checkpoint_is_complete(checkpoint)


def dataset_of_lengths(lengths: list[int]) -> SFTDataset:
    """Answer-only examples of the given lengths, as token arrays."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    arrays = TokenArrays(
        np.full(int(offsets[-1]), 5, np.int32),
        offsets,
        np.zeros(len(lengths), np.int32),
    )
    return SFTDataset.from_arrays(arrays)


def test_the_length_grouped_sampler_reads_lengths_not_examples(tmp_path, monkeypatch):
    lengths = [3, 9, 5, 7] * 8
    dataset = dataset_of_lengths(lengths)

    def no_reading(self, index):
        raise AssertionError("the sampler read an example to measure it")

    monkeypatch.setattr(SFTDataset, "__getitem__", no_reading)
    config = tiny_settings()
    model, _ = load_model_and_tokenizer(config)
    sft = trainer.SFTTrainer(
        model=model,
        args=trainer.training_arguments(tmp_path, config, has_eval=False),
        train_dataset=dataset,
        data_collator=SFTCollator(pad_token_id=0),
        eval_collator=SFTCollator(pad_token_id=0),
    )
    sampler = sft._get_train_sampler()
    assert sampler.lengths == lengths
    assert sorted(sampler) == list(range(len(lengths)))


def epoch_padding_waste(tmp_path, config: dict, dataset: SFTDataset) -> float:
    settings = settings_of(config)
    """Padding share of one epoch of the Trainer's own training batches."""
    model, _ = load_model_and_tokenizer(settings)
    collator = SFTCollator(pad_token_id=0, pad_to_multiple_of=None)
    sft = trainer.SFTTrainer(
        model=model,
        args=trainer.training_arguments(tmp_path, settings, has_eval=False),
        train_dataset=dataset,
        data_collator=collator,
        eval_collator=SFTCollator(pad_token_id=0, pad_to_multiple_of=None),
    )
    stats = PaddingStats()
    for batch in sft.get_train_dataloader():
        stats.add(batch["attention_mask"])
    return stats.waste


BATCHING = ("per_device_train_batch_size", "gradient_accumulation_steps")


@pytest.mark.parametrize("env", ["base", "belle"])
def test_the_declared_recipe_batches_by_length_with_little_padding(tmp_path, env):
    """Each environment's own batch size and accumulation, read from conf/<env>."""
    declared_trainer = merged(
        base_parameters("train")["trainer"], base_parameters("train", env)["trainer"]
    )
    batching = {key: declared_trainer[key] for key in BATCHING}
    assert batching == (
        {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 1}
        if env == "base"
        else {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4}
    )
    rng = random.Random(0)
    lengths = [int(rng.lognormvariate(5, 0.6)) + 8 for _ in range(2000)]
    dataset = dataset_of_lengths(lengths)
    declared = with_changes(tiny_config(), trainer=batching)
    assert declared["trainer"]["train_sampling_strategy"] == "group_by_length"
    assert base_parameters("train")["trainer"]["train_sampling_strategy"] == (
        "group_by_length"
    )
    grouped = epoch_padding_waste(tmp_path, declared, dataset)
    shuffled = epoch_padding_waste(
        tmp_path,
        with_changes(declared, trainer={"train_sampling_strategy": "random"}),
        dataset,
    )
    assert grouped <= 0.05
    assert shuffled > 0.2


def test_a_deepspeed_checkpoint_counts_when_its_latest_step_is_there(tmp_path):
    import torch

    checkpoint = tmp_path / "checkpoint-4"
    (checkpoint / "global_step4").mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text('{"global_step": 4}')
    (checkpoint / "latest").write_text("global_step4")
    torch.save(
        {"optimizer": 1},
        checkpoint / "global_step4" / "bf16_zero_pp_rank_0_optim_states.pt",
    )
    assert trainer.checkpoint_is_complete(checkpoint)
    (checkpoint / "latest").write_text("global_step8")  # names a step never written
    assert not trainer.checkpoint_is_complete(checkpoint)
    (checkpoint / "latest").write_text("global_step4")
    shard = checkpoint / "global_step4" / "bf16_zero_pp_rank_0_optim_states.pt"
    shard.write_bytes(shard.read_bytes()[:50])  # torn while DeepSpeed wrote it
    assert not trainer.checkpoint_is_complete(checkpoint)
