"""Supervised fine-tuning with the transformers Trainer, one run folder per variant.

Kedro runs in one process; training may need many (GPUs, nodes). The hand-off is a
*run folder*, identical whichever way training runs::

    <checkpoint_root>/<variant>/<fingerprint>/
        job.json        resolved ``params:train`` + variant + MLflow run to log to
        train.parquet   the variant's training records
        eval.parquet    held-out records for the eval loss
        checkpoints/    Trainer checkpoints every ``trainer.save_steps`` steps
        model/          the final model (or LoRA adapter) and tokenizer
        result.json     final figures, written last by rank 0

``launch`` runs ``run_training(run_folder)`` in-process for one process without
DeepSpeed, and otherwise starts ``python -m torch.distributed.run ... -m
belle_kedro.training <run_folder>`` (or the DeepSpeed launcher) as a subprocess and
waits for it. Every process reads the same folder, rank 0 writes the result, and the
Kedro node loads ``model/`` back. The fingerprint hashes the data and the training
config, so a crashed run resumes from its last checkpoint when rerun unchanged and a
changed config starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_utils import get_last_checkpoint

from belle_kedro.modeling import load_base_model, load_model_and_tokenizer
from belle_kedro.sft import LengthGroupedSampler, SFTCollator, SFTDataset, data_digest

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"
TRAIN_FILE = "train.parquet"
EVAL_FILE = "eval.parquet"
RESULT_FILE = "result.json"
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"
# Parameters that change how training is launched, not what it computes.
_NOT_FINGERPRINTED = ("launcher", "checkpoint_root", "registered_model_name")
# Trainer log keys -> MLflow metric names.
_METRIC_NAMES = {
    "loss": "train_loss",
    "eval_loss": "eval_loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
}


def _write_atomic(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text, encoding="utf-8")
    staging.replace(path)


def _write_parquet_atomic(path: Path, records: pd.DataFrame) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    records.to_parquet(staging, index=False)
    staging.replace(path)


def run_fingerprint(
    train_data: pd.DataFrame, eval_data: pd.DataFrame, train_config: Mapping[str, Any]
) -> str:
    """Short hash of what determines a training run's result (data + config)."""
    config = {
        key: value
        for key, value in train_config.items()
        if key not in _NOT_FINGERPRINTED
    }
    payload = json.dumps(
        {
            "train": data_digest(train_data),
            "eval": data_digest(eval_data),
            "config": config,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def prepare_run_dir(
    checkpoint_root: str | Path,
    variant: str,
    train_data: pd.DataFrame,
    eval_data: pd.DataFrame,
    train_config: Mapping[str, Any],
    *,
    mlflow_run: Mapping[str, str] | None = None,
) -> Path:
    """Create (or reuse, to resume) the variant's run folder and write its inputs."""
    config = dict(train_config)
    deepspeed = config.get("deepspeed")
    if deepspeed:
        # Absolute, so launcher subprocesses on any working directory find it.
        config["deepspeed"] = str(Path(deepspeed).resolve())
    run_dir = (
        Path(checkpoint_root).resolve()
        / variant
        / run_fingerprint(train_data, eval_data, config)
    )
    if (run_dir / RESULT_FILE).is_file():
        # A finished run: train again from scratch rather than "resume" a complete one.
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    columns = ["instruction", "input", "output"]
    _write_parquet_atomic(run_dir / TRAIN_FILE, train_data.loc[:, columns])
    _write_parquet_atomic(run_dir / EVAL_FILE, eval_data.loc[:, columns])
    job = {
        "variant": variant,
        "train": config,
        "mlflow": dict(mlflow_run) if mlflow_run else None,
    }
    _write_atomic(
        run_dir / JOB_FILE, json.dumps(job, indent=2, sort_keys=True, default=str)
    )
    return run_dir


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

    def on_evaluate(self, args, state, control, **kwargs):
        # Evaluation time is not training throughput.
        self._last_time = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
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
    """Trainer whose train sampler groups examples by length (when asked to)."""

    def __init__(
        self,
        *args: Any,
        eval_collator: SFTCollator | None = None,
        group_by_length: bool = True,
        megabatch_batches: int = 64,
        **kwargs: Any,
    ):
        self.eval_collator = eval_collator
        self.group_by_length = group_by_length
        self.megabatch_batches = megabatch_batches
        super().__init__(*args, **kwargs)

    def get_eval_dataloader(self, eval_dataset=None):
        # Eval batches get their own collator so padding figures describe training only.
        if self.eval_collator is None:
            return super().get_eval_dataloader(eval_dataset)
        train_collator, self.data_collator = self.data_collator, self.eval_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.group_by_length and isinstance(dataset, SFTDataset):
            return LengthGroupedSampler(
                dataset.lengths,
                self.args.per_device_train_batch_size,
                megabatch_batches=self.megabatch_batches,
                seed=self.args.seed,
            )
        return super()._get_train_sampler(train_dataset)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _training_arguments(
    run_dir: Path, config: Mapping[str, Any], has_eval: bool
) -> TrainingArguments:
    trainer_params = dict(config.get("trainer") or {})
    if not has_eval:
        trainer_params["eval_strategy"] = "no"
    on_cpu = not torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(run_dir / CHECKPOINT_DIR),
        report_to="none",  # MlflowStepLogger logs to the variant's child run instead
        remove_unused_columns=False,
        save_strategy="steps",
        seed=int(config.get("seed", 0)),
        use_cpu=on_cpu,
        ddp_backend="gloo" if on_cpu and _world_size() > 1 else None,
        deepspeed=config.get("deepspeed") or None,
        **trainer_params,
    )


def run_training(
    run_dir: str | Path, callbacks: Sequence[TrainerCallback] = ()
) -> dict[str, Any]:
    """Train from a run folder (every process calls this); resumes from its last checkpoint.

    Rank 0 writes ``model/`` and ``result.json``; every rank returns the result.
    """
    run_dir = Path(run_dir)
    job = json.loads((run_dir / JOB_FILE).read_text(encoding="utf-8"))
    config = job["train"]
    data_config = config.get("data") or {}
    max_length = int(data_config.get("max_length", 512))

    model, tokenizer = load_model_and_tokenizer(config)
    train_dataset = SFTDataset.from_records(
        pd.read_parquet(run_dir / TRAIN_FILE), tokenizer, max_length
    )
    eval_records = pd.read_parquet(run_dir / EVAL_FILE)
    eval_dataset = (
        SFTDataset.from_records(eval_records, tokenizer, max_length)
        if len(eval_records)
        else None
    )
    if len(train_dataset) == 0:
        raise ValueError(
            f"{run_dir / TRAIN_FILE}: no record has an answer token within max_length={max_length}"
        )

    train_collator = SFTCollator(
        tokenizer.pad_token_id, data_config.get("pad_to_multiple_of")
    )
    args = _training_arguments(
        run_dir, config, has_eval=eval_dataset is not None and len(eval_dataset) > 0
    )
    all_callbacks = list(callbacks)
    if job.get("mlflow"):
        all_callbacks.append(
            MlflowStepLogger(
                job["mlflow"]["tracking_uri"],
                job["mlflow"]["run_id"],
                train_collator,
                args.world_size,
            )
        )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset or None,
        data_collator=train_collator,
        eval_collator=SFTCollator(
            tokenizer.pad_token_id, data_config.get("pad_to_multiple_of")
        ),
        processing_class=tokenizer,
        callbacks=all_callbacks,
        group_by_length=bool(data_config.get("group_by_length", True)),
        megabatch_batches=int(data_config.get("megabatch_batches", 64)),
    )
    last_checkpoint = (
        get_last_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
    )
    if last_checkpoint:
        logger.info("Resuming %s from %s", job["variant"], last_checkpoint)
    output = trainer.train(resume_from_checkpoint=last_checkpoint)

    counts = torch.tensor(
        [train_collator.stats.real_tokens, train_collator.stats.padded_tokens],
        dtype=torch.long,
    )
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(counts)
    real_tokens, padded_tokens = (int(value) for value in counts)
    runtime = float(output.metrics.get("train_runtime", 0.0))
    eval_loss = None
    if eval_dataset is not None and len(eval_dataset):
        eval_loss = float(trainer.evaluate()["eval_loss"])
    result = {
        "variant": job["variant"],
        "global_step": int(trainer.state.global_step),
        "resumed_from_step": int(Path(last_checkpoint).name.split("-")[-1])
        if last_checkpoint
        else 0,
        "train_loss": float(output.training_loss),
        "eval_loss": eval_loss,
        "train_runtime_s": runtime,
        "train_tokens": real_tokens,
        "padded_tokens": padded_tokens,
        "tokens_per_second": real_tokens / runtime if runtime > 0 else 0.0,
        "padding_waste": 0.0
        if padded_tokens == 0
        else 1.0 - real_tokens / padded_tokens,
        "train_examples": len(train_dataset),
        "dropped_examples": train_dataset.dropped,
        "eval_examples": len(eval_dataset) if eval_dataset is not None else 0,
        "world_size": int(args.world_size),
        "log_history": trainer.state.log_history,
    }
    trainer.save_model(str(run_dir / MODEL_DIR))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(run_dir / MODEL_DIR)
        # Checkpoints exist only for unfinished runs; the final model is in model/.
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
        _write_atomic(run_dir / RESULT_FILE, json.dumps(result, indent=2, default=str))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    return result


def launcher_command(
    run_dir: Path, launcher: Mapping[str, Any], uses_deepspeed: bool
) -> list[str] | None:
    """The command that trains ``run_dir`` in several processes, or None for in-process."""
    nproc = int(launcher.get("nproc_per_node", 1))
    nnodes = int(launcher.get("nnodes", 1))
    if nproc <= 1 and nnodes <= 1 and not uses_deepspeed:
        return None
    entry = ["-m", "belle_kedro.training", str(run_dir)]
    if launcher.get("command", "torchrun") == "deepspeed":
        command = [
            sys.executable,
            "-m",
            "deepspeed.launcher.runner",
            "--num_gpus",
            str(nproc),
        ]
        if launcher.get("hostfile"):
            command += ["--hostfile", str(launcher["hostfile"])]
        if launcher.get("master_port"):
            command += ["--master_port", str(launcher["master_port"])]
        return [*command, "--module", "belle_kedro.training", str(run_dir)]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
    ]
    if nnodes > 1:
        command += [
            "--nnodes",
            str(nnodes),
            "--node_rank",
            str(launcher.get("node_rank", 0)),
            "--rdzv_backend",
            "c10d",
            "--rdzv_endpoint",
            f"{launcher['master_addr']}:{launcher.get('master_port', 29500)}",
        ]
    else:
        command.append("--standalone")  # picks a free port on this machine
    return [*command, *entry]


def launch(run_dir: Path, launcher: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train ``run_dir`` in-process or through the launcher; returns ``result.json``."""
    job = json.loads((run_dir / JOB_FILE).read_text(encoding="utf-8"))
    command = launcher_command(
        run_dir, launcher or {}, uses_deepspeed=bool(job["train"].get("deepspeed"))
    )
    if command is None:
        return run_training(run_dir)
    logger.info("Handing %s to the launcher: %s", job["variant"], " ".join(command))
    if int((launcher or {}).get("nnodes", 1)) > 1:
        logger.info("Start the same command on the other nodes with --node_rank 1..N-1")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    completed = subprocess.run(command, env=env, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"training {job['variant']} failed in the launcher (exit {completed.returncode}); "
            f"rerun to resume from the last checkpoint in {run_dir / CHECKPOINT_DIR}"
        )
    return json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))


def load_trained(
    run_dir: Path, train_config: Mapping[str, Any]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The trained model (base + adapter for LoRA) and tokenizer from ``run_dir/model``."""
    model_dir = run_dir / MODEL_DIR
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if (train_config.get("finetuning") or {}).get("method", "full") == "lora":
        from peft import PeftModel

        base = load_base_model(
            train_config.get("model") or {},
            tokenizer,
            seed=int(train_config.get("seed", 0)),
        )
        return PeftModel.from_pretrained(base, model_dir), tokenizer
    return AutoModelForCausalLM.from_pretrained(model_dir), tokenizer


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of every launcher process: ``python -m belle_kedro.training <run_dir>``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1:
        raise SystemExit("usage: python -m belle_kedro.training <run_dir>")
    logging.basicConfig(level=logging.INFO)
    run_training(Path(arguments[0]))


if __name__ == "__main__":
    main()
