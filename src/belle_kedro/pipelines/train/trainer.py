"""Supervised fine-tuning with the transformers Trainer, run from a run folder.

Every training process (one in-process, or each torchrun/DeepSpeed rank) calls
:func:`run_training` on the same run folder, which :mod:`.launcher` prepares::

    <checkpoint_root>/<variant>/<fingerprint>/
        job.json        the validated ``train`` settings + variant + MLflow run to log to
        train_tokens.json/.npy  the variant's training records: rows of the token cache
        eval_tokens.json/.npy   held-out records for the eval loss, the same way
        checkpoints/    Trainer checkpoints every ``trainer.save_steps`` steps
        torn/           checkpoints a kill left incomplete, set aside on resume
        model/          the final model (or LoRA adapter) and tokenizer
        result.json     final figures, written last by rank 0

A run resumes from its last complete checkpoint (:func:`resumable_checkpoint`); rank 0
writes ``model/`` and ``result.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import struct
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_callback import ExportableState
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from belle_kedro.common.config import build
from belle_kedro.common.files import write_atomic
from belle_kedro.common.processes import die_with_parent
from belle_kedro.pipelines.train.models import (
    load_base_model,
    load_model,
    load_tokenizer,
)
from belle_kedro.pipelines.train.settings import TrainSettings
from belle_kedro.pipelines.train.sft import (
    PaddingStats,
    SFTCollator,
    SFTDataset,
    padding_waste,
)
from belle_kedro.pipelines.train.token_cache import cache_fingerprint, open_view

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"
# Views of the token cache (stems of <stem>.json + <stem>.npy; see .token_cache).
TRAIN_TOKENS = "train_tokens"
EVAL_TOKENS = "eval_tokens"
RESULT_FILE = "result.json"
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"
TORN_DIR = "torn"
# The Trainer writes trainer_state.json after the weights, optimizer and RNG states, so a
# checkpoint without a readable one was cut short.
TRAINER_STATE_FILE = "trainer_state.json"
# Weights in a checkpoint: the model's files, or DeepSpeed's own checkpoint (ZeRO-3
# without gathered weights saves only that), whose "latest" names its global_step folder.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "adapter_model.safetensors",
    "pytorch_model.bin",
    "latest",
)
# Trainer log keys -> MLflow metric names.
_METRIC_NAMES = {
    "loss": "train_loss",
    "eval_loss": "eval_loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
}


class MlflowStepLogger(TrainerCallback):
    """Logs train/eval loss and tokens/s by step to one MLflow run, from rank 0 only.

    It talks to the run by id through ``MlflowClient``, so it works the same in-process
    and inside launcher subprocesses, which have no active MLflow run of their own.
    """

    def __init__(
        self, tracking_uri: str, run_id: str, tokens: PaddingStats, world_size: int
    ):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.run_id = run_id
        self.tokens = tokens
        self.world_size = world_size
        self._last_tokens = 0
        self._last_time = time.perf_counter()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Evaluation time is not training throughput.
        self._last_time = time.perf_counter()

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        metrics = [
            Metric(_METRIC_NAMES[key], float(value), now_ms, state.global_step)
            for key, value in logs.items()
            if key in _METRIC_NAMES
            and isinstance(value, int | float)
            and math.isfinite(value)
        ]
        if "loss" in logs:
            now = time.perf_counter()
            tokens = self.tokens.real_tokens
            elapsed = now - self._last_time
            if elapsed > 0 and tokens > self._last_tokens:
                rate = (tokens - self._last_tokens) * self.world_size / elapsed
                metrics.append(
                    Metric("tokens_per_second", rate, now_ms, state.global_step)
                )
            self._last_tokens, self._last_time = tokens, now
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)


class StepTimer(TrainerCallback):
    """Seconds spent inside optimizer steps: no checkpoint save, evaluation or logging.

    The Trainer's ``train_runtime`` includes every save (minutes for a 7B checkpoint),
    so throughput over it understates the training steps themselves.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started: float | None = None

    def _now(self) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # GPU work is asynchronous; time it done
        return time.perf_counter()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = self._now()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._started is not None:
            self.seconds += self._now() - self._started
            self._started = None


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written (a full disk); its partial folder is gone."""


class SFTTrainer(Trainer):
    """Trainer that counts the tokens it trains on, with a collator of its own for eval.

    Tokens are counted in :meth:`training_step`, in the process that trains: the
    collator runs in DataLoader workers (``dataloader_num_workers``), whose counts
    would never reach this process.
    """

    def __init__(self, *args: Any, eval_collator: SFTCollator, **kwargs: Any):
        self.eval_collator = eval_collator
        self.trained_tokens = PaddingStats()
        super().__init__(*args, **kwargs)

    def training_step(
        self,
        model: Any,
        inputs: dict[str, Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        self.trained_tokens.add(inputs["attention_mask"])
        return super().training_step(model, inputs, num_items_in_batch)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        # A full disk mid-save: remove the part written, so resuming (and the space a
        # rerun needs) starts from the last whole checkpoint, and say where it failed.
        folder = (
            Path(self._get_output_dir(trial=trial))
            / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        )
        try:
            super()._save_checkpoint(model, trial)
        except Exception as error:
            # torch's writer reports a full disk as a bare position mismatch.
            free = shutil.disk_usage(folder.parent).free
            if self.is_world_process_zero():
                shutil.rmtree(folder, ignore_errors=True)
            raise CheckpointSaveError(
                f"train: could not save checkpoint {folder} ({error}; {free} bytes were "
                "free on its disk); it was removed, a rerun resumes from the last "
                "whole checkpoint once there is space"
            ) from error

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        # transformers' own group_by_length takes lengths from a datasets.Dataset
        # column only; for any other dataset it reads every example once to measure
        # it (2M preads at BELLE's scale). The token cache's offsets already hold them.
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if self.args.train_sampling_strategy == "group_by_length" and isinstance(
            dataset, SFTDataset
        ):
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                lengths=dataset.lengths.tolist(),
            )
        return super()._get_train_sampler(train_dataset)

    def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
        # Eval batches get their own collator so padding figures describe training only.
        train_collator, self.data_collator = self.data_collator, self.eval_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator


def _safetensors_complete(path: Path) -> bool:
    """True when the file is as long as its own header says (a torn write is shorter)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            return False
        (header_length,) = struct.unpack("<Q", prefix)
        if 8 + header_length > size:
            return False
        try:
            header = json.loads(handle.read(header_length))
        except ValueError:
            return False
    ends = [
        entry["data_offsets"][1]
        for name, entry in header.items()
        if name != "__metadata__"
    ]
    return size == 8 + header_length + max(ends, default=0)


def _file_complete(path: Path) -> bool:
    """A cheap completeness check by format: safetensors size, torch zip directory, JSON."""
    if path.suffix == ".safetensors":
        return _safetensors_complete(path)
    if path.suffix in (".pt", ".pth", ".bin"):
        # torch.save writes a zip whose central directory comes last.
        return zipfile.is_zipfile(path)
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return False
    return True


class WorldSizeRecord(TrainerCallback, ExportableState):
    """Writes the process count into every checkpoint's ``trainer_state.json``.

    The Trainer stores an ``ExportableState`` callback's :meth:`state` under
    ``stateful_callbacks`` when it saves; :func:`checkpoint_world_size` reads it back.
    """

    def __init__(self, world_size: int):
        self.world_size = world_size

    def state(self) -> dict[str, Any]:
        return {"args": {"world_size": self.world_size}, "attributes": {}}

    def on_train_begin(
        self, args: Any, state: Any, control: Any, **kwargs: Any
    ) -> None:
        # A state resumed from a checkpoint written before this record existed lacks
        # its entry, and the Trainer's save looks it up by name.
        state.stateful_callbacks.setdefault(type(self).__name__, self.state())


class WorldSizeChanged(RuntimeError):
    """A checkpoint written by another number of processes than this run has."""


def _deepspeed_optimizer_shards(checkpoint: Path) -> list[Path] | None:
    """DeepSpeed ZeRO's per-rank optimizer files of the step ``latest`` names, if any."""
    latest = checkpoint / "latest"
    if not latest.is_file():
        return None
    shards = sorted((checkpoint / latest.read_text().strip()).glob("*_optim_states.pt"))
    zero_shards = [path for path in shards if "zero_pp_rank_" in path.name]
    return zero_shards or None


def checkpoint_world_size(checkpoint: Path) -> int | None:
    """How many processes wrote ``checkpoint`` (None when it does not say).

    Read from :class:`WorldSizeRecord`'s entry in ``trainer_state.json``; a checkpoint
    written before that record existed falls back on DeepSpeed ZeRO's optimizer
    shards, one per data-parallel rank (what DeepSpeed itself checks on load).
    """
    state = json.loads((checkpoint / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    record = (state.get("stateful_callbacks") or {}).get(WorldSizeRecord.__name__)
    if isinstance(record, list):
        record = record[-1] if record else None
    if record:
        return int(record["args"]["world_size"])
    shards = _deepspeed_optimizer_shards(checkpoint)
    return len(shards) if shards else None


def check_world_size(checkpoint: Path, world_size: int) -> None:
    """Refuse to resume ``checkpoint`` with another number of processes than wrote it.

    DeepSpeed ZeRO partitions the optimizer by rank and refuses another count on load
    ("DP world size"); without DeepSpeed the global batch would change mid-run.
    """
    written_by = checkpoint_world_size(checkpoint)
    if written_by is not None and written_by != world_size:
        raise WorldSizeChanged(
            f"{checkpoint} was written by {written_by} process(es), but this run has "
            f"{world_size}: train.launcher changed (nproc_per_node x nnodes, or the "
            "hostfile). A checkpoint resumes only at the process count that wrote it "
            f"(ZeRO partitions the optimizer per rank). Set train.launcher back to "
            f"{written_by} process(es) to resume, or move {checkpoint.parent} away to "
            "train again from step 0."
        )


def checkpoint_is_complete(checkpoint: Path) -> bool:
    """Whether a Trainer checkpoint was written to the end (and can be resumed from)."""
    try:
        if not (checkpoint / TRAINER_STATE_FILE).is_file():
            return False
        if not any((checkpoint / name).is_file() for name in WEIGHT_FILES):
            return False
        latest = checkpoint / "latest"
        if latest.is_file() and not (checkpoint / latest.read_text().strip()).is_dir():
            return False
        # One ZeRO optimizer shard per rank: fewer means a rank's write (or a
        # deletion) was cut short, which the files left cannot show.
        shards = _deepspeed_optimizer_shards(checkpoint)
        written_by = checkpoint_world_size(checkpoint)
        if shards is not None and written_by is not None and len(shards) != written_by:
            return False
        return all(
            _file_complete(path) for path in checkpoint.rglob("*") if path.is_file()
        )
    except (OSError, ValueError):  # set aside by another rank while read; torn JSON
        return False


def _checkpoint_step(path: Path) -> int:
    return int(path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-"))


def resumable_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint; newer torn ones are moved to ``run_dir/torn/``.

    A kill while a checkpoint is written leaves a partial ``checkpoint-N``; the Trainer
    would pick it and fail on every rerun. Setting it aside (not deleting it: it may
    help a post-mortem) lets the run continue from the checkpoint before.
    """
    root = run_dir / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    candidates = sorted(
        (
            path
            for path in root.iterdir()
            if path.is_dir()
            and path.name.startswith(f"{PREFIX_CHECKPOINT_DIR}-")
            and path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-").isdigit()
        ),
        key=_checkpoint_step,
        reverse=True,
    )
    for checkpoint in candidates:
        if checkpoint_is_complete(checkpoint):
            return checkpoint
        if _is_rank_zero():
            torn = run_dir / TORN_DIR / f"{checkpoint.name}-{time.time_ns()}"
            torn.parent.mkdir(exist_ok=True)
            checkpoint.replace(torn)
            logger.warning(
                "%s is incomplete (a kill?); set aside as %s", checkpoint, torn
            )
    return None


@dataclass(frozen=True)
class MlflowTarget:
    """The MLflow run a job logs to, by id (launcher subprocesses have no active run)."""

    tracking_uri: str
    run_id: str


@dataclass(frozen=True)
class Job:
    """A run folder's ``job.json``: what every process of the run reads first."""

    variant: str
    train: TrainSettings  # validated again by each process that reads the file
    mlflow: MlflowTarget | None
    # Records left out for a non-text field, by "train" / "eval".
    bad_records: dict[str, int]
    # Records this preparation tokenised (the rest came from the token cache).
    tokenized_records: dict[str, int]
    # MLflow runs that trained this folder before (killed, resumed here), oldest first.
    earlier_mlflow_runs: tuple[str, ...]

    def write(self, run_dir: Path) -> None:
        """Write ``run_dir/job.json`` atomically."""
        values = {**dataclasses.asdict(self), "train": self.train.as_dict()}
        values["earlier_mlflow_runs"] = list(self.earlier_mlflow_runs)
        write_atomic(run_dir / JOB_FILE, json.dumps(values, indent=2, sort_keys=True))


def read_job(run_dir: Path) -> Job:
    """The run folder's ``job.json``, its train settings checked as a node checks them."""
    values = json.loads((run_dir / JOB_FILE).read_text(encoding="utf-8"))
    # Folders written before train.plan existed lack it; the plan is the Kedro node's
    # check before training, which no reader of a job makes, so any valid value does.
    train = {"plan": {"on_short_disk": "warn"}, **values["train"]}
    return Job(
        variant=str(values["variant"]),
        train=build(TrainSettings, train, "train"),
        mlflow=MlflowTarget(**values["mlflow"]) if values["mlflow"] else None,
        bad_records=dict(values["bad_records"]),
        tokenized_records=dict(values["tokenized_records"]),
        # Folders written before runs were linked have no list of earlier runs.
        earlier_mlflow_runs=tuple(values.get("earlier_mlflow_runs", ())),
    )


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def training_arguments(
    run_dir: Path, settings: TrainSettings, has_eval: bool
) -> TrainingArguments:
    """``train.trainer`` as TrainingArguments, checkpointing into ``run_dir``."""
    trainer_params = dict(settings.trainer)
    if not has_eval:
        trainer_params["eval_strategy"] = "no"
    on_cpu = not torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(run_dir / CHECKPOINT_DIR),
        report_to="none",  # MlflowStepLogger logs to the variant's child run instead
        remove_unused_columns=False,
        save_strategy="steps",
        seed=settings.seed,
        use_cpu=on_cpu,
        ddp_backend="gloo" if on_cpu and _world_size() > 1 else None,
        deepspeed=settings.deepspeed,
        **trainer_params,
    )


def run_training(
    run_dir: str | Path, callbacks: Sequence[TrainerCallback] = ()
) -> dict[str, Any]:
    """Train from a run folder (every process calls this); resumes from its last checkpoint.

    Rank 0 writes ``model/`` and ``result.json``; every rank returns the result.
    """
    run_dir = Path(run_dir)
    job = read_job(run_dir)
    settings = job.train
    max_length = settings.data.max_length

    tokenizer = load_tokenizer(settings.model)
    # Tokenised once by the Kedro process; every rank only reads the cache (pread).
    fingerprint_id = cache_fingerprint(tokenizer, max_length)["id"]
    train_dataset = open_view(run_dir / TRAIN_TOKENS, fingerprint_id)
    eval_dataset = open_view(run_dir / EVAL_TOKENS, fingerprint_id)
    if len(train_dataset) == 0:
        raise ValueError(
            f"{run_dir / TRAIN_TOKENS}: no record has an answer token within max_length={max_length}"
        )
    # Before the model: TrainingArguments register the DeepSpeed config, which ZeRO-3
    # needs to build the model partitioned (see models.load_model).
    args = training_arguments(run_dir, settings, has_eval=len(eval_dataset) > 0)
    last_checkpoint = resumable_checkpoint(run_dir)
    if last_checkpoint:
        check_world_size(last_checkpoint, args.world_size)
    model = load_model(settings, tokenizer)
    step_timer = StepTimer()
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if len(eval_dataset) else None,
        data_collator=SFTCollator(
            tokenizer.pad_token_id, settings.data.pad_to_multiple_of
        ),
        eval_collator=SFTCollator(
            tokenizer.pad_token_id, settings.data.pad_to_multiple_of
        ),
        processing_class=tokenizer,
        callbacks=[*callbacks, step_timer, WorldSizeRecord(args.world_size)],
    )
    if job.mlflow:
        trainer.add_callback(
            MlflowStepLogger(
                job.mlflow.tracking_uri,
                job.mlflow.run_id,
                trainer.trained_tokens,
                args.world_size,
            )
        )
    if last_checkpoint:
        logger.info("Resuming %s from %s", job.variant, last_checkpoint)
    output = trainer.train(
        resume_from_checkpoint=str(last_checkpoint) if last_checkpoint else None
    )

    # Summed over ranks by accelerate, on the rank's own device (NCCL takes only CUDA
    # tensors; gloo takes CPU ones).
    counts = trainer.accelerator.reduce(
        trainer.trained_tokens.as_tensor(trainer.accelerator.device), reduction="sum"
    )
    real_tokens, padded_tokens = (int(value) for value in counts.tolist())
    runtime = float(output.metrics.get("train_runtime", 0.0))
    eval_loss = None
    if len(eval_dataset):
        eval_loss = float(trainer.evaluate()["eval_loss"])
    result = {
        "variant": job.variant,
        "global_step": int(trainer.state.global_step),
        "resumed_from_step": _checkpoint_step(last_checkpoint)
        if last_checkpoint
        else 0,
        "train_loss": float(output.training_loss),
        "eval_loss": eval_loss,
        "train_runtime_s": runtime,
        "train_tokens": real_tokens,
        "padded_tokens": padded_tokens,
        "tokens_per_second": real_tokens / runtime if runtime > 0 else 0.0,
        # Inside optimizer steps only (rank 0's clock): no checkpoint save, evaluation
        # or logging, so what a GPU sustains while it trains.
        "step_seconds": step_timer.seconds,
        "step_tokens_per_second": real_tokens / step_timer.seconds
        if step_timer.seconds > 0
        else 0.0,
        "padding_waste": padding_waste(real_tokens, padded_tokens),
        "train_examples": len(train_dataset),
        # Records a worker could not learn from, counted rather than crashing it:
        # a non-text field (left out by the launcher), or a prompt that fills max_length.
        "bad_records": job.bad_records["train"],
        "dropped_examples": train_dataset.dropped,
        "eval_examples": len(eval_dataset),
        "world_size": int(args.world_size),
        "distributed_backend": torch.distributed.get_backend()
        if torch.distributed.is_available() and torch.distributed.is_initialized()
        else None,
        # This rank's peak, in bytes (rank 0's is what result.json keeps).
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated()
        if torch.cuda.is_available()
        else None,
        "log_history": trainer.state.log_history,
    }
    trainer.save_model(str(run_dir / MODEL_DIR))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(run_dir / MODEL_DIR)
        # result.json first: from then on the run is finished, so a kill while the
        # checkpoints go (minutes for 100 GB on network storage) loses nothing.
        write_atomic(run_dir / RESULT_FILE, json.dumps(result, indent=2, default=str))
        discard_checkpoints(run_dir)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    return result


def discard_checkpoints(run_dir: Path) -> None:
    """Delete a finished run's checkpoints (its final model is in ``model/``)."""
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)


def load_trained(
    run_dir: Path, settings: TrainSettings
) -> tuple[Any, PreTrainedTokenizerBase]:
    """The trained model (base + adapter for LoRA) and tokenizer from ``run_dir/model``."""
    model_dir = run_dir / MODEL_DIR
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if settings.finetuning.method == "lora":
        from peft import PeftModel

        base = load_base_model(settings.model, tokenizer, seed=settings.seed)
        return PeftModel.from_pretrained(base, model_dir), tokenizer
    return AutoModelForCausalLM.from_pretrained(model_dir), tokenizer


def die_with_launcher() -> None:
    """Have the kernel SIGKILL this process when its parent (the launcher) dies (Linux).

    torchrun starts every rank in a session of its own, so a SIGKILL of the launcher, or
    of its process group, would otherwise leave the ranks training on: they finish the
    run and delete its checkpoints while a rerun resumes in the same folder. Elsewhere
    this does nothing.
    """
    if not die_with_parent(os.getppid(), signal.SIGKILL):
        os.kill(os.getpid(), signal.SIGKILL)  # the launcher died before the request


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of every launcher process: ``python -m belle_kedro.pipelines.train.trainer <run_dir>``.

    DeepSpeed's launcher appends ``--local_rank=N`` (``deepspeed/launcher/launch.py``);
    it is accepted and left unused, since ``LOCAL_RANK`` in the environment says the same.
    """
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--local_rank", type=int, help="set by DeepSpeed's launcher")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    die_with_launcher()
    logging.basicConfig(level=logging.INFO)
    run_training(arguments.run_dir)


if __name__ == "__main__":
    main()
