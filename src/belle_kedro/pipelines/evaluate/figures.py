"""The report's figures: each described once, then rendered to matplotlib and plotly.

A description (:class:`LineChart`, :class:`Heatmap`) holds every series, label and
cell text; :func:`to_matplotlib` (the PNG) and :func:`to_plotly` (kedro-viz) only draw
it, so the two files cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from belle_kedro.pipelines.evaluate.digits import decimals_apart, fmt
from belle_kedro.pipelines.evaluate.published import PublishedScores

OVERALL = "overall (macro)"
# 11+ classes: matplotlib's tab20 keeps neighbouring lines distinguishable (its
# default cycle has 10).
PALETTE = (
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728",
    "#ff9896", "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2",
    "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
)  # fmt: skip
SCALING_TITLE = "Score against training-set size"
HEATMAP_TITLE = "Mean score per class and variant (CI in brackets)"
# Heat map cells keep at least the two decimals they always had.
HEATMAP_LEAST_DECIMALS = 2


@dataclass(frozen=True)
class Line:
    """One series of a line chart and how it looks."""

    name: str
    xs: tuple[int, ...]
    ys: tuple[float, ...]
    color: str
    width: float
    dashed: bool = False
    marker: Literal["circle", "square"] = "circle"


@dataclass(frozen=True)
class LineChart:
    """A line chart: its series, axis titles and x ticks."""

    title: str
    x_label: str
    y_label: str
    lines: tuple[Line, ...]
    x_ticks: tuple[int, ...]
    x_tick_labels: tuple[str, ...]
    log_x: bool


@dataclass(frozen=True)
class Heatmap:
    """A heat map: one row per ``rows`` entry, one column per ``columns`` entry.

    ``values`` holds NaN for a cell without a value; its text is then empty. A cell's
    text may span lines (``\\n``).
    """

    title: str
    colorbar_label: str
    columns: tuple[str, ...]
    rows: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]
    cell_text: tuple[tuple[str, ...], ...]


def size_label(size: int) -> str:
    """A training-set size as the report writes it: ``200K``, ``1.5M``."""
    if size >= 1_000_000:
        return f"{size / 1_000_000:g}M"
    if size >= 1_000:
        return f"{size / 1_000:g}K"
    return str(size)


def scaling_chart(
    table: pd.DataFrame,
    macro: pd.DataFrame,
    *,
    score_label: str,
    published: PublishedScores,
) -> LineChart:
    """Score against training-set size: one line per class, the overall macro, published.

    A class nobody could score (e.g. no standard answers offline) gets no line.
    """
    lines: list[Line] = []
    for cls, part in table.groupby("class", sort=True):
        if part["mean"].isna().all():
            continue
        ordered_part = part.sort_values("train_size")
        lines.append(
            Line(
                str(cls),
                tuple(int(size) for size in ordered_part["train_size"]),
                tuple(float(mean) for mean in ordered_part["mean"]),
                color=PALETTE[len(lines) % len(PALETTE)],
                width=1.0,
            )
        )
    ordered = macro.sort_values("train_size")
    lines.append(
        Line(
            OVERALL,
            tuple(int(size) for size in ordered["train_size"]),
            tuple(float(value) for value in ordered["macro"]),
            color="black",
            width=2.8,
        )
    )
    points = sorted(published.by_size.items())
    if points:
        lines.append(
            Line(
                published.label,
                tuple(size for size, _ in points),
                tuple(value for _, value in points),
                color="crimson",
                width=2.0,
                dashed=True,
                marker="square",
            )
        )
    sizes = sorted(int(size) for size in macro["train_size"].unique())
    ticks = tuple(sorted(set(sizes) | set(published.by_size)))
    return LineChart(
        title=SCALING_TITLE,
        x_label="training samples",
        y_label=score_label,
        lines=tuple(lines),
        x_ticks=ticks,
        x_tick_labels=tuple(size_label(size) for size in ticks),
        log_x=len(sizes) > 1 and sizes[0] > 0,
    )


def class_heatmap(table: pd.DataFrame, *, score_label: str) -> Heatmap:
    """Class x variant mean scores, each cell annotated with its CI.

    Variants run smallest first; a cell with no score stays blank. Each class's cells
    print as many decimals as it takes for its variants' different means to read
    differently (:func:`~belle_kedro.pipelines.evaluate.digits.decimals_apart`).
    """
    variants = tuple(
        table.drop_duplicates("variant").sort_values("train_size")["variant"]
    )
    classes = tuple(sorted(table["class"].unique()))
    cells: dict[tuple[str, str], Mapping[Any, Any]] = {
        (str(row["class"]), str(row["variant"])): row
        for row in table.to_dict("records")
    }
    values = tuple(
        tuple(float(cells[(cls, v)]["mean"]) for v in variants) for cls in classes
    )

    def text(cell: Mapping[Any, Any], decimals: int) -> str:
        if math.isnan(cell["mean"]):
            return ""
        return (
            f"{fmt(cell['mean'], decimals)}\n"
            f"[{fmt(cell['ci_low'], decimals)}, {fmt(cell['ci_high'], decimals)}]"
        )

    texts = []
    for cls, means in zip(classes, values, strict=True):
        decimals = decimals_apart(means, least=HEATMAP_LEAST_DECIMALS)
        texts.append(tuple(text(cells[(cls, v)], decimals) for v in variants))
    return Heatmap(
        title=HEATMAP_TITLE,
        colorbar_label=score_label,
        columns=variants,
        rows=classes,
        values=values,
        cell_text=tuple(texts),
    )


def to_matplotlib(figure: LineChart | Heatmap) -> Any:
    """The figure drawn with matplotlib (saved as the PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    if isinstance(figure, Heatmap):
        import numpy as np

        drawn, axes = plt.subplots(
            figsize=(1.6 + 1.5 * len(figure.columns), 1.0 + 0.55 * len(figure.rows))
        )
        values = np.array(figure.values, dtype=float).reshape(
            len(figure.rows), len(figure.columns)
        )
        image = axes.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
        axes.set_xticks(range(len(figure.columns)), figure.columns)
        axes.set_yticks(range(len(figure.rows)), figure.rows)
        for row, texts in enumerate(figure.cell_text):
            for column, text in enumerate(texts):
                axes.text(column, row, text, ha="center", va="center", fontsize=7,
                          color="white")  # fmt: skip
        drawn.colorbar(image, ax=axes, label=figure.colorbar_label)
        axes.set_title(figure.title)
        drawn.tight_layout()
        return drawn

    drawn, axes = plt.subplots(figsize=(9, 5.5))
    for line in figure.lines:
        axes.plot(
            line.xs,
            line.ys,
            marker={"circle": "o", "square": "s"}[line.marker],
            linestyle="--" if line.dashed else "-",
            linewidth=line.width,
            color=line.color,
            label=line.name,
        )
    if figure.log_x:
        axes.set_xscale("log")
    axes.set_xticks(figure.x_ticks)
    axes.set_xticklabels(figure.x_tick_labels)
    axes.minorticks_off()
    axes.set_xlabel(figure.x_label)
    axes.set_ylabel(figure.y_label)
    axes.set_title(figure.title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    drawn.tight_layout()
    return drawn


def to_plotly(figure: LineChart | Heatmap) -> Any:
    """The figure drawn with plotly (saved as JSON, previewed by kedro-viz)."""
    import plotly.graph_objects as go

    if isinstance(figure, Heatmap):
        drawn = go.Figure(
            go.Heatmap(
                z=[list(row) for row in figure.values],
                x=list(figure.columns),
                y=list(figure.rows),
                text=[
                    [text.replace("\n", "<br>") for text in row]
                    for row in figure.cell_text
                ],
                texttemplate="%{text}",
                colorscale="Viridis",
                colorbar={"title": figure.colorbar_label},
            )
        )
        drawn.update_layout(title=figure.title)
        return drawn

    drawn = go.Figure()
    for line in figure.lines:
        drawn.add_trace(
            go.Scatter(
                x=list(line.xs),
                y=list(line.ys),
                mode="lines+markers",
                name=line.name,
                marker={"symbol": line.marker},
                line={
                    "width": line.width,
                    "color": line.color,
                    **({"dash": "dash"} if line.dashed else {}),
                },
            )
        )
    drawn.update_layout(
        title=figure.title,
        xaxis={
            "title": figure.x_label,
            "type": "log" if figure.log_x else "linear",
            "tickvals": list(figure.x_ticks),
            "ticktext": list(figure.x_tick_labels),
        },
        yaxis={"title": figure.y_label},
    )
    return drawn
