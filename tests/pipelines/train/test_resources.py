"""The memory and disk plan: BELLE's figures, and a short disk refused before training."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from transformers import BloomConfig

from belle_kedro.pipelines.train import launcher, nodes, resources
from tests.support.project import REPO_ROOT
from tests.support.records import make_records
from tests.support.training import settings_of, tiny_config, with_changes

BLOOMZ_7B1_MT = BloomConfig(n_layer=30, hidden_size=4096, n_head=32, vocab_size=250880)
PARAMETERS = 7_069_016_064  # bigscience/bloom-7b1's model card
ZERO2 = str(REPO_ROOT / "conf" / "base" / "deepspeed" / "zero2.json")
ZERO3 = str(REPO_ROOT / "conf" / "base" / "deepspeed" / "zero3_offload.json")
# A tiny_bloom far larger than any test machine's disk: 60 x 8192 wide, built on meta.
HUGE = {"model": {"tiny_bloom": {"n_layer": 60, "hidden_size": 8192, "n_head": 64}}}


def belle_like(**changes) -> resources.TrainSettings:
    """conf/belle's shape of run: bf16 weights, ZeRO-2, 8 ranks, save_total_limit 3."""
    belle = {"model": {"dtype": "bfloat16"}, "deepspeed": ZERO2}
    return settings_of(
        with_changes(
            tiny_config(save_total_limit=3),
            launcher={"nproc_per_node": 8},
            **{**belle, **changes},
        )
    )


def test_bloomz_7b1_mt_on_8_gpus_with_zero2():
    settings = belle_like()
    size = resources.model_size(BLOOMZ_7B1_MT, settings)
    assert size.parameters == size.trainable == PARAMETERS
    plan = resources.plan(size, settings)
    # bf16 weights (2) whole; gradients (2) and fp32 master + Adam (12) split over 8.
    assert plan.gpu_per_rank == pytest.approx(PARAMETERS * (2 + 14 / 8))
    # Each of the 8 ranks loads the whole bf16 model through host RAM.
    assert plan.host_per_node == pytest.approx(8 * 2 * PARAMETERS)
    assert plan.checkpoint == pytest.approx(16 * PARAMETERS)  # ~113 GB
    assert plan.disk == pytest.approx((3 + 1) * 16 * PARAMETERS + 2 * PARAMETERS)


def test_zero3_offload_and_lora_change_the_plan():
    zero3 = resources.plan(
        resources.model_size(BLOOMZ_7B1_MT, belle_like(deepspeed=ZERO3)),
        belle_like(deepspeed=ZERO3),
    )
    assert zero3.zero == resources.ZeroStage(3, True, True)
    assert zero3.gpu_per_rank == pytest.approx(2 * PARAMETERS / 8)  # gradients only
    # Built partitioned (once per node), optimizer and weights offloaded.
    assert zero3.host_per_node == pytest.approx(PARAMETERS * (2 + 12 + 2))
    lora_settings = belle_like(finetuning={"method": "lora"})
    lora = resources.model_size(BLOOMZ_7B1_MT, lora_settings)
    # r 16 on every block's query_key_value (4096 -> 3 x 4096).
    assert lora.trainable == 30 * 16 * (4096 + 3 * 4096)
    assert resources.plan(lora, lora_settings).checkpoint < 1e9


def test_a_short_disk_is_refused_before_training(tmp_path, caplog):
    settings = settings_of(with_changes(tiny_config(), **HUGE))
    lineage = nodes.describe_training_data(make_records(8), make_records(2), "small")
    with caplog.at_level(logging.INFO, logger=resources.__name__):
        with pytest.raises(resources.ShortOfDisk, match="train.checkpoint_root"):
            nodes.fine_tune(
                make_records(8), make_records(2), lineage, settings.as_dict()
            )
    plan_lines = [r.message for r in caplog.records if "Resource plan" in r.message]
    assert any("GPU memory per rank" in line for line in plan_lines)
    assert any("one checkpoint" in line for line in plan_lines)
    run_dirs = list((tmp_path / settings.checkpoint_root / "small").iterdir())
    assert not launcher.is_finished(run_dirs[0])
    assert not (run_dirs[0] / "checkpoints").exists()  # no step was trained


def test_warn_logs_the_shortfall_and_lets_training_start(caplog):
    settings = settings_of(
        with_changes(tiny_config(), plan={"on_short_disk": "warn"}, **HUGE)
    )
    with caplog.at_level(logging.WARNING, logger=resources.__name__):
        plan = resources.announce(settings)
    assert plan.disk > resources.free_bytes(settings.checkpoint_root)
    assert any("train.plan.on_short_disk" in r.message for r in caplog.records)


def test_the_default_tiny_run_fits():
    settings = settings_of(tiny_config())
    plan = resources.announce(settings)
    assert plan.zero.stage == 0 and plan.disk < 1e9
    assert dataclasses.asdict(plan)["model"]["parameters"] > 0


def test_a_resumed_runs_checkpoints_count_as_space_it_has(tmp_path):
    settings = settings_of(tiny_config())
    plan = resources.plan(
        resources.model_size(resources.model_config(settings), settings), settings
    )
    free = resources.free_bytes(tmp_path)
    # 100 MB more than is free, as if this run's checkpoints (below: 200 MB, a sparse
    # file, so the free space stays; the margins absorb other writers) took it.
    short = dataclasses.replace(plan, disk=free + 100e6)
    assert resources.disk_shortfall(short, str(tmp_path), tmp_path) is not None
    checkpoint = tmp_path / "checkpoints" / "checkpoint-6"
    checkpoint.mkdir(parents=True)
    with (checkpoint / "optimizer.pt").open("wb") as handle:
        handle.truncate(200 * 10**6)
    assert resources.disk_shortfall(short, str(tmp_path), tmp_path) is None
