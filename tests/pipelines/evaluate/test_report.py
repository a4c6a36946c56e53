"""Report arithmetic: class means, macro averages, bootstrap CIs, champion, figures, markdown."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from belle_kedro.pipelines.evaluate.report import (
    OVERALL,
    bootstrap_means,
    choose_champion,
    class_heatmap_figures,
    judge_reliability,
    macro_average,
    markdown_report,
    offline_summary,
    paired_difference,
    scaling_figures,
    score_tables,
)

MODEL = "belle-test"
RULE = "best_point_estimate"


def _rows(
    variant: str, train_size: int, version: str, scores_by_class: dict[str, list[float]]
) -> list[dict]:
    return [
        {
            "question_id": f"{cls}-{index}",
            "variant": variant,
            "train_size": train_size,
            "registered_model_name": MODEL,
            "model_version": version,
            "model_uri": f"models:/{MODEL}/{version}",
            "class": cls,
            "score": score,
        }
        for cls, scores in scores_by_class.items()
        for index, score in enumerate(scores)
    ]


@pytest.fixture
def scores() -> pd.DataFrame:
    small = _rows(
        "small",
        200,
        "1",
        {
            "math": [0.0, 0.2],
            "code": [0.1],
            "open qa": [0.5, 0.7, math.nan],
            "rewrite": [0.9],
        },
    )
    large = _rows(
        "large",
        2000,
        "2",
        {
            "math": [1.0, 1.0],
            "code": [0.5],
            "open qa": [0.6, 0.6],
            "rewrite": [0.3, 0.5],
        },
    )
    return pd.DataFrame(large + small)  # out of size order on purpose


def test_macro_average_arithmetic(scores: pd.DataFrame) -> None:
    table, macro = score_tables(
        scores,
        n_resamples=200,
        confidence=0.95,
        seed=0,
        macro_exclusions=["math", "code"],
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
    assert macro["variant"].tolist() == [
        "small",
        "large",
    ]  # smallest training set first
    assert (small["scored_answers"], small["scored_classes"]) == (6, 4)
    cell = table.set_index(["variant", "class"]).loc[("small", "open qa")]
    assert (cell["mean"], cell["count"]) == (pytest.approx(0.6), 2)


def test_macro_average_skips_nan_and_excluded_classes() -> None:
    assert macro_average({"a": 0.2, "b": math.nan, "c": 0.6}) == pytest.approx(0.4)
    assert macro_average({"a": 0.2, "math": 1.0}, exclude=["math"]) == pytest.approx(
        0.2
    )
    assert math.isnan(macro_average({"a": math.nan}))


def test_bootstrap_intervals_are_seeded_and_bracket_the_mean(
    scores: pd.DataFrame,
) -> None:
    first, macro_first = score_tables(
        scores, n_resamples=500, confidence=0.95, seed=7, macro_exclusions=[]
    )
    again, macro_again = score_tables(
        scores, n_resamples=500, confidence=0.95, seed=7, macro_exclusions=[]
    )
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(macro_first, macro_again)
    spread = first.dropna(subset=["ci_low"])
    assert (spread["ci_low"] <= spread["mean"] + 1e-12).all() and (
        spread["mean"] <= spread["ci_high"] + 1e-12
    ).all()
    single = first.set_index(["variant", "class"]).loc[("small", "rewrite")]
    assert (
        single["ci_low"] == single["ci_high"] == pytest.approx(0.9)
    )  # one answer: no spread
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


def test_champion_is_the_best_macro_and_ties_go_to_the_smaller_set(
    scores: pd.DataFrame,
) -> None:
    _, macro = score_tables(
        scores,
        n_resamples=50,
        confidence=0.95,
        seed=0,
        macro_exclusions=["math", "code"],
    )
    assert choose_champion(macro, "macro", RULE)["variant"] == "large"
    assert choose_champion(macro, "macro_excl", RULE)["variant"] == "small"
    tied = macro.assign(macro=0.5)
    assert choose_champion(tied, "macro", RULE)["variant"] == "small"
    with pytest.raises(ValueError, match="no variant has a 'macro' score"):
        choose_champion(macro.assign(macro=math.nan), "macro", RULE)


def test_figures_have_one_line_per_class_plus_overall_and_published(
    scores: pd.DataFrame,
) -> None:
    table, macro = score_tables(
        scores, n_resamples=50, confidence=0.95, seed=0, macro_exclusions=[]
    )
    published = {200: 0.676, 2000: 0.737}
    png, interactive = scaling_figures(
        table, macro, score_label="score", published=published, published_label="BELLE"
    )
    names = [trace.name for trace in interactive.data]
    assert names == ["code", "math", "open qa", "rewrite", OVERALL, "BELLE"]
    overall = interactive.data[names.index(OVERALL)]
    assert list(overall.x) == [200, 2000]
    assert list(overall.y) == pytest.approx(macro["macro"].tolist())
    assert [line.get_label() for line in png.axes[0].get_lines()] == names
    json.loads(interactive.to_json())  # what plotly.JSONDataset writes

    # a class nobody could score draws no line
    unscored = pd.concat(
        [
            table,
            table.iloc[[0]].assign(
                **{"class": "generation", "mean": math.nan, "count": 0}
            ),
        ]
    )
    _, without = scaling_figures(
        unscored, macro, score_label="score", published={}, published_label=""
    )
    assert "generation" not in [trace.name for trace in without.data]


def test_markdown_report_states_the_score_and_shows_published_figures(
    scores: pd.DataFrame,
) -> None:
    scored = scores.assign(
        rouge_l=0.5,
        char_f1=0.5,
        number_match=math.nan,
        answer_chars=10.0,
        reference_nll=2.0,
        reference_tokens=1,
        judge_parsed=False,
        judge_samples=0,
    )
    table, macro = score_tables(
        scored,
        n_resamples=50,
        confidence=0.95,
        seed=0,
        macro_exclusions=["math", "code"],
    )
    offline = offline_summary(scored)
    assert offline.set_index("variant").loc["small", "perplexity"] == pytest.approx(
        math.exp(2.0)
    )
    champion = {**choose_champion(macro, "macro", RULE), "alias": "champion"}
    report = markdown_report(
        table,
        macro,
        offline,
        judge_reliability(scored),
        champion,
        score_description="offline `rouge_l`",
        macro_exclusions=["math", "code"],
        confidence=0.95,
        published={200: 0.676, 2000: 0.737},
        published_label="BELLE published",
    )
    assert "offline `rouge_l`" in report
    assert "BELLE published" in report and "0.676" in report and "0.737" in report
    assert "| open qa |" in report and "macro w/o math, code" in report
    assert f"models:/{MODEL}@champion" in report


def _two_variants(
    small: dict[str, list[float]], large: dict[str, list[float]]
) -> pd.DataFrame:
    return pd.DataFrame(
        _rows("small", 200, "1", small) + _rows("large", 2000, "2", large)
    )


def test_a_class_missing_for_one_variant_is_left_out_of_every_macro() -> None:
    scores = _two_variants(
        {"math": [0.2, 0.4], "code": [math.nan]}, {"math": [0.6, 0.8], "code": [1.0]}
    )
    _, macro = score_tables(
        scores, n_resamples=50, confidence=0.95, seed=0, macro_exclusions=[]
    )
    by_variant = macro.set_index("variant")
    assert by_variant.loc["large", "macro"] == pytest.approx(0.7)  # code left out
    assert by_variant.loc["small", "macro"] == pytest.approx(0.3)
    assert set(macro["classes_left_out"]) == {"code"}
    assert set(macro["macro_classes"]) == {"math"}


def test_paired_bootstrap_sees_a_real_gap_and_not_noise() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.8, size=60)
    real = _two_variants({"open qa": list(base)}, {"open qa": list(base + 0.1)})
    gap = paired_difference(
        real, "large", "small", ["open qa"], n_resamples=500, confidence=0.95, seed=0
    )
    assert gap["difference"] == pytest.approx(0.1)
    assert gap["ci_low"] > 0 and gap["p"] < 0.05 and gap["questions"] == 60
    noise = _two_variants(
        {"open qa": list(base)}, {"open qa": list(base + rng.normal(0, 0.2, 60))}
    )
    unsure = paired_difference(
        noise, "large", "small", ["open qa"], n_resamples=500, confidence=0.95, seed=0
    )
    assert unsure["ci_low"] < 0 < unsure["ci_high"] and unsure["p"] > 0.05


def test_smallest_not_worse_than_best_ignores_a_win_on_noise() -> None:
    rng = np.random.default_rng(5)
    base = list(rng.uniform(0.3, 0.7, size=30))
    half = rng.normal(0, 0.2, 15)
    # zero-mean noise (each draw and its negative) on top of a +0.02 edge
    steps = np.concatenate([half, -half]) + 0.02
    noisy = [value + step for value, step in zip(base, steps, strict=True)]
    scores = _two_variants({"open qa": base}, {"open qa": noisy})
    _, macro = score_tables(
        scores, n_resamples=500, confidence=0.95, seed=0, macro_exclusions=[]
    )
    argmax = choose_champion(macro, "macro", "best_point_estimate")["variant"]
    chosen = choose_champion(macro, "macro", "smallest_not_worse_than_best")
    assert argmax == "large" and chosen["variant"] == "small"
    assert chosen["rule"] == "smallest_not_worse_than_best"
    clear = _two_variants({"open qa": base}, {"open qa": [v + 0.3 for v in base]})
    _, macro = score_tables(
        clear, n_resamples=500, confidence=0.95, seed=0, macro_exclusions=[]
    )
    assert (
        choose_champion(macro, "macro", "smallest_not_worse_than_best")["variant"]
        == "large"
    )


def test_heatmap_cells_carry_each_class_and_variant_mean_with_its_ci(
    scores: pd.DataFrame,
) -> None:
    table, _ = score_tables(
        scores, n_resamples=200, confidence=0.9, seed=3, macro_exclusions=()
    )
    table.loc[(table["variant"] == "small") & (table["class"] == "code"), "mean"] = (
        math.nan
    )
    png, interactive = class_heatmap_figures(table, score_label="judge score")
    heatmap = interactive.data[0]
    assert list(heatmap.x) == ["small", "large"]  # smallest first
    assert list(heatmap.y) == ["code", "math", "open qa", "rewrite"]
    cell = table.set_index(["class", "variant"]).loc[("math", "large")]
    assert heatmap.z[1][1] == pytest.approx(cell["mean"])
    assert heatmap.text[1][1] == (
        f"{cell['mean']:.2f}<br>[{cell['ci_low']:.2f}, {cell['ci_high']:.2f}]"
    )
    assert heatmap.text[0][0] == ""  # no score: blank, not a made-up number
    assert png.axes[0].get_title().startswith("Mean score per class and variant")
