"""Typed settings of the split pipeline: the whole ``split`` block.

Defaults live in ``conf/base/parameters_split.yml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from belle_kedro.common.config import InvalidSetting, Settings, setting


@dataclass(frozen=True)
class MixInSettings(Settings):
    """``split.mix_in``: extra records (our seed tasks, BELLE's English Alpaca)."""

    mode: Literal["pool", "every_variant"] = setting(
        "pool: add them to the pool before the split; every_variant: append the same "
        "sample to every variant"
    )
    size: int | None = setting("records sampled from the mix-in; null: all of it")


@dataclass(frozen=True)
class SplitSettings(Settings):
    """The whole ``split`` block."""

    seed: int = setting("seeds every hash of the split")
    holdout_size: int | None = setting("held-out records (or holdout_fraction)")
    holdout_fraction: float | None = setting("held-out share (or holdout_size)")
    variant_sizes: dict[str, int] = setting(
        "variant name (a Kedro namespace of train/evaluate) -> records"
    )
    mix_in: MixInSettings = setting("the mix-in dataset and where it goes")

    @property
    def variants_by_size(self) -> dict[str, int]:
        """``variant_sizes``, smallest variant first."""
        return dict(sorted(self.variant_sizes.items(), key=lambda item: item[1]))

    def check(self) -> None:
        if (self.holdout_size is None) == (self.holdout_fraction is None):
            raise InvalidSetting(
                "holdout_size", "or holdout_fraction: set exactly one, the other null"
            )
