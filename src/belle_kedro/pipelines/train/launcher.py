"""Hand a prepared run folder to training: in this process, or torchrun/DeepSpeed.

Kedro runs in one process; training may need many (GPUs, nodes). The hand-off is a run
folder (:mod:`.trainer` describes its layout), identical whichever way training runs.
:func:`prepare_run_dir` tokenises the variant's records here, once, into the token
cache (:mod:`.token_cache`); the run folder holds views of it that every rank reads
(``os.pread``), never writes.
:func:`launch` runs :func:`~.trainer.run_training` in-process for one process without
DeepSpeed, and otherwise starts ``python -m torch.distributed.run ... -m
belle_kedro.pipelines.train.trainer <run_folder>`` (or the DeepSpeed launcher) as a
subprocess and waits for it. Every process reads the same folder, rank 0 writes the
result, and the Kedro node loads ``model/`` back. The fingerprint hashes the data and
the training config, so a crashed run resumes from its last complete checkpoint when
rerun unchanged, a finished one is reused (``train.force: true`` retrains it) and a
changed config starts afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from belle_kedro.common.processes import run_tied
from belle_kedro.common.records import RECORD_COLUMNS, records_digest
from belle_kedro.pipelines.train.models import load_tokenizer
from belle_kedro.pipelines.train.settings import LauncherSettings, TrainSettings
from belle_kedro.pipelines.train.token_cache import build_view, save_view
from belle_kedro.pipelines.train.trainer import (
    CHECKPOINT_DIR,
    EVAL_TOKENS,
    JOB_FILE,
    MODEL_DIR,
    RESULT_FILE,
    TRAIN_TOKENS,
    Job,
    MlflowTarget,
    check_world_size,
    discard_checkpoints,
    read_job,
    resumable_checkpoint,
    run_training,
)

logger = logging.getLogger(__name__)

# The module every launcher process runs.
WORKER_MODULE = "belle_kedro.pipelines.train.trainer"
# Parameters that change how training is launched, not what it computes.
_NOT_FINGERPRINTED = (
    "launcher",
    "checkpoint_root",
    "registered_model_name",
    "force",
    "token_cache",
    "plan",
)


def split_bad_records(records: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The records whose text fields are all strings (or missing), and how many were not.

    A number, list or dict in ``instruction``/``input``/``output`` is a broken record,
    not text to learn from; it is counted and left out rather than stringified (or
    crashing the tokenizer).
    """
    fields = records.loc[:, list(RECORD_COLUMNS)]
    # astype: on zero rows pandas keeps the string dtype, which `|` then rejects.
    text_or_missing = fields.map(
        lambda value: isinstance(value, str) or value is None
    ).astype(bool)
    text_or_missing |= fields.isna()
    good = text_or_missing.all(axis=1)
    return records.loc[good], int((~good).sum())


def holdout_sample(
    holdout: pd.DataFrame, max_examples: int | None, seed: int
) -> pd.DataFrame:
    """At most ``max_examples`` held-out records, a seeded sample (all when None)."""
    if max_examples is None or len(holdout) <= max_examples:
        return holdout.reset_index(drop=True)
    return holdout.sample(n=max_examples, random_state=seed).reset_index(drop=True)


def run_fingerprint(
    train_data: pd.DataFrame, eval_data: pd.DataFrame, settings: TrainSettings
) -> str:
    """Short hash of what determines a training run's result (data + config).

    The config is hashed as the YAML block reads (:meth:`TrainSettings.as_dict`), so
    a run folder keeps its name from one release to the next while the keys do.
    """
    config = {
        key: value
        for key, value in settings.as_dict().items()
        if key not in _NOT_FINGERPRINTED
    }
    payload = json.dumps(
        {
            "train": records_digest(train_data),
            "eval": records_digest(eval_data),
            "config": config,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def prepare_run_dir(
    variant: str,
    train_data: pd.DataFrame,
    eval_data: pd.DataFrame,
    settings: TrainSettings,
    *,
    mlflow_run: MlflowTarget | None = None,
) -> Path:
    """Create (or reuse, to resume) the variant's run folder under ``checkpoint_root``.

    A finished run (``result.json`` and ``model/``) is kept as it is, for :func:`launch`
    to reuse, unless ``train.force`` asks to train it again from scratch.
    """
    if settings.deepspeed:
        # Absolute, so launcher subprocesses on any working directory find it.
        settings = dataclasses.replace(
            settings, deepspeed=str(Path(settings.deepspeed).resolve())
        )
    run_dir = (
        Path(settings.checkpoint_root).resolve()
        / variant
        / run_fingerprint(train_data, eval_data, settings)
    )
    if is_finished(run_dir):
        if not settings.force:
            logger.info("%s: reusing the finished run in %s", variant, run_dir)
            return run_dir
        logger.info(
            "%s: train.force is set; retraining %s from scratch", variant, run_dir
        )
        shutil.rmtree(run_dir)
    earlier_runs = _earlier_mlflow_runs(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    columns = list(RECORD_COLUMNS)
    train_data, bad_train = split_bad_records(train_data)
    eval_data, bad_eval = split_bad_records(eval_data)
    if bad_train or bad_eval:
        logger.warning(
            "%s: left out %d training and %d held-out record(s) with a non-text field",
            variant,
            bad_train,
            bad_eval,
        )
    # Tokenised here, once, into the shared token cache; every rank reads it (pread).
    tokenizer = load_tokenizer(settings.model)
    tokenized = {}
    for stem, records in ((TRAIN_TOKENS, train_data), (EVAL_TOKENS, eval_data)):
        view = build_view(
            settings.token_cache,
            records.loc[:, columns],
            tokenizer,
            settings.data.max_length,
        )
        save_view(view, run_dir / stem)
        tokenized[stem] = view.tokenized
    Job(
        variant=variant,
        train=settings,
        mlflow=mlflow_run,
        bad_records={"train": bad_train, "eval": bad_eval},
        tokenized_records={
            "train": tokenized[TRAIN_TOKENS],
            "eval": tokenized[EVAL_TOKENS],
        },
        earlier_mlflow_runs=tuple(
            run_id
            for run_id in earlier_runs
            if not mlflow_run or run_id != mlflow_run.run_id
        ),
    ).write(run_dir)
    return run_dir


def _earlier_mlflow_runs(run_dir: Path) -> list[str]:
    """Run ids of the MLflow runs an existing ``job.json`` names (oldest first)."""
    if not (run_dir / JOB_FILE).is_file():
        return []
    job = read_job(run_dir)
    earlier = list(job.earlier_mlflow_runs)
    if job.mlflow:
        earlier.append(job.mlflow.run_id)
    return earlier


def is_finished(run_dir: Path) -> bool:
    """Whether rank 0 saved the final model and wrote ``result.json`` (written last)."""
    return (run_dir / RESULT_FILE).is_file() and (run_dir / MODEL_DIR).is_dir()


def launcher_command(run_dir: Path, settings: TrainSettings) -> list[str] | None:
    """The command that trains ``run_dir`` in several processes, or None for in-process."""
    if not settings.needs_launcher:
        return None
    launcher: LauncherSettings = settings.launcher
    entry = ["-m", WORKER_MODULE, str(run_dir)]
    if launcher.command == "deepspeed":
        command = [
            sys.executable,
            "-m",
            "deepspeed.launcher.runner",
            "--num_gpus",
            str(launcher.nproc_per_node),
        ]
        if launcher.hostfile:
            command += ["--hostfile", launcher.hostfile]
        command += ["--master_port", str(launcher.master_port)]
        return [*command, "--module", WORKER_MODULE, str(run_dir)]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(launcher.nproc_per_node),
    ]
    if launcher.nnodes > 1:
        command += [
            "--nnodes",
            str(launcher.nnodes),
            "--node_rank",
            str(launcher.node_rank),
            "--rdzv_backend",
            "c10d",
            "--rdzv_endpoint",
            f"{launcher.master_addr}:{launcher.master_port}",
        ]
    else:
        command.append("--standalone")  # picks a free port on this machine
    return [*command, *entry]


def launch(run_dir: Path) -> dict[str, Any]:
    """Train ``run_dir`` as its ``train.launcher`` says; returns ``result.json``.

    A finished run is not trained again: its ``result.json`` comes back with
    ``reused: true``.
    """
    if is_finished(run_dir):
        # A kill while rank 0 deleted the checkpoints (after result.json) left some.
        discard_checkpoints(run_dir)
        result = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
        return {**result, "reused": True}
    job = read_job(run_dir)
    command = launcher_command(run_dir, job.train)
    if command is None:
        return {**run_training(run_dir), "reused": False}
    last_checkpoint = resumable_checkpoint(run_dir)
    if last_checkpoint and not job.train.launcher.hostfile:
        # Refused here, before the ranks start, when the count is known (a hostfile's
        # is DeepSpeed's to read: then each rank refuses it).
        check_world_size(
            last_checkpoint,
            job.train.launcher.nproc_per_node * job.train.launcher.nnodes,
        )
    logger.info("Handing %s to the launcher: %s", job.variant, " ".join(command))
    if job.train.launcher.nnodes > 1:
        logger.info("Start the same command on the other nodes with --node_rank 1..N-1")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Tied: the launcher dies with this process and hears its SIGTERM (no orphans).
    returncode = run_tied(command, env)
    if returncode != 0:
        raise RuntimeError(
            f"training {job.variant} failed in the launcher (exit {returncode}); "
            f"rerun to resume from the last checkpoint in {run_dir / CHECKPOINT_DIR}"
        )
    result = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    return {**result, "reused": False}
