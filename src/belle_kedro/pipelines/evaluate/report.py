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

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from belle_kedro.common.records import require_columns
from belle_kedro.pipelines.evaluate.judge import read_score
from belle_kedro.pipelines.evaluate.scores import pooled_perplexity

SCORE_ROW_COLUMNS = (
    "question_id",
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
RELIABILITY_COLUMNS = [
    "variant",
    "class",
    "answers_judged",
    "replies",
    "mean_sample_std",
    "share_spread_over_0_3",
    "parse_failures",
    "failure_examples",
]
# Champion rules (evaluate.champion.rule); the name goes into the report and the registry tag.
CHAMPION_RULES = {
    "smallest_not_worse_than_best": (
        "the smallest variant whose paired-bootstrap CI of (best - it) includes 0, "
        "i.e. not significantly worse than the best point estimate"
    ),
    "best_point_estimate": "the highest point estimate; ties go to the smaller set",
}


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


def common_classes(scores: pd.DataFrame) -> list[str]:
    """Classes with at least one score for every variant: the only ones a macro may use."""
    scored = scores.dropna(subset=["score"])
    per_class = scored.groupby("class")["variant"].nunique()
    n_variants = scores["variant"].nunique()
    return sorted(str(cls) for cls, n in per_class.items() if n == n_variants)


def paired_difference(
    scores: pd.DataFrame,
    higher: str,
    lower: str,
    classes: Sequence[str],
    *,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, float]:
    """Macro(higher) - macro(lower) on the questions both scored, with a paired bootstrap.

    Each class's questions are resampled on their own (the same draw for both
    variants), the per-class mean differences averaged; ``p`` is the two-sided
    bootstrap p-value of "no difference" (twice the smaller tail share, at most 1).
    """
    wide = scores.pivot_table(
        index=["class", "question_id"],
        columns="variant",
        values="score",
        aggfunc="first",
    )
    differences, draws, n_questions = [], [], 0
    for cls in classes:
        if cls not in wide.index.get_level_values(0):
            continue
        part = wide.loc[cls]
        if higher not in part or lower not in part:
            continue
        paired = (part[higher] - part[lower]).dropna().to_numpy(dtype=float)
        if paired.size == 0:
            continue
        n_questions += paired.size
        differences.append(float(paired.mean()))
        draws.append(
            bootstrap_means(
                paired, n_resamples, _cell_rng(seed, higher + "|" + lower, cls)
            )
        )
    if not draws:
        return {"difference": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                "p": math.nan, "questions": 0}  # fmt: skip
    macro_draws = np.mean(draws, axis=0)
    low, high = _interval(macro_draws, confidence)
    p = min(
        1.0,
        2.0 * min(float(np.mean(macro_draws <= 0)), float(np.mean(macro_draws >= 0))),
    )
    return {"difference": float(np.mean(differences)), "ci_low": low, "ci_high": high,
            "p": p, "questions": n_questions}  # fmt: skip


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
    shared = common_classes(scores)
    left_out = [cls for cls in classes if cls not in shared]
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
        shared_means = {cls: means[cls] for cls in shared}
        for key, exclude in (("macro", ()), ("macro_excl", tuple(macro_exclusions))):
            row[key] = macro_average(shared_means, exclude)
            kept = [draws[cls] for cls in shared if cls not in exclude]
            row[f"{key}_ci_low"], row[f"{key}_ci_high"] = (
                _interval(np.mean(kept, axis=0), confidence)
                if kept
                else (math.nan, math.nan)
            )
        row["scored_classes"] = sum(not math.isnan(mean) for mean in means.values())
        row["macro_classes"] = ", ".join(shared)
        row["classes_left_out"] = ", ".join(left_out)
        row["scored_answers"] = int(of_variant["score"].notna().sum())
        macro_rows.append(row)
    macro = pd.DataFrame(macro_rows)
    bootstrap = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    for key, exclude in (("macro", ()), ("macro_excl", tuple(macro_exclusions))):
        compared = [cls for cls in shared if cls not in exclude]
        _add_comparisons(macro, scores, key, compared, bootstrap)
    return pd.DataFrame(table_rows, columns=TABLE_COLUMNS), macro


def _add_comparisons(
    macro: pd.DataFrame,
    scores: pd.DataFrame,
    key: str,
    classes: Sequence[str],
    bootstrap: Mapping[str, Any],
) -> None:
    """``{key}_vs_smaller*`` (paired vs the next smaller variant) and ``{key}_vs_best*``."""
    variants = macro["variant"].tolist()
    ranked = macro.dropna(subset=[key])
    best = (
        str(
            ranked.sort_values([key, "train_size"], ascending=[False, True]).iloc[0][
                "variant"
            ]
        )
        if len(ranked)
        else None
    )
    for index, variant in enumerate(variants):
        versus = {
            "difference": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "p": math.nan,
        }
        if index:
            versus = paired_difference(
                scores, variant, variants[index - 1], classes, **bootstrap
            )
        gap = {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p": 1.0}
        if best is not None and variant != best:
            gap = paired_difference(scores, best, variant, classes, **bootstrap)
        for name in ("difference", "ci_low", "ci_high", "p"):
            macro.loc[index, f"{key}_vs_smaller_{name}"] = versus[name]
            macro.loc[index, f"{key}_behind_best_{name}"] = gap[name]


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


# Two samples of one answer differing by more than this disagree on the verdict, not
# just on rounding (BELLE's scores run from 0 to 1).
SPREAD_THRESHOLD = 0.3
FAILURE_EXAMPLES = 3


def _json_list(value: Any) -> list[Any]:
    return json.loads(value) if isinstance(value, str) and value else []


def judge_reliability(scored_answers: pd.DataFrame) -> pd.DataFrame:
    """Per class x variant: sample spread, disagreeing answers, parse failures with examples.

    ``mean_sample_std`` is the mean over answers of the std of their parsed samples
    (answers with two or more); ``share_spread_over_0_3`` the share of those whose
    samples differ by more than :data:`SPREAD_THRESHOLD`; ``parse_failures`` counts
    replies with no readable score, ``failure_examples`` shows a few with the reason.
    """
    rows = []
    judged = scored_answers[scored_answers["judge_samples"].fillna(0) > 0]
    for (variant, cls), part in judged.groupby(["variant", "class"], sort=True):
        examples: list[str] = []
        for replies in part["judge_replies"]:
            for reply in _json_list(replies):
                reading = read_score(reply)
                if not reading.parsed and len(examples) < FAILURE_EXAMPLES:
                    snippet = " ".join(str(reply or "").split())[:60]
                    examples.append(f"{reading.reason}: «{snippet}»")
        spread = part["judge_sample_spread"].astype(float).dropna()
        rows.append(
            {
                "variant": variant,
                "class": cls,
                "answers_judged": len(part),
                "replies": int(part["judge_samples"].sum()),
                "mean_sample_std": float(part["judge_sample_std"].astype(float).mean()),
                "share_spread_over_0_3": float((spread > SPREAD_THRESHOLD).mean())
                if len(spread)
                else math.nan,
                "parse_failures": int(
                    (part["judge_samples"] - part["judge_parsed_samples"]).sum()
                ),
                "failure_examples": " | ".join(examples),
            }
        )
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)


def choose_champion(macro: pd.DataFrame, metric: str, rule: str) -> dict[str, Any]:
    """The champion by ``rule`` (see :data:`CHAMPION_RULES`) on ``metric``.

    ``smallest_not_worse_than_best`` takes the smallest variant whose paired CI of
    (best - it) reaches 0: a bigger variant must *beat* it to be worth serving.
    """
    if rule not in CHAMPION_RULES:
        raise ValueError(
            f"evaluate.champion.rule must be one of {sorted(CHAMPION_RULES)}, not {rule!r}"
        )
    ranked = macro.dropna(subset=[metric])
    if ranked.empty:
        raise ValueError(
            f"no variant has a '{metric}' score, so no champion can be chosen"
        )
    best = ranked.sort_values(
        [metric, "train_size"], ascending=[False, True], kind="stable"
    ).iloc[0]
    if rule == "smallest_not_worse_than_best":
        behind_low = ranked[f"{metric}_behind_best_ci_low"].fillna(0.0)
        candidates = ranked[behind_low <= 0].sort_values("train_size", kind="stable")
        best = candidates.iloc[0] if len(candidates) else best
    return {
        "variant": str(best["variant"]),
        "registered_model_name": str(best["registered_model_name"]),
        "version": str(best["model_version"]),
        "model_uri": str(best["model_uri"]),
        "metric": metric,
        "rule": rule,
        "rule_description": CHAMPION_RULES[rule],
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


def class_heatmap_figures(table: pd.DataFrame, *, score_label: str) -> tuple[Any, Any]:
    """Class x variant heat map of mean scores, each cell annotated with its CI.

    Returns ``(matplotlib Figure, plotly Figure)`` with the same cells; variants run
    smallest first, a cell with no score stays blank.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    variants = list(
        table.drop_duplicates("variant").sort_values("train_size")["variant"]
    )
    classes = sorted(table["class"].unique())
    cells = table.set_index(["class", "variant"])
    means = np.array(
        [[cells.loc[(cls, v), "mean"] for v in variants] for cls in classes],
        dtype=float,
    )
    labels = [
        [
            ""
            if math.isnan(cells.loc[(cls, v), "mean"])
            else f"{cells.loc[(cls, v), 'mean']:.2f}\n"
            f"[{cells.loc[(cls, v), 'ci_low']:.2f}, {cells.loc[(cls, v), 'ci_high']:.2f}]"
            for v in variants
        ]
        for cls in classes
    ]

    figure, axes = plt.subplots(
        figsize=(1.6 + 1.5 * len(variants), 1.0 + 0.55 * len(classes))
    )
    image = axes.imshow(np.ma.masked_invalid(means), cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(variants)), variants)
    axes.set_yticks(range(len(classes)), classes)
    for row, cls_labels in enumerate(labels):
        for column, text in enumerate(cls_labels):
            axes.text(column, row, text, ha="center", va="center", fontsize=7,
                      color="white")  # fmt: skip
    figure.colorbar(image, ax=axes, label=score_label)
    axes.set_title("Mean score per class and variant (CI in brackets)")
    figure.tight_layout()

    interactive = go.Figure(
        go.Heatmap(
            z=means.tolist(),
            x=variants,
            y=classes,
            text=[[text.replace("\n", "<br>") for text in row] for row in labels],
            texttemplate="%{text}",
            colorscale="Viridis",
            colorbar={"title": score_label},
        )
    )
    interactive.update_layout(title="Mean score per class and variant (CI in brackets)")
    return figure, interactive


def _fmt(value: float, digits: int = 3) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def verdict(macro: pd.DataFrame, champion: Mapping[str, Any], confidence: float) -> str:
    """One paragraph: which variant, by how much, how sure."""
    metric = str(champion["metric"])
    chosen = macro.set_index("variant").loc[champion["variant"]]
    level = f"{confidence:.0%}"
    text = (
        f"**Verdict:** `{champion['variant']}` ({int(chosen['train_size']):,} training "
        f"examples) is the champion by the rule `{champion['rule']}` "
        f"({champion['rule_description']}), with {metric} {_fmt(chosen[metric])} "
        f"[{_fmt(chosen[f'{metric}_ci_low'])}, {_fmt(chosen[f'{metric}_ci_high'])}]."
    )
    behind = float(chosen[f"{metric}_behind_best_difference"])
    if behind > 0:
        text += (
            f" The best point estimate is {_fmt(behind)} higher "
            f"({level} paired CI [{_fmt(chosen[f'{metric}_behind_best_ci_low'])}, "
            f"{_fmt(chosen[f'{metric}_behind_best_ci_high'])}], "
            f"p = {_fmt(chosen[f'{metric}_behind_best_p'], 2)}): not significantly better."
        )
    steps = macro.dropna(subset=[f"{metric}_vs_smaller_p"])
    significant = steps[
        (steps[f"{metric}_vs_smaller_ci_low"] > 0)
        | (steps[f"{metric}_vs_smaller_ci_high"] < 0)
    ]
    text += (
        f" {len(significant)} of {len(steps)} steps to the next larger variant change "
        f"{metric} significantly at {level}."
    )
    left_out = str(macro["classes_left_out"].iloc[0])
    if left_out:
        text += f" The macro leaves out {left_out} (not scored for every variant)."
    return text


def markdown_report(
    table: pd.DataFrame,
    macro: pd.DataFrame,
    offline: pd.DataFrame,
    reliability: pd.DataFrame,
    champion: Mapping[str, Any],
    *,
    score_description: str,
    macro_exclusions: Sequence[str],
    confidence: float,
    published: Mapping[int, float],
    published_label: str,
) -> str:
    """The report: verdict, score definition, overall, paired steps, per class, judge, champion.

    ``published_label`` without ``published`` is the reason BELLE's figures are not shown.
    """
    variants = macro["variant"].tolist()
    level = f"{confidence:.0%}"
    excluded = ", ".join(macro_exclusions) or "nothing"
    metric = str(champion["metric"])
    lines = [
        "# Evaluation report",
        "",
        verdict(macro, champion, confidence),
        "",
        f"**Score used in every table:** {score_description}",
        "",
        f"Cells read `mean [{level} bootstrap CI] (n)`. Macro = unweighted mean of the class means "
        f"over the classes every variant has a score in ({macro['macro_classes'].iloc[0] or 'none'}); "
        f"'w/o' also leaves out {excluded}. n/a = no scored answer in that cell.",
    ]
    if macro["classes_left_out"].iloc[0]:
        lines += [
            "",
            f"**Left out of every macro:** {macro['classes_left_out'].iloc[0]}: at least "
            "one variant has no score in them, and averaging different class sets would "
            "compare unlike things.",
        ]
    lines += ["", "## Overall", ""]
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
    elif published_label:
        lines += ["", f"BELLE's published scores: {published_label}."]

    lines += [
        "",
        "## Each variant against the next smaller one",
        "",
        f"Paired bootstrap on the questions both variants scored ({metric}, classes "
        "resampled on their own): difference, its CI and the two-sided p of no difference.",
        "",
        f"| variant | vs | difference | {level} CI | p |",
        "|---|---|---|---|---|",
    ]
    for index in range(1, len(variants)):
        row = macro.iloc[index]
        lines.append(
            f"| {variants[index]} | {variants[index - 1]} | "
            f"{_fmt(row[f'{metric}_vs_smaller_difference'])} | "
            f"[{_fmt(row[f'{metric}_vs_smaller_ci_low'])}, {_fmt(row[f'{metric}_vs_smaller_ci_high'])}] | "
            f"{_fmt(row[f'{metric}_vs_smaller_p'], 3)} |"
        )

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

    lines += ["", "## Judge reliability", ""]
    if reliability.empty:
        lines.append("The judge did not run, so there is nothing to report about it.")
    else:
        lines += [
            "Per class and variant: the mean standard deviation of one answer's judge "
            f"samples, the share of answers whose samples differ by more than {SPREAD_THRESHOLD} "
            "(both need two or more parsed samples), and the replies with no readable "
            "score (left out of every mean, never counted as 0), with examples.",
            "",
            "| variant | class | answers | replies | mean sample std | spread > 0.3 | unparsed | examples |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for _, row in reliability.iterrows():
            examples = str(row["failure_examples"]).replace("|", "\\|") or "-"
            lines.append(
                f"| {row['variant']} | {row['class']} | {int(row['answers_judged'])} | "
                f"{int(row['replies'])} | {_fmt(row['mean_sample_std'])} | "
                f"{_fmt(row['share_spread_over_0_3'])} | {int(row['parse_failures'])} | {examples} |"
            )

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
        f"({champion['metric']} = {champion['score']:.3f}), chosen by `{champion['rule']}`; "
        f"registry alias `{champion['alias']}`, version tag `champion_rule={champion['rule']}`.",
        "",
        f"Serve it: `mlflow models serve -m models:/{champion['registered_model_name']}@"
        f"{champion['alias']} --env-manager local`",
        "",
    ]
    return "\n".join(lines)
