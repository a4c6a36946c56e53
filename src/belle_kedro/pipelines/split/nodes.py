"""Nodes of the split pipeline: pool -> held-out set -> nested variants -> report.

Each node builds :class:`~belle_kedro.pipelines.split.settings.SplitSettings` from the
raw ``params:split`` block and hands it to :mod:`belle_kedro.pipelines.split.sampling`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from belle_kedro.common.config import build
from belle_kedro.pipelines.split.sampling import (
    holdout_split,
    nested_variants,
    pool_with_mix_in,
    split_summary,
)
from belle_kedro.pipelines.split.settings import SplitSettings


def _settings(params: Mapping[str, Any]) -> SplitSettings:
    return build(SplitSettings, params, "split")


def mix_into_pool(
    clean_instructions: pd.DataFrame,
    mix_in_instructions: pd.DataFrame,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Add the mix-in dataset to the split's pool when ``mix_in.mode`` is ``pool``."""
    return pool_with_mix_in(clean_instructions, mix_in_instructions, _settings(params))


def split_holdout(
    pool: pd.DataFrame, params: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(holdout, train_pool)``: a stratified, seeded held-out share of the pool."""
    return holdout_split(pool, _settings(params))


def build_variants(
    train_pool: pd.DataFrame,
    holdout: pd.DataFrame,
    mix_in_instructions: pd.DataFrame,
    params: Mapping[str, Any],
) -> dict[str, pd.DataFrame]:
    """Nested, seeded sample-size variants, keyed by the names in ``variant_sizes``."""
    return nested_variants(train_pool, holdout, mix_in_instructions, _settings(params))


def summarise_split(
    holdout: pd.DataFrame, seed: int, **variants: pd.DataFrame
) -> dict[str, Any]:
    """Sizes, digests and the overlap check of the split, for the report and MLflow."""
    return split_summary(holdout, seed, variants)
