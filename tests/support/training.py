"""A tiny, fast train configuration: conf/base's train block with a few changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from belle_kedro.common.config import build
from belle_kedro.pipelines.train.settings import TrainSettings
from tests.support.project import base_parameters, merged

TINY_CHANGES: dict[str, Any] = {
    "seed": 7,
    "model": {"tiny_bloom": {"n_layer": 1, "hidden_size": 64, "n_head": 4}},
    "data": {"max_length": 256},
    "eval": {"max_examples": 8},
    "trainer": {
        "num_train_epochs": 1,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "eval_steps": 4,
        "save_steps": 3,
        "disable_tqdm": True,
    },
}


def tiny_config(**trainer_changes: Any) -> dict[str, Any]:
    """The declared train parameters, tiny-sized, with ``trainer_changes`` applied."""
    return merged(
        base_parameters("train"),
        {**TINY_CHANGES, "trainer": {**TINY_CHANGES["trainer"], **trainer_changes}},
    )


def with_changes(config: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """``config`` with nested ``changes`` merged in."""
    return merged(config, changes)


def settings_of(config: Mapping[str, Any]) -> TrainSettings:
    """The typed settings of a raw ``train`` block, as a node builds them."""
    return build(TrainSettings, config, "train")


def tiny_settings(**trainer_changes: Any) -> TrainSettings:
    """:func:`tiny_config` as typed settings."""
    return settings_of(tiny_config(**trainer_changes))
