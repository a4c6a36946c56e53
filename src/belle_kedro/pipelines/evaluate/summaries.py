"""Report tables built from the scored answers: score tables, offline and judge summaries.

Everything here reads the columns the score and judge nodes already wrote
(``score``, ``judge_parsed``, ``judge_sample_std``, ``judge_failures``, ...); no raw
judge reply is read again.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from belle_kedro.pipelines.evaluate.scores import pooled_perplexity
from belle_kedro.pipelines.evaluate.settings import ReportSettings
from belle_kedro.pipelines.evaluate.statistics import (
    macro_average,
    score_tables,
    variants_in_order,
)

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
# Two samples of one answer differing by more than this disagree on the verdict, not
# just on rounding (BELLE's scores run from 0 to 1).
SPREAD_THRESHOLD = 0.3
# The most frequent reasons for unreadable replies shown per class x variant.
FAILURE_EXAMPLES = 3


@dataclass(frozen=True)
class ReportTables:
    """The tables of the report, as saved to ``08_reporting``."""

    table: pd.DataFrame
    macro: pd.DataFrame
    offline: pd.DataFrame
    reliability: pd.DataFrame


def combine_variants(
    scored_answers: Sequence[pd.DataFrame], variant_sizes: Mapping[str, int]
) -> pd.DataFrame:
    """Every variant's scored answers in one frame, ``train_size`` the nominal size.

    A variant's size is its nominal size from ``split.variant_sizes`` (BELLE's 0.2M to
    2M), not the record count train saw: ``conf/belle`` adds the same English mix-in to
    every variant, which BELLE's figure does not count either. The record count stays
    in the rows as ``train_records``.
    """
    combined = pd.concat(scored_answers, ignore_index=True)
    combined["train_records"] = combined["train_size"]
    combined["train_size"] = [
        int(variant_sizes[variant]) for variant in combined["variant"]
    ]
    return combined


def report_tables(
    scored_answers: Sequence[pd.DataFrame],
    variant_sizes: Mapping[str, int],
    settings: ReportSettings,
) -> ReportTables:
    """The class x variant table, the macro table, the offline summary, judge reliability.

    The macro table also names the score every table uses (``score_source``,
    ``score_metric``), for the figures and the markdown.
    """
    combined = combine_variants(scored_answers, variant_sizes)
    table, macro = score_tables(combined, settings)
    for column in ("score_source", "score_metric"):
        macro[column] = " / ".join(combined[column].drop_duplicates().tolist())
    return ReportTables(
        table, macro, offline_summary(combined), judge_reliability(combined)
    )


def offline_summary(scored_answers: pd.DataFrame) -> pd.DataFrame:
    """Per-variant means of the offline metrics (NaN rows skipped) and pooled perplexity."""
    rows = []
    for variant in variants_in_order(scored_answers):
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


def variant_summary(scored_answers: pd.DataFrame) -> dict[str, float]:
    """One variant's per-class mean scores, macro and offline means, for its MLflow run."""
    class_means = {
        str(cls): float(mean)
        for cls, mean in scored_answers.groupby("class", sort=True)["score"]
        .mean()
        .items()
    }
    summary = {
        f"score.{cls.replace(' ', '_')}": mean for cls, mean in class_means.items()
    }
    summary["score.macro"] = macro_average(class_means)
    offline = offline_summary(scored_answers).iloc[0].drop("variant")
    summary.update({f"offline.{name}": value for name, value in offline.items()})
    return summary


def _reasons(failures: Any) -> list[str]:
    """The judge node's reasons for one answer's unreadable replies (a JSON list)."""
    return json.loads(failures) if isinstance(failures, str) and failures else []


def failure_examples(failures: Sequence[Any]) -> str:
    """The most frequent reasons replies could not be read, with their counts."""
    counts = Counter(reason for cell in failures for reason in _reasons(cell))
    return " | ".join(
        f"{reason} (×{count})" for reason, count in counts.most_common(FAILURE_EXAMPLES)
    )


def judge_reliability(scored_answers: pd.DataFrame) -> pd.DataFrame:
    """Per class x variant: sample spread, disagreeing answers, parse failures with reasons.

    ``mean_sample_std`` is the mean over answers of the std of their parsed samples
    (answers with two or more); ``share_spread_over_0_3`` the share of those whose
    samples differ by more than :data:`SPREAD_THRESHOLD`; ``parse_failures`` counts
    replies with no readable score, ``failure_examples`` the most frequent reasons.
    """
    rows = []
    judged = scored_answers[scored_answers["judge_samples"].fillna(0) > 0]
    for (variant, cls), part in judged.groupby(["variant", "class"], sort=True):
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
                "failure_examples": failure_examples(part["judge_failures"].tolist()),
            }
        )
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)


def parent_run_summary(
    macro: pd.DataFrame, champion: Mapping[str, Any]
) -> dict[str, float]:
    """Macro scores per variant and the champion's, for the parent MLflow run."""
    values: dict[str, float] = {}
    for row in macro.itertuples(index=False):
        values[f"macro.{row.variant}"] = float(row.macro)  # type: ignore[arg-type]
        values[f"macro_excl.{row.variant}"] = float(row.macro_excl)  # type: ignore[arg-type]
    values["champion.score"] = float(champion["score"])
    return values
