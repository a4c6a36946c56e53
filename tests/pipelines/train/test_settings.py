"""TrainSettings: every env's train block builds; a mis-set key is named as the user writes it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from kedro.config import OmegaConfigLoader

from belle_kedro.common.config import ParameterError, build
from belle_kedro.pipelines.train import launcher
from belle_kedro.pipelines.train.settings import TrainSettings
from tests.support.project import REPO_ROOT, base_parameters
from tests.support.records import make_records
from tests.support.training import settings_of, with_changes

ENVS = ("base", "openai", "belle", "zh_instructions")


def env_train_block(env: str) -> dict[str, Any]:
    """``params:train`` as ``kedro run --env <env>`` resolves it."""
    loader = OmegaConfigLoader(
        conf_source=str(REPO_ROOT / "conf"),
        base_env="base",
        default_run_env=env,
        merge_strategy={"parameters": "soft"},
    )
    return dict(loader["parameters"]["train"])


@pytest.mark.parametrize("env", ENVS)
def test_every_envs_train_block_builds(env):
    settings = build(TrainSettings, env_train_block(env), "train")
    assert settings.trainer["train_sampling_strategy"] == "group_by_length"
    if env == "belle":
        assert settings.model.source == "pretrained"
        assert settings.needs_launcher  # 8 processes, DeepSpeed
        assert settings.deepspeed == "conf/base/deepspeed/zero2.json"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seed": "7"}, "train.seed must be an integer"),
        ({"model": {"dtype": "int8"}}, "train.model.dtype must be one of"),
        ({"model": {"tiny_bloom": {"n_heads": 4}}}, "train.model.tiny_bloom.n_heads"),
        (
            {"model": {"tiny_bloom": {"hidden_size": 130}}},
            "train.model.tiny_bloom.hidden_size must be a multiple of n_head",
        ),
        (
            {"model": {"tokenizer": None}},
            "train.model.tokenizer must name a tokenizer for a tiny_bloom model",
        ),
        (
            {"model": {"source": "pretrained"}},
            "train.model.name_or_path must name a hub id",
        ),
        (
            {"launcher": {"nnodes": 2}},
            "train.launcher.master_addr must name the rendezvous host",
        ),
        (
            {"launcher": {"nnodes": 2, "node_rank": 2, "master_addr": "10.0.0.1"}},
            "train.launcher.node_rank must be in [0, nnodes=2)",
        ),
        ({"launcher": {"command": "mpirun"}}, "train.launcher.command must be one of"),
        (
            {"finetuning": {"method": "lora", "lora": {"target_modules": []}}},
            "train.finetuning.lora.target_modules must name at least one module",
        ),
        (
            {"finetuning": {"method": "lora", "keep_adapter": True}},
            "train.finetuning.keep_adapter needs a pretrained (hub id) base",
        ),
        ({"trainer": {"output_dir": "x"}}, "train.trainer.output_dir is set by"),
        ({"trainer": {"deepspeed": "x"}}, "(use train.deepspeed)"),
        (
            {"token_cache": {"batch_size": 0}},
            "train.token_cache.batch_size must be ≥ 1",
        ),
    ],
)
def test_a_mis_set_key_is_named(changes, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        settings_of(with_changes(base_parameters("train"), **changes))


def test_lora_settings_are_checked_only_with_method_lora():
    unused = {"lora": {"target_modules": [], "r": 0}}
    settings = settings_of(with_changes(base_parameters("train"), finetuning=unused))
    assert settings.finetuning.method == "full"


def test_the_run_folder_name_hashes_the_block_as_written():
    """The fingerprint of the typed settings is the one the raw block gave before.

    Run folders named by it are reused by a rerun (and their registered versions too),
    so a finished default run survives the move to typed settings.
    """
    import hashlib

    from belle_kedro.common.records import records_digest

    block = base_parameters("train")
    train, holdout = make_records(8), make_records(2, seed=1)
    # "plan" came later and is never hashed, so folders named before it keep their names.
    ignored = ("launcher", "checkpoint_root", "registered_model_name", "force", "plan")
    # The raw-dict hash, exactly as launcher.run_fingerprint computed it before.
    raw = {
        key: value
        for key, value in block.items()
        if key not in (*ignored, "token_cache")
    }
    payload = json.dumps(
        {
            "train": records_digest(train),
            "eval": records_digest(holdout),
            "config": raw,
        },
        sort_keys=True,
        default=str,
    )
    before = hashlib.sha256(payload.encode()).hexdigest()[:16]
    assert launcher.run_fingerprint(train, holdout, settings_of(block)) == before
    assert settings_of(block).as_dict() == block
