"""The champion rules, on macro tables built by the report statistics."""

from __future__ import annotations

import math
from typing import get_args

import numpy as np
import pandas as pd
import pytest

from belle_kedro.pipelines.evaluate.champion import CHAMPION_RULES, choose_champion
from belle_kedro.pipelines.evaluate.settings import ChampionRule
from belle_kedro.pipelines.evaluate.statistics import score_tables
from tests.pipelines.evaluate.rows import (
    champion_settings,
    report_settings,
    two_variants,
)

ARGMAX = champion_settings(rule="best_point_estimate")
NOT_WORSE = champion_settings(rule="smallest_not_worse_than_best")


def test_every_rule_the_settings_accept_is_described() -> None:
    assert set(CHAMPION_RULES) == set(get_args(ChampionRule))


def test_argmax_is_the_best_macro_and_ties_go_to_the_smaller_set(
    scores: pd.DataFrame,
) -> None:
    _, macro = score_tables(
        scores,
        report_settings(bootstrap_resamples=50, macro_exclusions=["math", "code"]),
    )
    assert choose_champion(macro, ARGMAX)["variant"] == "large"
    excl = champion_settings(rule="best_point_estimate", metric="macro_excl")
    assert choose_champion(macro, excl)["variant"] == "small"
    tied = macro.assign(macro=0.5)
    assert choose_champion(tied, ARGMAX)["variant"] == "small"
    with pytest.raises(ValueError, match="no variant has a 'macro' score"):
        choose_champion(macro.assign(macro=math.nan), ARGMAX)


def test_smallest_not_worse_than_best_ignores_a_win_on_noise() -> None:
    rng = np.random.default_rng(5)
    base = list(rng.uniform(0.3, 0.7, size=30))
    half = rng.normal(0, 0.2, 15)
    # zero-mean noise (each draw and its negative) on top of a +0.02 edge
    steps = np.concatenate([half, -half]) + 0.02
    noisy = [value + step for value, step in zip(base, steps, strict=True)]
    settings = report_settings(bootstrap_resamples=500, macro_exclusions=[])
    _, macro = score_tables(
        two_variants({"open qa": base}, {"open qa": noisy}), settings
    )
    assert choose_champion(macro, ARGMAX)["variant"] == "large"
    chosen = choose_champion(macro, NOT_WORSE)
    assert chosen["variant"] == "small"
    assert chosen["rule"] == "smallest_not_worse_than_best"
    assert chosen["rule_description"] == CHAMPION_RULES["smallest_not_worse_than_best"]
    assert chosen["score"] == pytest.approx(float(np.mean(base)))

    clear = two_variants({"open qa": base}, {"open qa": [v + 0.3 for v in base]})
    _, macro = score_tables(clear, settings)
    assert choose_champion(macro, NOT_WORSE)["variant"] == "large"
