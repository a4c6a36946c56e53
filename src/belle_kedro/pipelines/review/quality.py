"""The automatic filters' quality, measured from the reviewed samples.

* **precision of keeping**: the share of reviewed kept records (strata ``kept`` and
  ``borderline``) that reviewers accept (accept or edit);
* **false drops**: the share of reviewed dropped records that reviewers would keep.

Each overall, per predicted task class and per rule, with a Wilson 95 % interval
(sound at small counts and at 0 % or 100 %, where the normal approximation is not).
The kept sample is stratified by class, so the overall figure weighs classes by their
sample sizes, not their share of the data: the per-class figures are the ones to read.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

Z_95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial share; ``(nan, nan)`` for no trials."""
    if trials == 0:
        return math.nan, math.nan
    share = successes / trials
    denominator = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    half /= denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def share(successes: int, trials: int) -> dict[str, Any]:
    """``{share, low, high, accepted, reviewed}`` of one group."""
    low, high = wilson(successes, trials)
    return {
        "share": round(successes / trials, 4) if trials else None,
        "low": None if math.isnan(low) else round(low, 4),
        "high": None if math.isnan(high) else round(high, 4),
        "accepted": successes,
        "reviewed": trials,
    }


def _grouped(frame: pd.DataFrame, column: str) -> dict[str, Any]:
    return {
        str(name): share(int(group["accepted"].sum()), len(group))
        for name, group in frame.groupby(column, sort=True)
    }


def filter_quality(reviewed_sample: pd.DataFrame) -> dict[str, Any]:
    """Keep precision and false-drop rate, overall, per class and per rule.

    ``reviewed_sample``: the sample's decided rows with ``stratum``, ``rule``,
    ``task_class`` and ``review_decision``.
    """
    frame = reviewed_sample.assign(
        accepted=reviewed_sample["review_decision"].isin(["accept", "edit"]),
        rule=reviewed_sample["rule"].replace("", "none"),
    )
    kept = frame[frame["stratum"] != "dropped"]
    dropped = frame[frame["stratum"] == "dropped"]
    return {
        "keep_precision": {
            "all": share(int(kept["accepted"].sum()), len(kept)),
            "by_class": _grouped(kept, "task_class"),
            "by_rule": _grouped(kept, "rule"),
        },
        "false_drops": {
            "all": share(int(dropped["accepted"].sum()), len(dropped)),
            "by_class": _grouped(dropped, "task_class"),
            "by_rule": _grouped(dropped, "rule"),
        },
    }


def quality_metrics(quality: dict[str, Any]) -> dict[str, float | None]:
    """Flat MLflow metric names: ``keep_precision.by_class.math.low`` and so on."""
    metrics: dict[str, float | None] = {}
    for measure, groups in quality.items():
        entries = {"all": groups["all"]}
        for kind in ("by_class", "by_rule"):
            entries.update({f"{kind}.{k}": v for k, v in groups[kind].items()})
        for name, entry in entries.items():
            prefix = f"{measure}.{name}"
            metrics[prefix] = entry["share"]
            metrics[f"{prefix}.low"] = entry["low"]
            metrics[f"{prefix}.high"] = entry["high"]
            metrics[f"{prefix}.reviewed"] = entry["reviewed"]
    return metrics
