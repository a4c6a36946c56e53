"""Figures: one description each, drawn the same by matplotlib and plotly."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from belle_kedro.pipelines.evaluate.figures import (
    OVERALL,
    class_heatmap,
    scaling_chart,
    to_matplotlib,
    to_plotly,
)
from belle_kedro.pipelines.evaluate.published import PublishedScores
from belle_kedro.pipelines.evaluate.statistics import score_tables
from tests.pipelines.evaluate.rows import report_settings

PUBLISHED = PublishedScores("BELLE", {200: 0.676, 2000: 0.737})


def _tables(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return score_tables(
        scores, report_settings(bootstrap_resamples=50, macro_exclusions=[])
    )


def test_the_scaling_chart_has_a_line_per_class_plus_overall_and_published(
    scores: pd.DataFrame,
) -> None:
    table, macro = _tables(scores)
    chart = scaling_chart(table, macro, score_label="score", published=PUBLISHED)
    names = [line.name for line in chart.lines]
    assert names == ["code", "math", "open qa", "rewrite", OVERALL, "BELLE"]
    overall = chart.lines[names.index(OVERALL)]
    assert overall.xs == (200, 2000)
    assert list(overall.ys) == pytest.approx(macro["macro"].tolist())
    assert chart.x_tick_labels == ("200", "2K") and chart.log_x

    # a class nobody could score draws no line
    unscored = pd.concat(
        [table, table.iloc[[0]].assign(**{"class": "generation"}, mean=math.nan)]
    )
    without = scaling_chart(
        unscored, macro, score_label="score", published=PublishedScores("why not")
    )
    assert [line.name for line in without.lines] == names[:-1]


def test_both_renderers_draw_the_scaling_chart_s_series(scores: pd.DataFrame) -> None:
    table, macro = _tables(scores)
    chart = scaling_chart(table, macro, score_label="judge", published=PUBLISHED)
    png, interactive = to_matplotlib(chart), to_plotly(chart)
    drawn = png.axes[0].get_lines()
    assert [line.get_label() for line in drawn] == [line.name for line in chart.lines]
    assert [trace.name for trace in interactive.data] == [
        line.name for line in chart.lines
    ]
    for line, mpl_line, trace in zip(chart.lines, drawn, interactive.data, strict=True):
        assert list(mpl_line.get_xdata()) == list(trace.x) == list(line.xs)
        assert list(mpl_line.get_ydata()) == list(trace.y) == list(line.ys)
        assert trace.line.color == line.color == mpl_line.get_color()
    assert png.axes[0].get_ylabel() == interactive.layout.yaxis.title.text == "judge"
    assert interactive.layout.xaxis.type == "log" == png.axes[0].get_xscale()
    assert [tick.get_text() for tick in png.axes[0].get_xticklabels()] == list(
        interactive.layout.xaxis.ticktext
    )
    json.loads(interactive.to_json())  # what plotly.JSONDataset writes


def test_heatmap_cells_carry_each_mean_with_its_ci(scores: pd.DataFrame) -> None:
    table, _ = score_tables(
        scores,
        report_settings(
            bootstrap_resamples=200, confidence=0.9, seed=3, macro_exclusions=[]
        ),  # fmt: skip
    )
    table.loc[(table["variant"] == "small") & (table["class"] == "code"), "mean"] = (
        math.nan
    )
    heatmap = class_heatmap(table, score_label="judge score")
    assert heatmap.columns == ("small", "large")  # smallest first
    assert heatmap.rows == ("code", "math", "open qa", "rewrite")
    cell = table.set_index(["class", "variant"]).loc[[("math", "large")]].iloc[0]
    assert heatmap.values[1][1] == pytest.approx(cell["mean"])
    assert heatmap.cell_text[1][1] == (
        f"{cell['mean']:.2f}\n[{cell['ci_low']:.2f}, {cell['ci_high']:.2f}]"
    )
    assert heatmap.cell_text[0][0] == ""  # no score: blank, not a made-up number


def test_heatmap_cells_of_a_narrow_scale_read_differently() -> None:
    means = {"small": 0.0101, "medium": 0.0134, "large": 0.0271}
    table = pd.DataFrame(
        [
            {"variant": variant, "train_size": size, "class": "math", "mean": mean,
             "count": 5, "ci_low": mean - 0.001, "ci_high": mean + 0.001}
            for (variant, mean), size in zip(means.items(), (1, 2, 3), strict=True)
        ]
    )  # fmt: skip
    heatmap = class_heatmap(table, score_label="score")
    assert heatmap.cell_text[0] == (
        "0.010\n[0.009, 0.011]",
        "0.013\n[0.012, 0.014]",
        "0.027\n[0.026, 0.028]",
    )


def test_both_renderers_draw_the_heatmap_s_cells(scores: pd.DataFrame) -> None:
    table, _ = _tables(scores)
    heatmap = class_heatmap(table, score_label="judge score")
    png, interactive = to_matplotlib(heatmap), to_plotly(heatmap)
    trace = interactive.data[0]
    assert list(trace.x) == list(heatmap.columns) and list(trace.y) == list(
        heatmap.rows
    )
    np.testing.assert_allclose(np.array(trace.z, dtype=float), heatmap.values)
    axes = png.axes[0]
    np.testing.assert_allclose(
        axes.images[0].get_array().filled(np.nan), heatmap.values
    )
    assert [text.get_text() for text in axes.texts] == [
        text for row in heatmap.cell_text for text in row
    ]
    assert [[text.replace("<br>", "\n") for text in row] for row in trace.text] == [
        list(row) for row in heatmap.cell_text
    ]
    assert axes.get_title() == interactive.layout.title.text == heatmap.title
