"""A full disk while training writes: a clear error naming the path and the stage, no
half-written shard or checkpoint that counts, and after space is freed the rerun gives
what a run on a roomy disk gives. A real tmpfs (tests/support/small_disk.py): the
writers here are numpy, torch and safetensors, which a patched ``os.write`` misses."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import numpy as np
import pytest
from transformers import TrainerCallback

from belle_kedro.pipelines.train import launcher, token_cache, trainer
from belle_kedro.pipelines.train.settings import TokenCacheSettings
from tests.support.records import make_records
from tests.support.small_disk import small_disk
from tests.support.training import tiny_settings


def cache_at(root) -> TokenCacheSettings:
    return TokenCacheSettings(
        root=str(root), batch_size=16, max_bytes=None, max_age_days=None
    )


def view_examples(view: token_cache.TokenView, stem, tokenizer) -> list[list[int]]:
    token_cache.save_view(view, stem)
    dataset = token_cache.open_view(
        stem, token_cache.cache_fingerprint(tokenizer, 128)["id"]
    )
    return [list(np.asarray(dataset[i]["input_ids"])) for i in range(len(dataset))]


@pytest.mark.slow
def test_a_full_disk_during_a_token_cache_build_leaves_no_shard(
    tmp_path, byte_tokenizer
):
    records = make_records(400, seed=11)
    roomy = token_cache.build_view(
        cache_at(tmp_path / "roomy"), records, byte_tokenizer, 128
    )
    expected = view_examples(roomy, tmp_path / "roomy_view", byte_tokenizer)
    shard_bytes = sum(f.stat().st_size for f in roomy.shards[0].iterdir())
    with small_disk(tmp_path / "cache", "8m") as disk:
        disk.fill(leave=shard_bytes // 2)  # the tokens file fills it
        with pytest.raises(
            OSError, match="train: could not write token cache shard"
        ) as raised:
            token_cache.build_view(cache_at(disk.folder), records, byte_tokenizer, 128)
        assert raised.value.errno == errno.ENOSPC
        fingerprint = token_cache.cache_fingerprint(byte_tokenizer, 128)["id"]
        assert str(disk.folder / fingerprint) in str(raised.value)
        assert disk.files() == [fingerprint]  # the partial shard was removed
        disk.free()
        again = token_cache.build_view(
            cache_at(disk.folder), records, byte_tokenizer, 128
        )
        assert again.tokenized == roomy.tokenized > 0
        assert view_examples(again, tmp_path / "view", byte_tokenizer) == expected


class CheckpointSize(TrainerCallback):
    """Bytes of the first checkpoint saved (the run deletes its checkpoints when done)."""

    def __init__(self) -> None:
        self.size = 0

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.size = self.size or sum(
            f.stat().st_size for f in folder.rglob("*") if f.is_file()
        )


def losses(result: dict) -> list[float]:
    return [entry["loss"] for entry in result["log_history"] if "loss" in entry]


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_save_keeps_the_last_whole_one(tmp_path):
    train, holdout = make_records(48), make_records(8, seed=1)
    config = tiny_settings(eval_strategy="no")  # checkpoints at steps 3, 6, 9, 12
    measured = CheckpointSize()
    reference = trainer.run_training(
        launcher.prepare_run_dir("small", train, holdout, config), callbacks=[measured]
    )
    # The same run on a disk with room for checkpoint-3 and half of checkpoint-6.
    with small_disk(tmp_path / "data", "256m") as disk:
        run_dir = launcher.prepare_run_dir("small", train, holdout, config)
        disk.fill(leave=int(1.5 * measured.size))
        with pytest.raises(trainer.CheckpointSaveError) as raised:
            trainer.run_training(run_dir)
        checkpoints = run_dir / trainer.CHECKPOINT_DIR
        assert str(raised.value).startswith(
            f"train: could not save checkpoint {checkpoints / 'checkpoint-6'}"
        )
        free = re.search(r"(\d+) bytes were free on its disk", str(raised.value))
        assert free and int(free.group(1)) < measured.size // 2
        # Only the whole checkpoint-3 is left: the torn checkpoint-6 was removed.
        assert [path.name for path in checkpoints.iterdir()] == ["checkpoint-3"]
        disk.free()
        resumed = trainer.run_training(run_dir)
        assert (run_dir / trainer.MODEL_DIR / "model.safetensors").is_file()
    assert resumed["resumed_from_step"] == 3
    assert resumed["global_step"] == reference["global_step"] == 12
    assert losses(resumed) == pytest.approx(losses(reference), rel=1e-4)
