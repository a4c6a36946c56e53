"""The markdown report: verdict, score definition, overall, paired steps, classes, judge, champion.

Every table prints as many decimals as it takes for different values shown side by
side to read differently (:func:`~belle_kedro.pipelines.evaluate.digits.decimals_apart`),
never fewer than its usual three (one for answer lengths, two for perplexities).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from belle_kedro.pipelines.evaluate.digits import decimals_apart, fmt
from belle_kedro.pipelines.evaluate.figures import size_label
from belle_kedro.pipelines.evaluate.published import PublishedScores
from belle_kedro.pipelines.evaluate.settings import ReportSettings
from belle_kedro.pipelines.evaluate.summaries import SPREAD_THRESHOLD

LEAST_DECIMALS = 3
P_DECIMALS = 3


def _decimals(values: Iterable[float], least: int = LEAST_DECIMALS) -> int:
    return decimals_apart((float(value) for value in values), least=least)


def _with_ci(row: Mapping[Any, Any], key: str, decimals: int) -> str:
    """``mean [low, high]`` of ``key`` (``macro``) or of a table cell (``mean``)."""
    low, high = (
        ("ci_low", "ci_high") if key == "mean" else (f"{key}_ci_low", f"{key}_ci_high")
    )
    return f"{fmt(row[key], decimals)} [{fmt(row[low], decimals)}, {fmt(row[high], decimals)}]"


def verdict(macro: pd.DataFrame, champion: Mapping[str, Any], confidence: float) -> str:
    """One paragraph: which variant, by how much, how sure."""
    metric = str(champion["metric"])
    (chosen,) = macro[macro["variant"] == champion["variant"]].to_dict("records")
    level = f"{confidence:.0%}"
    decimals = _decimals(macro[metric])
    text = (
        f"**Verdict:** `{champion['variant']}` ({int(chosen['train_size']):,} training "
        f"examples) is the champion by the rule `{champion['rule']}` "
        f"({champion['rule_description']}), with {metric} "
        f"{_with_ci(chosen, metric, decimals)}."
    )
    behind = float(chosen[f"{metric}_behind_best_difference"])
    if behind > 0:
        gap = _decimals(macro[f"{metric}_behind_best_difference"])
        text += (
            f" The best point estimate is {fmt(behind, gap)} higher "
            f"({level} paired CI [{fmt(chosen[f'{metric}_behind_best_ci_low'], gap)}, "
            f"{fmt(chosen[f'{metric}_behind_best_ci_high'], gap)}], "
            f"p = {fmt(chosen[f'{metric}_behind_best_p'], 2)}): not significantly better."
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


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _overall(
    macro: pd.DataFrame, excluded: str, published: PublishedScores
) -> list[str]:
    header = ["variant", "train size", "model version", "macro",
              f"macro w/o {excluded}", "scored answers"]  # fmt: skip
    if published.by_size:
        header.append(published.label)
    decimals = {key: _decimals(macro[key]) for key in ("macro", "macro_excl")}
    rows = []
    for row in macro.to_dict("records"):
        cells = [
            str(row["variant"]),
            f"{int(row['train_size']):,}",
            f"{row['registered_model_name']} v{row['model_version']}",
            _with_ci(row, "macro", decimals["macro"]),
            _with_ci(row, "macro_excl", decimals["macro_excl"]),
            str(int(row["scored_answers"])),
        ]
        if published.by_size:
            cells.append(
                fmt(published.by_size.get(int(row["train_size"]), math.nan), 3)
            )
        rows.append(cells)
    lines = _table(header, rows)
    if published.by_size:
        lines += [
            "",
            f"{published.label}: "
            + ", ".join(
                f"{size_label(size)}: {value:.3f}"
                for size, value in sorted(published.by_size.items())
            ),
        ]
    else:
        lines += ["", f"BELLE's published scores: {published.label}."]
    return lines


def _steps(macro: pd.DataFrame, metric: str, level: str) -> list[str]:
    variants = macro["variant"].tolist()
    decimals = _decimals(macro[f"{metric}_vs_smaller_difference"])
    rows = []
    for index in range(1, len(variants)):
        row = macro.iloc[index]
        rows.append(
            [
                variants[index],
                variants[index - 1],
                fmt(row[f"{metric}_vs_smaller_difference"], decimals),
                f"[{fmt(row[f'{metric}_vs_smaller_ci_low'], decimals)}, "
                f"{fmt(row[f'{metric}_vs_smaller_ci_high'], decimals)}]",
                fmt(row[f"{metric}_vs_smaller_p"], P_DECIMALS),
            ]
        )
    return [
        f"Paired bootstrap on the questions both variants scored ({metric}, classes "
        "resampled on their own): difference, its CI and the two-sided p of no difference.",
        "",
        *_table(["variant", "vs", "difference", f"{level} CI", "p"], rows),
    ]


def _per_class(table: pd.DataFrame, variants: list[str]) -> list[str]:
    """One row per class; each row's decimals tell its variants apart."""
    rows = []
    for cls, part in table.groupby("class", sort=True):
        cells = {str(row["variant"]): row for row in part.to_dict("records")}
        decimals = _decimals(part["mean"])
        rows.append(
            [str(cls)]
            + [
                f"{_with_ci(cells[variant], 'mean', decimals)} "
                f"({int(cells[variant]['count'])})"
                for variant in variants
            ]
        )
    return _table(["class", *variants], rows)


def _reliability(reliability: pd.DataFrame) -> list[str]:
    if reliability.empty:
        return ["The judge did not run, so there is nothing to report about it."]
    decimals = {
        key: _decimals(reliability[key])
        for key in ("mean_sample_std", "share_spread_over_0_3")
    }
    rows = [
        [
            str(row["variant"]),
            str(row["class"]),
            str(int(row["answers_judged"])),
            str(int(row["replies"])),
            fmt(row["mean_sample_std"], decimals["mean_sample_std"]),
            fmt(row["share_spread_over_0_3"], decimals["share_spread_over_0_3"]),
            str(int(row["parse_failures"])),
            str(row["failure_examples"]).replace("|", "\\|") or "-",
        ]
        for _, row in reliability.iterrows()
    ]
    return [
        "Per class and variant: the mean standard deviation of one answer's judge "
        f"samples, the share of answers whose samples differ by more than {SPREAD_THRESHOLD} "
        "(both need two or more parsed samples), and the replies with no readable "
        "score (left out of every mean, never counted as 0), with the most frequent "
        "reasons.",
        "",
        *_table(
            [
                "variant",
                "class",
                "answers",
                "replies",
                "mean sample std",
                f"spread > {SPREAD_THRESHOLD}",
                "unparsed",
                "reasons",
            ],
            rows,
        ),  # fmt: skip
    ]


# Offline columns and the fewest decimals each prints.
_OFFLINE_COLUMNS = {
    "rouge_l": ("ROUGE-L", 3),
    "char_f1": ("char F1", 3),
    "number_match": ("math number match", 3),
    "answer_chars": ("answer chars", 1),
    "perplexity": ("perplexity", 2),
    "judge_parse_rate": ("judge parsed", 3),
}


def _offline(offline: pd.DataFrame) -> list[str]:
    decimals = {
        key: _decimals(offline[key], least)
        for key, (_, least) in _OFFLINE_COLUMNS.items()
    }
    rows = [
        [str(row["variant"])]
        + [fmt(row[key], decimals[key]) for key in _OFFLINE_COLUMNS]
        for _, row in offline.iterrows()
    ]
    return [
        "Character-level ROUGE-L and F1 against the standard answer (rows that have one), "
        "final-number match for math, answer length in characters, perplexity of the "
        "standard answer given the prompt (pooled over tokens), share of answers with a "
        "parsed judge score.",
        "",
        *_table(["variant", *(title for title, _ in _OFFLINE_COLUMNS.values())], rows),
    ]


def markdown_report(
    table: pd.DataFrame,
    macro: pd.DataFrame,
    offline: pd.DataFrame,
    reliability: pd.DataFrame,
    champion: Mapping[str, Any],
    *,
    settings: ReportSettings,
    published: PublishedScores,
) -> str:
    """The report; ``published`` without scores says why BELLE's are not shown."""
    level = f"{settings.confidence:.0%}"
    excluded = ", ".join(settings.macro_exclusions) or "nothing"
    metric = str(champion["metric"])
    lines = [
        "# Evaluation report",
        "",
        verdict(macro, champion, settings.confidence),
        "",
        f"**Score used in every table:** {macro['score_source'].iloc[0]}",
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
    lines += ["", "## Overall", "", *_overall(macro, excluded, published)]
    lines += ["", "## Each variant against the next smaller one", ""]
    lines += _steps(macro, metric, level)
    lines += ["", "## Per class", "", *_per_class(table, macro["variant"].tolist())]
    lines += ["", "## Judge reliability", "", *_reliability(reliability)]
    lines += ["", "## Offline metrics (no judge)", "", *_offline(offline)]
    score = fmt(champion["score"], _decimals(macro[metric]))
    lines += [
        "",
        "## Champion",
        "",
        f"`{champion['variant']}`: {champion['registered_model_name']} version {champion['version']} "
        f"({metric} = {score}), chosen by `{champion['rule']}`; "
        f"registry alias `{champion['alias']}`, version tag `champion_rule={champion['rule']}`.",
        "",
        f"Serve it: `mlflow models serve -m models:/{champion['registered_model_name']}@"
        f"{champion['alias']} --env-manager local`",
        "",
    ]
    return "\n".join(lines)
