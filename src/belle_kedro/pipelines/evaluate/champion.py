"""The champion: which variant to serve, and the registry alias that points at it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from belle_kedro.pipelines.evaluate.settings import ChampionSettings

logger = logging.getLogger(__name__)

# The choices of evaluate.champion.rule (settings.ChampionRule); the name goes into the
# report and the registry tag, the description into the report.
CHAMPION_RULES = {
    "smallest_not_worse_than_best": (
        "the smallest variant whose paired-bootstrap CI of (best - it) includes 0, "
        "i.e. not significantly worse than the best point estimate"
    ),
    "best_point_estimate": "the highest point estimate; ties go to the smaller set",
}


def choose_champion(macro: pd.DataFrame, settings: ChampionSettings) -> dict[str, Any]:
    """The champion by ``settings.rule`` (see :data:`CHAMPION_RULES`) on ``settings.metric``.

    ``smallest_not_worse_than_best`` takes the smallest variant whose paired CI of
    (best - it) reaches 0: a bigger variant must *beat* it to be worth serving; a gap
    without an interval (NaN) counts as reaching 0.
    """
    metric, rule = settings.metric, settings.rule
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


def assign_alias(best: Mapping[str, Any], alias: str) -> dict[str, Any]:
    """Point the registry ``alias`` at the champion's version and tag it with its rule.

    Returns the champion with ``alias`` and ``model_uri_alias`` added.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    client.set_registered_model_alias(
        best["registered_model_name"], alias, best["version"]
    )
    client.set_model_version_tag(
        best["registered_model_name"], best["version"], "champion_rule", best["rule"]
    )
    logger.info(
        "Alias %s -> %s version %s (%s)",
        alias,
        best["registered_model_name"],
        best["version"],
        best["variant"],
    )
    return {
        **best,
        "alias": alias,
        "model_uri_alias": f"models:/{best['registered_model_name']}@{alias}",
    }
