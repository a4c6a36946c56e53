"""Report statistics: class means, macro averages, bootstrap CIs, paired differences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from belle_kedro.pipelines.evaluate.statistics import (
    bootstrap_means,
    interval,
    macro_average,
    paired_difference,
    score_tables,
)
from tests.pipelines.evaluate.rows import report_settings, two_variants


def test_macro_average_arithmetic(scores: pd.DataFrame) -> None:
    table, macro = score_tables(
        scores,
        report_settings(bootstrap_resamples=200, macro_exclusions=["math", "code"]),
    )
    small = macro.set_index("variant").loc["small"]
    # class means: math 0.1, code 0.1, open qa 0.6 (NaN left out), rewrite 0.9
    assert small["macro"] == pytest.approx((0.1 + 0.1 + 0.6 + 0.9) / 4)
    assert small["macro_excl"] == pytest.approx((0.6 + 0.9) / 2)
    large = macro.set_index("variant").loc["large"]
    assert large["macro"] == pytest.approx((1.0 + 0.5 + 0.6 + 0.4) / 4)
    assert large["macro_excl"] == pytest.approx((0.6 + 0.4) / 2)
    # macro is over classes, not answers: the micro mean of small would differ
    assert small["macro"] != pytest.approx(
        scores[scores.variant == "small"]["score"].mean()
    )
    assert macro["variant"].tolist() == ["small", "large"]  # smallest set first
    assert (small["scored_answers"], small["scored_classes"]) == (6, 4)
    cell = table.set_index(["variant", "class"]).loc[[("small", "open qa")]].iloc[0]
    assert (cell["mean"], cell["count"]) == (pytest.approx(0.6), 2)


def test_macro_average_skips_nan_and_excluded_classes() -> None:
    assert macro_average({"a": 0.2, "b": math.nan, "c": 0.6}) == pytest.approx(0.4)
    assert macro_average({"a": 0.2, "math": 1.0}, exclude=["math"]) == pytest.approx(
        0.2
    )
    assert math.isnan(macro_average({"a": math.nan}))


def test_interval_is_the_central_percentile_range() -> None:
    draws = np.arange(101, dtype=float)  # 0..100: percentiles are the values
    assert interval(draws, 0.9) == (pytest.approx(5.0), pytest.approx(95.0))
    assert all(math.isnan(bound) for bound in interval(np.full(4, np.nan), 0.95))


def test_bootstrap_intervals_are_seeded_and_bracket_the_mean(
    scores: pd.DataFrame,
) -> None:
    settings = report_settings(bootstrap_resamples=500, seed=7, macro_exclusions=[])
    first, macro_first = score_tables(scores, settings)
    again, macro_again = score_tables(scores, settings)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(macro_first, macro_again)
    spread = first.dropna(subset=["ci_low"])
    assert (spread["ci_low"] <= spread["mean"] + 1e-12).all() and (
        spread["mean"] <= spread["ci_high"] + 1e-12
    ).all()
    single = first.set_index(["variant", "class"]).loc[[("small", "rewrite")]].iloc[0]
    # one answer: no spread
    assert single["ci_low"] == single["ci_high"] == pytest.approx(0.9)
    row = macro_first.iloc[0]
    assert row["macro_ci_low"] <= row["macro"] <= row["macro_ci_high"]


def test_bootstrap_interval_width_shrinks_with_more_data() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(size=400)
    narrow = np.percentile(
        bootstrap_means(values, 1000, np.random.default_rng(1)), [2.5, 97.5]
    )
    wide = np.percentile(
        bootstrap_means(values[:16], 1000, np.random.default_rng(1)), [2.5, 97.5]
    )
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    # about 1.96 * sd / sqrt(n) for a uniform(0, 1): 1.96 * 0.2887 / 20 = 0.0283 each side
    assert narrow[1] - narrow[0] == pytest.approx(2 * 0.0283, rel=0.2)


def test_a_class_missing_for_one_variant_is_left_out_of_every_macro() -> None:
    scores = two_variants(
        {"math": [0.2, 0.4], "code": [math.nan]}, {"math": [0.6, 0.8], "code": [1.0]}
    )
    _, macro = score_tables(
        scores, report_settings(bootstrap_resamples=50, macro_exclusions=[])
    )
    by_variant = macro.set_index("variant")
    assert by_variant.loc["large", "macro"] == pytest.approx(0.7)  # code left out
    assert by_variant.loc["small", "macro"] == pytest.approx(0.3)
    assert set(macro["classes_left_out"]) == {"code"}
    assert set(macro["macro_classes"]) == {"math"}


def test_paired_bootstrap_sees_a_real_gap_and_not_noise() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.8, size=60)
    real = two_variants({"open qa": list(base)}, {"open qa": list(base + 0.1)})
    gap = paired_difference(
        real, "large", "small", ["open qa"], n_resamples=500, confidence=0.95, seed=0
    )
    assert gap["difference"] == pytest.approx(0.1)
    assert gap["ci_low"] > 0 and gap["p"] < 0.05 and gap["questions"] == 60
    noise = two_variants(
        {"open qa": list(base)}, {"open qa": list(base + rng.normal(0, 0.2, 60))}
    )
    unsure = paired_difference(
        noise, "large", "small", ["open qa"], n_resamples=500, confidence=0.95, seed=0
    )
    assert unsure["ci_low"] < 0 < unsure["ci_high"] and unsure["p"] > 0.05


def test_the_macro_table_compares_each_variant_with_the_smaller_and_the_best() -> None:
    base = [0.2, 0.4, 0.6, 0.8]
    scores = two_variants({"open qa": base}, {"open qa": [v + 0.1 for v in base]})
    _, macro = score_tables(
        scores, report_settings(bootstrap_resamples=200, macro_exclusions=[])
    )
    small, large = macro.iloc[0], macro.iloc[1]
    assert math.isnan(small["macro_vs_smaller_difference"])  # nothing smaller
    assert large["macro_vs_smaller_difference"] == pytest.approx(0.1)
    assert small["macro_behind_best_difference"] == pytest.approx(0.1)
    # the best is not behind itself
    assert (large["macro_behind_best_difference"], large["macro_behind_best_p"]) == (
        0.0,
        1.0,
    )
