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
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from belle_kedro.common.config import build
from belle_kedro.common.files import write_atomic
from belle_kedro.pipelines.train.models import load_base_model, load_model_and_tokenizer
from belle_kedro.pipelines.train.settings import TrainSettings
from belle_kedro.pipelines.train.sft import SFTCollator, SFTDataset, padding_waste
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
        self, tracking_uri: str, run_id: str, collator: SFTCollator, world_size: int
    ):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.run_id = run_id
        self.collator = collator
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
            tokens = self.collator.stats.real_tokens
            elapsed = now - self._last_time
            if elapsed > 0 and tokens > self._last_tokens:
                rate = (tokens - self._last_tokens) * self.world_size / elapsed
                metrics.append(
                    Metric("tokens_per_second", rate, now_ms, state.global_step)
                )
            self._last_tokens, self._last_time = tokens, now
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)


class SFTTrainer(Trainer):
    """Trainer whose eval batches use a collator of their own (training's counts padding)."""

    def __init__(self, *args: Any, eval_collator: SFTCollator, **kwargs: Any):
        self.eval_collator = eval_collator
        super().__init__(*args, **kwargs)

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
        return all(
            _file_complete(path) for path in checkpoint.rglob("*") if path.is_file()
        )
    except OSError:  # another rank set it aside while this one looked
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
    return Job(
        variant=str(values["variant"]),
        train=build(TrainSettings, values["train"], "train"),
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

    model, tokenizer = load_model_and_tokenizer(settings)
    # Tokenised once by the Kedro process; every rank only reads the cache (pread).
    fingerprint_id = cache_fingerprint(tokenizer, max_length)["id"]
    train_dataset = open_view(run_dir / TRAIN_TOKENS, fingerprint_id)
    eval_dataset = open_view(run_dir / EVAL_TOKENS, fingerprint_id)
    if len(train_dataset) == 0:
        raise ValueError(
            f"{run_dir / TRAIN_TOKENS}: no record has an answer token within max_length={max_length}"
        )

    train_collator = SFTCollator(
        tokenizer.pad_token_id, settings.data.pad_to_multiple_of
    )
    args = training_arguments(run_dir, settings, has_eval=len(eval_dataset) > 0)
    all_callbacks = list(callbacks)
    if job.mlflow:
        all_callbacks.append(
            MlflowStepLogger(
                job.mlflow.tracking_uri,
                job.mlflow.run_id,
                train_collator,
                args.world_size,
            )
        )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if len(eval_dataset) else None,
        data_collator=train_collator,
        eval_collator=SFTCollator(
            tokenizer.pad_token_id, settings.data.pad_to_multiple_of
        ),
        processing_class=tokenizer,
        callbacks=all_callbacks,
    )
    last_checkpoint = resumable_checkpoint(run_dir)
    if last_checkpoint:
        logger.info("Resuming %s from %s", job.variant, last_checkpoint)
    output = trainer.train(
        resume_from_checkpoint=str(last_checkpoint) if last_checkpoint else None
    )

    # Summed over ranks by accelerate, on the rank's own device (NCCL takes only CUDA
    # tensors; gloo takes CPU ones).
    counts = trainer.accelerator.reduce(
        torch.tensor(
            [train_collator.stats.real_tokens, train_collator.stats.padded_tokens],
            dtype=torch.long,
            device=trainer.accelerator.device,
        ),
        reduction="sum",
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
        # Checkpoints exist only for unfinished runs; the final model is in model/.
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
        write_atomic(run_dir / RESULT_FILE, json.dumps(result, indent=2, default=str))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    return result


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


# prctl(2) option: the signal the kernel sends this process when its parent dies.
_PR_SET_PDEATHSIG = 1


def die_with_launcher() -> None:
    """Have the kernel SIGKILL this process when its parent (the launcher) dies (Linux).

    torchrun starts every rank in a session of its own, so a SIGKILL of the launcher, or
    of its process group, would otherwise leave the ranks training on: they finish the
    run and delete its checkpoints while a rerun resumes in the same folder. Elsewhere
    this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    if os.getppid() != parent:  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of every launcher process: ``python -m belle_kedro.pipelines.train.trainer <run_dir>``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1:
        raise SystemExit(f"usage: python -m {__spec__.name} <run_dir>")
    die_with_launcher()
    logging.basicConfig(level=logging.INFO)
    run_training(Path(arguments[0]))


if __name__ == "__main__":
    main()
