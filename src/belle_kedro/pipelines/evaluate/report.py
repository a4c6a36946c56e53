"""The evaluation report: class x variant table, macro averages, scaling plot, markdown.

Inputs are per-answer score rows (one per question and variant) with the columns of
:data:`SCORE_ROW_COLUMNS`. A NaN ``score`` (an unparsed judgement, a class without a
standard answer under the offline score) is left out of every mean and count.

Confidence intervals are percentile bootstraps of the mean, seeded per (variant, class)
so a cell's interval does not depend on which other cells exist. The macro average is
the unweighted mean of the class means (every class counts once, as in BELLE's
figures); its interval comes from a stratified bootstrap: each class is resampled on
its own and the resampled class means are averaged.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from belle_kedro.common.records import require_columns
from belle_kedro.pipelines.evaluate.scores import pooled_perplexity

SCORE_ROW_COLUMNS = (
    "variant",
    "train_size",
    "registered_model_name",
    "model_version",
    "model_uri",
    "class",
    "score",
)
TABLE_COLUMNS = ["variant", "train_size", "class", "mean", "count", "ci_low", "ci_high"]
OVERALL = "overall (macro)"


def bootstrap_means(
    values: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_resamples`` means of resamples (with replacement) of ``values``."""
    if values.size == 0:
        return np.full(n_resamples, np.nan)
    picks = rng.integers(0, values.size, size=(n_resamples, values.size))
    return values[picks].mean(axis=1)


def _cell_rng(seed: int, variant: str, cls: str) -> np.random.Generator:
    return np.random.default_rng(
        [seed, zlib.crc32(variant.encode()), zlib.crc32(cls.encode())]
    )


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    if np.all(np.isnan(draws)):
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.nanpercentile(draws, [tail, 100.0 - tail])
    return float(low), float(high)


def _variants_in_order(scores: pd.DataFrame) -> list[str]:
    firsts = scores.drop_duplicates("variant").sort_values(
        ["train_size", "variant"], kind="stable"
    )
    return firsts["variant"].tolist()


def macro_average(
    class_means: Mapping[str, float], exclude: Sequence[str] = ()
) -> float:
    """Unweighted mean of the class means, skipping NaN classes and ``exclude``."""
    kept = [
        mean
        for cls, mean in class_means.items()
        if cls not in set(exclude) and mean is not None and not math.isnan(mean)
    ]
    return sum(kept) / len(kept) if kept else math.nan


def score_tables(
    scores: pd.DataFrame,
    *,
    n_resamples: int,
    confidence: float,
    seed: int,
    macro_exclusions: Sequence[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The class x variant table (long form) and the per-variant macro table.

    Returns ``(table, macro)``: ``table`` has :data:`TABLE_COLUMNS`; ``macro`` has one
    row per variant (smallest first) with the model identity, ``macro`` and
    ``macro_excl`` (without ``macro_exclusions``, BELLE: math and code), their CIs,
    the number of classes with a score and of scored answers.
    """
    require_columns(scores, SCORE_ROW_COLUMNS, "score rows")
    classes = sorted(scores["class"].unique())
    table_rows: list[dict[str, Any]] = []
    macro_rows: list[dict[str, Any]] = []
    for variant in _variants_in_order(scores):
        of_variant = scores[scores["variant"] == variant]
        identity = of_variant.iloc[0]
        means: dict[str, float] = {}
        draws: dict[str, np.ndarray] = {}
        for cls in classes:
            values = (
                of_variant.loc[of_variant["class"] == cls, "score"]
                .astype(float)
                .dropna()
                .to_numpy()
            )
            draws[cls] = bootstrap_means(
                values, n_resamples, _cell_rng(seed, variant, cls)
            )
            means[cls] = float(values.mean()) if values.size else math.nan
            low, high = _interval(draws[cls], confidence)
            table_rows.append(
                {
                    "variant": variant,
                    "train_size": int(identity["train_size"]),
                    "class": cls,
                    "mean": means[cls],
                    "count": int(values.size),
                    "ci_low": low,
                    "ci_high": high,
                }
            )
        row: dict[str, Any] = {
            "variant": variant,
            "train_size": int(identity["train_size"]),
            "registered_model_name": str(identity["registered_model_name"]),
            "model_version": str(identity["model_version"]),
            "model_uri": str(identity["model_uri"]),
        }
        for key, exclude in (("macro", ()), ("macro_excl", tuple(macro_exclusions))):
            row[key] = macro_average(means, exclude)
            kept = [
                draws[cls]
                for cls in classes
                if cls not in exclude and not math.isnan(means[cls])
            ]
            row[f"{key}_ci_low"], row[f"{key}_ci_high"] = (
                _interval(np.mean(kept, axis=0), confidence)
                if kept
                else (math.nan, math.nan)
            )
        row["scored_classes"] = sum(not math.isnan(mean) for mean in means.values())
        row["scored_answers"] = int(of_variant["score"].notna().sum())
        macro_rows.append(row)
    return pd.DataFrame(table_rows, columns=TABLE_COLUMNS), pd.DataFrame(macro_rows)


def offline_summary(scored_answers: pd.DataFrame) -> pd.DataFrame:
    """Per-variant means of the offline metrics (NaN rows skipped) and pooled perplexity."""
    rows = []
    for variant in _variants_in_order(scored_answers):
        part = scored_answers[scored_answers["variant"] == variant]
        rows.append(
            {
                "variant": variant,
                "rouge_l": part["rouge_l"].mean(),
                "char_f1": part["char_f1"].mean(),
                "number_match": part["number_match"].mean(),
                "answer_chars": part["answer_chars"].mean(),
                "perplexity": pooled_perplexity(
                    part["reference_nll"].tolist(),
                    part["reference_tokens"].fillna(0).astype(int).tolist(),
                ),
                "judge_parse_rate": (
                    part["judge_parsed"].mean()
                    if part["judge_samples"].fillna(0).sum()
                    else math.nan
                ),
            }
        )
    return pd.DataFrame(rows)


def choose_champion(macro: pd.DataFrame, metric: str) -> dict[str, Any]:
    """The variant with the highest ``metric``; ties go to the smaller training set."""
    ranked = macro.dropna(subset=[metric])
    if ranked.empty:
        raise ValueError(
            f"no variant has a '{metric}' score, so no champion can be chosen"
        )
    best = ranked.sort_values(
        [metric, "train_size"], ascending=[False, True], kind="stable"
    ).iloc[0]
    return {
        "variant": str(best["variant"]),
        "registered_model_name": str(best["registered_model_name"]),
        "version": str(best["model_version"]),
        "model_uri": str(best["model_uri"]),
        "metric": metric,
        "score": float(best[metric]),
    }


def _size_label(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:g}M"
    if size >= 1_000:
        return f"{size / 1_000:g}K"
    return str(size)


def _plot_series(
    table: pd.DataFrame, macro: pd.DataFrame
) -> list[tuple[str, list[int], list[float]]]:
    series = []
    for cls, part in table.groupby("class", sort=True):
        if part["mean"].isna().all():
            continue  # a class nobody could score (e.g. no standard answers offline)
        ordered_part = part.sort_values("train_size")
        series.append(
            (
                str(cls),
                ordered_part["train_size"].tolist(),
                ordered_part["mean"].tolist(),
            )
        )
    ordered = macro.sort_values("train_size")
    series.append((OVERALL, ordered["train_size"].tolist(), ordered["macro"].tolist()))
    return series


def scaling_figures(
    table: pd.DataFrame,
    macro: pd.DataFrame,
    *,
    score_label: str,
    published: Mapping[int, float],
    published_label: str,
) -> tuple[Any, Any]:
    """Score against training-set size: one line per class, plus overall (and published).

    Returns ``(matplotlib Figure, plotly Figure)`` with the same lines.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    series = _plot_series(table, macro)
    sizes = sorted(macro["train_size"].astype(int).unique())
    published_points = sorted(
        (int(size), float(value)) for size, value in published.items()
    )

    figure, axes = plt.subplots(figsize=(9, 5.5))
    # 11+ classes: tab20 keeps neighbouring lines distinguishable (the default has 10).
    tab20 = matplotlib.colormaps["tab20"]
    palette = [tab20(index) for index in range(tab20.N)]
    for index, (name, xs, ys) in enumerate(series):
        is_overall = name == OVERALL
        axes.plot(
            xs,
            ys,
            marker="o",
            linewidth=2.8 if is_overall else 1.0,
            alpha=1.0 if is_overall else 0.8,
            color="black" if is_overall else palette[index % len(palette)],
            label=name,
        )
    if published_points:
        axes.plot(
            [size for size, _ in published_points],
            [value for _, value in published_points],
            linestyle="--",
            marker="s",
            color="crimson",
            linewidth=2.0,
            label=published_label,
        )
    if len(sizes) > 1 and sizes[0] > 0:
        axes.set_xscale("log")
    all_sizes = sorted(set(sizes) | {size for size, _ in published_points})
    axes.set_xticks(all_sizes)
    axes.set_xticklabels([_size_label(size) for size in all_sizes])
    axes.minorticks_off()
    axes.set_xlabel("training samples")
    axes.set_ylabel(score_label)
    axes.set_title("Score against training-set size")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()

    interactive = go.Figure()
    for name, xs, ys in series:
        is_overall = name == OVERALL
        interactive.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=name,
                line={
                    "width": 4 if is_overall else 1.5,
                    **({"color": "black"} if is_overall else {}),
                },
            )
        )
    if published_points:
        interactive.add_trace(
            go.Scatter(
                x=[size for size, _ in published_points],
                y=[value for _, value in published_points],
                mode="lines+markers",
                name=published_label,
                line={"dash": "dash", "color": "crimson", "width": 3},
            )
        )
    interactive.update_layout(
        title="Score against training-set size",
        xaxis={
            "title": "training samples",
            "type": "log" if len(sizes) > 1 else "linear",
        },
        yaxis={"title": score_label},
    )
    return figure, interactive


def _fmt(value: float, digits: int = 3) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def markdown_report(
    table: pd.DataFrame,
    macro: pd.DataFrame,
    offline: pd.DataFrame,
    champion: Mapping[str, Any],
    *,
    score_description: str,
    macro_exclusions: Sequence[str],
    confidence: float,
    published: Mapping[int, float],
    published_label: str,
) -> str:
    """The human-readable report: score definition, overall, per class, offline, champion."""
    variants = macro["variant"].tolist()
    level = f"{confidence:.0%}"
    excluded = ", ".join(macro_exclusions) or "nothing"
    lines = [
        "# Evaluation report",
        "",
        f"**Score used in every table:** {score_description}",
        "",
        f"Cells read `mean [{level} bootstrap CI] (n)`. Macro = unweighted mean of the class means; "
        f"'w/o' leaves out {excluded}. n/a = no scored answer in that cell.",
        "",
        "## Overall",
        "",
    ]
    header = [
        "variant",
        "train size",
        "model version",
        "macro",
        f"macro w/o {excluded}",
        "scored answers",
    ]
    if published:
        header.append(published_label)
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in macro.iterrows():
        cells = [
            str(row["variant"]),
            f"{int(row['train_size']):,}",
            f"{row['registered_model_name']} v{row['model_version']}",
            f"{_fmt(row['macro'])} [{_fmt(row['macro_ci_low'])}, {_fmt(row['macro_ci_high'])}]",
            f"{_fmt(row['macro_excl'])} [{_fmt(row['macro_excl_ci_low'])}, {_fmt(row['macro_excl_ci_high'])}]",
            str(int(row["scored_answers"])),
        ]
        if published:
            cells.append(_fmt(published.get(int(row["train_size"]), math.nan)))
        lines.append("| " + " | ".join(cells) + " |")
    if published:
        lines += [
            "",
            f"{published_label}: "
            + ", ".join(
                f"{_size_label(int(size))}: {value:.3f}"
                for size, value in sorted(published.items())
            ),
        ]

    lines += [
        "",
        "## Per class",
        "",
        "| class | " + " | ".join(variants) + " |",
        "|" + "---|" * (len(variants) + 1),
    ]
    for cls, part in table.groupby("class", sort=True):
        by_variant = part.set_index("variant")
        cells = []
        for variant in variants:
            cell = by_variant.loc[variant]
            cells.append(
                f"{_fmt(cell['mean'])} [{_fmt(cell['ci_low'])}, {_fmt(cell['ci_high'])}] ({int(cell['count'])})"
            )
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")

    lines += [
        "",
        "## Offline metrics (no judge)",
        "",
        "Character-level ROUGE-L and F1 against the standard answer (rows that have one), "
        "final-number match for math, answer length in characters, perplexity of the "
        "standard answer given the prompt (pooled over tokens), share of answers with a "
        "parsed judge score.",
        "",
        "| variant | ROUGE-L | char F1 | math number match | answer chars | perplexity | judge parsed |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in offline.iterrows():
        lines.append(
            f"| {row['variant']} | {_fmt(row['rouge_l'])} | {_fmt(row['char_f1'])} | "
            f"{_fmt(row['number_match'])} | {_fmt(row['answer_chars'], 1)} | "
            f"{_fmt(row['perplexity'], 2)} | {_fmt(row['judge_parse_rate'])} |"
        )
    lines += [
        "",
        "## Champion",
        "",
        f"`{champion['variant']}`: {champion['registered_model_name']} version {champion['version']} "
        f"({champion['metric']} = {champion['score']:.3f}), registry alias `{champion['alias']}`.",
        "",
        f"Serve it: `mlflow models serve -m models:/{champion['registered_model_name']}@"
        f"{champion['alias']} --env-manager local`",
        "",
    ]
    return "\n".join(lines)
