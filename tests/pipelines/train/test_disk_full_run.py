"""A whole ``kedro run --pipeline train`` (the offline tiny model) whose data folder
fills up mid-training.

The project's ``data/`` is a real tmpfs (tests/support/small_disk.py); a hook fills it
just before ``medium.fine_tune`` runs, leaving room for one and a half checkpoints (the
train plan's own estimate), so checkpoint-6 is saved and checkpoint-12 meets the full
disk. ``plan.on_short_disk: warn`` lets the run start (``refuse``, the default, stops it
before training: tests/pipelines/train/test_resources.py). The run must fail naming the
checkpoint and the stage, keep only whole checkpoints, and the rerun after space is freed
must resume from checkpoint-6 and end as an undisturbed run ends.
"""

from __future__ import annotations

import shutil
from contextlib import chdir
from pathlib import Path
from typing import Any

import mlflow
import pytest

from belle_kedro.common.config import build
from belle_kedro.pipelines.train import resources, trainer
from belle_kedro.pipelines.train.settings import TrainSettings
from tests.pipelines.train.test_pipeline import _use_fixture_clean_instructions
from tests.support.project import base_parameters, merged, open_session
from tests.support.records import make_records
from tests.support.small_disk import FillBeforeNode, project_data_on_small_disk

VARIANT = "medium"  # 48 records, 8 a step, 2 epochs: 12 steps, checkpoints at 6 and 12
WARN = {"train": {"plan": {"on_short_disk": "warn"}}}


def checkpoint_bytes() -> int:
    """The train plan's estimate of one checkpoint of conf/base's tiny model."""
    settings = build(
        TrainSettings, merged(base_parameters("train"), WARN["train"]), "train"
    )
    model = resources.model_size(resources.model_config(settings), settings)
    return int(resources.plan(model, settings).checkpoint)


def train(project: Path, env: str, hook: Any = None) -> dict[str, Any]:
    # checkpoint_root and the token cache are parameters, relative to the working folder.
    with chdir(project), open_session(project, env=env, runtime_params=WARN) as session:
        if hook is not None:
            session._hook_manager.register(hook)
        session.run(pipeline_names=["train"], namespaces=[VARIANT])
    with open_session(project, env=env, runtime_params=WARN) as session:
        return session.load_context().catalog.load(f"{VARIANT}.training_result")


def losses(result: dict[str, Any]) -> list[float]:
    return [entry["loss"] for entry in result["log_history"] if "loss" in entry]


@pytest.mark.slow
def test_a_disk_that_fills_mid_training_keeps_whole_checkpoints_and_resumes(
    kedro_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = _use_fixture_clean_instructions(kedro_project, make_records(160, seed=5))
    with open_session(kedro_project, env=env) as session:
        session.run(pipeline_names=["split"])
    reference = kedro_project.parent / "reference"
    shutil.copytree(kedro_project, reference)
    expected = train(reference, env)

    with project_data_on_small_disk(kedro_project, "64m") as disk:
        fill = FillBeforeNode(
            disk, f"{VARIANT}.fine_tune", leave=3 * checkpoint_bytes() // 2
        )
        with pytest.raises(trainer.CheckpointSaveError) as raised:
            train(kedro_project, env, fill)
        while mlflow.active_run() is not None:  # the failed session's run
            mlflow.end_run()
        [run_dir] = (disk.folder / "06_models" / "checkpoints" / VARIANT).iterdir()
        checkpoints = run_dir / trainer.CHECKPOINT_DIR
        assert str(raised.value).startswith(
            f"train: could not save checkpoint {checkpoints / 'checkpoint-12'}"
        )
        # torch reports the full disk as a failed write ("unexpected pos"), no errno:
        # the error says how much room there was instead.
        assert "0 bytes were free on its disk" in str(raised.value)
        assert "-> [medium.training_result] failed with error" in caplog.text
        assert (
            "train.checkpoint_root (" in caplog.text
        )  # the plan warned before training
        # Only the whole checkpoint-6 is left: the torn checkpoint-12 was removed.
        assert [path.name for path in checkpoints.iterdir()] == ["checkpoint-6"]
        assert not (run_dir / trainer.MODEL_DIR).exists()
        disk.free()
        resumed = train(kedro_project, env)
    assert resumed["resumed_from_step"] == 6
    assert resumed["global_step"] == expected["global_step"] == 12
    assert losses(resumed) == pytest.approx(losses(expected), rel=1e-4)
