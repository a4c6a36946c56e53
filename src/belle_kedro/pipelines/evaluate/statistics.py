"""Report statistics: class means, macro averages, bootstrap CIs and paired differences.

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
from belle_kedro.pipelines.evaluate.settings import ReportSettings

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
_NO_DIFFERENCE = {"difference": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                  "p": math.nan}  # fmt: skip


def bootstrap_means(
    values: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_resamples`` means of resamples (with replacement) of ``values``."""
    if values.size == 0:
        return np.full(n_resamples, np.nan)
    picks = rng.integers(0, values.size, size=(n_resamples, values.size))
    return values[picks].mean(axis=1)


def cell_rng(seed: int, variant: str, cls: str) -> np.random.Generator:
    """The generator of one (variant, class) cell: independent of the other cells."""
    return np.random.default_rng(
        [seed, zlib.crc32(variant.encode()), zlib.crc32(cls.encode())]
    )


def interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of ``draws`` (NaN when all are)."""
    if np.all(np.isnan(draws)):
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.nanpercentile(draws, [tail, 100.0 - tail])
    return float(low), float(high)


def variants_in_order(scores: pd.DataFrame) -> list[str]:
    """The variants of ``scores``, smallest training set first (then by name)."""
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
                paired, n_resamples, cell_rng(seed, higher + "|" + lower, cls)
            )
        )
    if not draws:
        return {**_NO_DIFFERENCE, "questions": 0}
    macro_draws = np.mean(draws, axis=0)
    low, high = interval(macro_draws, confidence)
    p = min(
        1.0,
        2.0 * min(float(np.mean(macro_draws <= 0)), float(np.mean(macro_draws >= 0))),
    )
    return {"difference": float(np.mean(differences)), "ci_low": low, "ci_high": high,
            "p": p, "questions": n_questions}  # fmt: skip


def score_tables(
    scores: pd.DataFrame, settings: ReportSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The class x variant table (long form) and the per-variant macro table.

    Returns ``(table, macro)``: ``table`` has :data:`TABLE_COLUMNS`; ``macro`` has one
    row per variant (smallest first) with the model identity, ``macro`` and
    ``macro_excl`` (without ``settings.macro_exclusions``, BELLE: math and code), their
    CIs, the number of classes with a score and of scored answers, and the paired
    comparisons of :func:`add_comparisons`.
    """
    require_columns(scores, SCORE_ROW_COLUMNS, "score rows")
    classes = sorted(scores["class"].unique())
    shared = common_classes(scores)
    left_out = [cls for cls in classes if cls not in shared]
    exclusions = {"macro": (), "macro_excl": settings.macro_exclusions}
    table_rows: list[dict[str, Any]] = []
    macro_rows: list[dict[str, Any]] = []
    for variant in variants_in_order(scores):
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
                values,
                settings.bootstrap_resamples,
                cell_rng(settings.seed, variant, cls),
            )
            means[cls] = float(values.mean()) if values.size else math.nan
            low, high = interval(draws[cls], settings.confidence)
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
        for key, exclude in exclusions.items():
            row[key] = macro_average(shared_means, exclude)
            kept = [draws[cls] for cls in shared if cls not in exclude]
            row[f"{key}_ci_low"], row[f"{key}_ci_high"] = (
                interval(np.mean(kept, axis=0), settings.confidence)
                if kept
                else (math.nan, math.nan)
            )
        row["scored_classes"] = sum(not math.isnan(mean) for mean in means.values())
        row["macro_classes"] = ", ".join(shared)
        row["classes_left_out"] = ", ".join(left_out)
        row["scored_answers"] = int(of_variant["score"].notna().sum())
        macro_rows.append(row)
    macro = pd.DataFrame(macro_rows)
    for key, exclude in exclusions.items():
        compared = [cls for cls in shared if cls not in exclude]
        add_comparisons(macro, scores, key, compared, settings)
    return pd.DataFrame(table_rows, columns=TABLE_COLUMNS), macro


def add_comparisons(
    macro: pd.DataFrame,
    scores: pd.DataFrame,
    key: str,
    classes: Sequence[str],
    settings: ReportSettings,
) -> None:
    """Add ``{key}_vs_smaller_*`` (paired vs the next smaller variant) and ``{key}_behind_best_*``."""

    def difference(higher: str, lower: str) -> Mapping[str, float]:
        return paired_difference(
            scores,
            higher,
            lower,
            classes,
            n_resamples=settings.bootstrap_resamples,
            confidence=settings.confidence,
            seed=settings.seed,
        )

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
        versus: Mapping[str, float] = _NO_DIFFERENCE
        if index:
            versus = difference(variant, variants[index - 1])
        gap: Mapping[str, float] = {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0,
                                    "p": 1.0}  # fmt: skip
        if best is not None and variant != best:
            gap = difference(best, variant)
        for name in ("difference", "ci_low", "ci_high", "p"):
            macro.loc[index, f"{key}_vs_smaller_{name}"] = versus[name]
            macro.loc[index, f"{key}_behind_best_{name}"] = gap[name]
