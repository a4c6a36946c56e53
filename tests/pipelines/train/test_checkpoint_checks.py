"""The checkpoint checks: what counts as complete, who wrote it, which one resumes.

Each checkpoint here is real files in the formats the Trainer and DeepSpeed write
(safetensors, torch zips, ``trainer_state.json`` saved by a real ``TrainerState``),
then torn the way a kill tears them.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import TrainerCallback, TrainerState

from belle_kedro.pipelines.train import trainer
from belle_kedro.pipelines.train.trainer import (
    TRAINER_STATE_FILE,
    WorldSizeChanged,
    WorldSizeRecord,
    check_world_size,
    checkpoint_is_complete,
    checkpoint_world_size,
    resumable_checkpoint,
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
        torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    assert checkpoint_is_complete(folder) is False


def test_the_same_checkpoint_with_both_is_complete(tmp_path: Path):
    folder = checkpoint(tmp_path, state=True, weights=True)
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    assert checkpoint_is_complete(folder) is True


def hf_checkpoint(folder: Path, *world_sizes: int) -> Path:
    """A checkpoint as the Trainer saves one: safetensors weights (with the metadata
    transformers writes), optimizer and RNG zips, config JSON, and the state that
    records ``world_sizes`` (one ``WorldSizeRecord`` each; none: an older state)."""
    folder.mkdir(parents=True)
    records: list[TrainerCallback] = [WorldSizeRecord(size) for size in world_sizes]
    TrainerState(global_step=4, stateful_callbacks=records).save_to_json(
        str(folder / TRAINER_STATE_FILE)
    )
    save_file(
        {"w": torch.zeros(4, 4), "b": torch.ones(3)},
        folder / "model.safetensors",
        metadata={"format": "pt"},
    )
    torch.save({"state": 1}, folder / "optimizer.pt")
    torch.save({"rng": 2}, folder / "rng_state.pth")
    (folder / "config.json").write_text('{"model_type": "bloom"}', encoding="utf-8")
    (folder / "README.md").write_text("# notes\n", encoding="utf-8")
    return folder


def test_a_trainer_checkpoint_is_complete_and_names_its_world_size(tmp_path: Path):
    folder = hf_checkpoint(tmp_path / "checkpoint-4", 2)
    assert checkpoint_is_complete(folder) is True
    assert checkpoint_world_size(folder) == 2
    # A file of a format with no check (the model card) is taken as written.
    (folder / "README.md").write_bytes(b"\xff torn")
    assert checkpoint_is_complete(folder) is True


def cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(
    "tear",
    [
        pytest.param(lambda f: cut(f / "model.safetensors", -10), id="weights-short"),
        pytest.param(lambda f: cut(f / "model.safetensors", 5), id="weights-5-bytes"),
        pytest.param(lambda f: cut(f / "optimizer.pt", 200), id="optimizer.pt"),
        pytest.param(lambda f: cut(f / "rng_state.pth", 200), id="rng_state.pth"),
        pytest.param(lambda f: cut(f / "config.json", 10), id="config.json"),
        pytest.param(
            lambda f: (f / "config.json").write_bytes(b'{"a": "\xff"}'),
            id="config.json-not-utf8",
        ),
    ],
)
def test_each_torn_file_of_a_trainer_checkpoint_makes_it_incomplete(
    tmp_path: Path, tear
):
    folder = hf_checkpoint(tmp_path / "checkpoint-4", 1)
    tear(folder)
    assert checkpoint_is_complete(folder) is False


def test_a_torn_pytorch_model_bin_makes_it_incomplete(tmp_path: Path):
    folder = hf_checkpoint(tmp_path / "checkpoint-4", 1)
    (folder / "model.safetensors").unlink()
    torch.save({"w": torch.zeros(8)}, folder / "pytorch_model.bin")
    assert checkpoint_is_complete(folder) is True
    cut(folder / "pytorch_model.bin", 200)
    assert checkpoint_is_complete(folder) is False


def safetensors_bytes(header: bytes, *, length: int | None = None) -> bytes:
    """A safetensors file: 8 bytes of little-endian header length, then the header."""
    return struct.pack("<Q", len(header) if length is None else length) + header


@pytest.mark.parametrize(
    ("content", "complete"),
    [
        # No tensors at all (an adapter with nothing to save): just the header.
        (safetensors_bytes(b'{"__metadata__": {"format": "pt"}}'), True),
        (safetensors_bytes(b"{}      "), True),
        # A header that is not JSON, though its length is right.
        (safetensors_bytes(b"{not json"), False),
        # A header longer than the file (cut inside it).
        (safetensors_bytes(b"{}", length=40), False),
        # A header length of exabytes: refused before reading, not a MemoryError.
        (safetensors_bytes(b"{}", length=2**62), False),
        # A length with the top bit set (2**64 - 1) is huge, not -1: the 62 bytes
        # after it are no header, though read as one they end at the file's end
        # (8 - 1 + 63 = 70 bytes).
        (
            struct.pack("<Q", 2**64 - 1)
            + b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 63]}}',
            False,
        ),
        # Bytes past the last tensor's end: not the file the header describes.
        (
            safetensors_bytes(
                b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
            )
            + b"\0" * 5,
            False,
        ),
    ],
    ids=[
        "metadata-only",
        "empty",
        "not-json",
        "header-past-end",
        "exabyte-header",
        "top-bit-length",
        "trailing-bytes",
    ],
)
def test_a_safetensors_file_is_complete_only_when_it_ends_where_its_header_says(
    tmp_path: Path, content: bytes, complete: bool
):
    folder = hf_checkpoint(tmp_path / "checkpoint-4", 1)
    (folder / "adapter_model.safetensors").write_bytes(content)
    assert checkpoint_is_complete(folder) is complete


def deepspeed_checkpoint(
    folder: Path, *, world_sizes: tuple[int, ...], shards: int, step: int = 4
) -> Path:
    """A DeepSpeed checkpoint: ``latest`` naming ``global_step<step>``, with ``shards``
    ZeRO optimizer shards and the model-states file (which is no optimizer shard)."""
    folder.mkdir(parents=True)
    TrainerState(
        global_step=step,
        stateful_callbacks=[WorldSizeRecord(size) for size in world_sizes],
    ).save_to_json(str(folder / TRAINER_STATE_FILE))
    (folder / "latest").write_text(f"global_step{step}\n")
    step_dir = folder / f"global_step{step}"
    step_dir.mkdir()
    for rank in range(shards):
        torch.save(
            {"rank": rank}, step_dir / f"bf16_zero_pp_rank_{rank}_optim_states.pt"
        )
    torch.save({"module": 1}, step_dir / "mp_rank_00_model_states.pt")
    # An optimizer file of no ZeRO rank (DeepSpeed without ZeRO writes one).
    torch.save({"optimizer": 1}, step_dir / "mp_rank_00_optim_states.pt")
    return folder


def test_an_older_deepspeed_checkpoint_counts_its_writers_by_zero_shards(
    tmp_path: Path,
):
    # Written before WorldSizeRecord existed: the ZeRO shards say how many ranks.
    folder = deepspeed_checkpoint(tmp_path / "checkpoint-4", world_sizes=(), shards=3)
    assert checkpoint_world_size(folder) == 3
    assert checkpoint_is_complete(folder) is True
    with pytest.raises(WorldSizeChanged):
        check_world_size(folder, 2)


def test_a_deepspeed_checkpoint_without_zero_shards_names_no_world_size(
    tmp_path: Path,
):
    folder = deepspeed_checkpoint(tmp_path / "checkpoint-4", world_sizes=(), shards=0)
    assert checkpoint_world_size(folder) is None
    assert checkpoint_is_complete(folder) is True
    check_world_size(folder, 5)  # nothing to compare with: no refusal


def test_a_deepspeed_checkpoint_short_of_a_ranks_shard_is_incomplete(tmp_path: Path):
    folder = deepspeed_checkpoint(tmp_path / "checkpoint-4", world_sizes=(2,), shards=2)
    assert checkpoint_is_complete(folder) is True
    (folder / "global_step4" / "bf16_zero_pp_rank_1_optim_states.pt").unlink()
    assert checkpoint_is_complete(folder) is False
    assert checkpoint_world_size(folder) == 2  # the record, not the files left


def test_the_last_world_size_record_counts_and_an_empty_list_says_nothing(
    tmp_path: Path,
):
    # Several records of one class are saved as a list; the last is this run's.
    folder = hf_checkpoint(tmp_path / "checkpoint-4", 1, 4, 2)
    assert checkpoint_world_size(folder) == 2
    state = json.loads((folder / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    state["stateful_callbacks"]["WorldSizeRecord"] = []
    (folder / TRAINER_STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
    assert checkpoint_world_size(folder) is None
    assert checkpoint_world_size(hf_checkpoint(tmp_path / "checkpoint-8")) is None


def test_a_checkpoint_resumes_only_at_the_process_count_that_wrote_it(
    tmp_path: Path,
):
    folder = hf_checkpoint(tmp_path / "run" / "checkpoints" / "checkpoint-4", 2)
    check_world_size(folder, 2)
    with pytest.raises(WorldSizeChanged) as raised:
        check_world_size(folder, 1)
    assert str(raised.value) == (
        f"{folder} was written by 2 process(es), but this run has 1: train.launcher "
        "changed (nproc_per_node x nnodes, or the hostfile). A checkpoint resumes only "
        "at the process count that wrote it (ZeRO partitions the optimizer per rank). "
        "Set train.launcher back to 2 process(es) to resume, or move "
        f"{folder.parent} away to train again from step 0."
    )
    check_world_size(hf_checkpoint(tmp_path / "checkpoint-8"), 1)  # no record


def test_no_checkpoint_folder_means_nothing_to_resume(tmp_path: Path):
    assert resumable_checkpoint(tmp_path) is None
    (tmp_path / trainer.CHECKPOINT_DIR).mkdir()
    assert resumable_checkpoint(tmp_path) is None


def test_the_highest_step_resumes_and_other_entries_are_left_alone(tmp_path: Path):
    root = tmp_path / trainer.CHECKPOINT_DIR
    for step in (9, 10, 2):  # by number, 10 is newest; by name, 9 would be
        hf_checkpoint(root / f"checkpoint-{step}", 1)
    # Not checkpoints: a file with a checkpoint's name, a folder of another name or
    # of digits only, one whose step is not a number. None may be set aside.
    (root / "checkpoint-11").write_text("not a folder")
    (root / "12").mkdir()
    (root / "run-13").mkdir()
    (root / "checkpoint-last").mkdir()
    before = sorted(path.name for path in root.iterdir())
    assert resumable_checkpoint(tmp_path) == root / "checkpoint-10"
    assert sorted(path.name for path in root.iterdir()) == before
    assert not (tmp_path / trainer.TORN_DIR).exists()


def test_newer_torn_checkpoints_are_set_aside_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    root = tmp_path / trainer.CHECKPOINT_DIR
    complete = hf_checkpoint(root / "checkpoint-3", 1)
    for step in (6, 9):
        cut(hf_checkpoint(root / f"checkpoint-{step}", 1) / "optimizer.pt", 100)
    with caplog.at_level(logging.WARNING, logger=trainer.__name__):
        assert resumable_checkpoint(tmp_path) == complete
    torn = sorted((tmp_path / trainer.TORN_DIR).iterdir())
    assert sorted(path.name.rsplit("-", 1)[0] for path in torn) == [
        "checkpoint-6",
        "checkpoint-9",
    ]
    assert all((path / "optimizer.pt").is_file() for path in torn)  # kept, not deleted
    assert sorted(path.name for path in root.iterdir()) == ["checkpoint-3"]
    aside = {path.name.rsplit("-", 1)[0]: path for path in torn}
    assert [record.getMessage() for record in caplog.records] == [
        f"{root / name} is incomplete (a kill?); set aside as {aside[name]}"
        for name in ("checkpoint-9", "checkpoint-6")
    ]


def test_when_every_checkpoint_is_torn_training_starts_again(tmp_path: Path):
    root = tmp_path / trainer.CHECKPOINT_DIR
    cut(hf_checkpoint(root / "checkpoint-3", 1) / "model.safetensors", 50)
    assert resumable_checkpoint(tmp_path) is None
    assert not any(root.iterdir())


def test_only_rank_zero_sets_a_torn_checkpoint_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    root = tmp_path / trainer.CHECKPOINT_DIR
    complete = hf_checkpoint(root / "checkpoint-3", 1)
    cut(hf_checkpoint(root / "checkpoint-6", 1) / "optimizer.pt", 100)
    monkeypatch.setenv("RANK", "1")
    assert resumable_checkpoint(tmp_path) == complete
    assert (root / "checkpoint-6").is_dir()
    assert not (tmp_path / trainer.TORN_DIR).exists()
