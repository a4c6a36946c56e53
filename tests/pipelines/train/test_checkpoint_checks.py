"""checkpoint_is_complete: each missing part makes a checkpoint incomplete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from belle_kedro.pipelines.train.trainer import (
    TRAINER_STATE_FILE,
    checkpoint_is_complete,
)


def checkpoint(tmp_path: Path, *, state: bool, weights: bool) -> Path:
    folder = tmp_path / "checkpoint-4"
    folder.mkdir()
    if state:
        (folder / TRAINER_STATE_FILE).write_text(json.dumps({"global_step": 4}))
    if weights:
        (folder / "pytorch_model.bin").write_bytes(b"")  # replaced below where needed
    return folder


@pytest.mark.parametrize(
    ("state", "weights"), [(False, True), (True, False), (False, False)]
)
def test_a_checkpoint_without_its_state_or_weights_is_incomplete(
    tmp_path: Path, state: bool, weights: bool
):
    folder = checkpoint(tmp_path, state=state, weights=weights)
    if weights:  # a complete torch zip, so only the missing part decides
        import torch

        torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    assert checkpoint_is_complete(folder) is False


def test_the_same_checkpoint_with_both_is_complete(tmp_path: Path):
    import torch

    folder = checkpoint(tmp_path, state=True, weights=True)
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    assert checkpoint_is_complete(folder) is True
