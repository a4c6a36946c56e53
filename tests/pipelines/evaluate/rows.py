"""Score rows and settings for the report tests (statistics, champion, figures, markdown)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from belle_kedro.common.config import build
from belle_kedro.pipelines.evaluate.settings import ChampionSettings, ReportSettings
from tests.support.project import declared

MODEL = "belle-test"


def report_settings(**changes: Any) -> ReportSettings:
    """The declared ``evaluate.report`` block with ``changes``, as the nodes build it."""
    return build(
        ReportSettings, declared("evaluate", "report", **changes), "evaluate.report"
    )


def champion_settings(**changes: Any) -> ChampionSettings:
    """The declared ``evaluate.champion`` block with ``changes``."""
    return build(
        ChampionSettings,
        declared("evaluate", "champion", **changes),
        "evaluate.champion",
    )


def score_rows(
    variant: str, train_size: int, version: str, scores_by_class: dict[str, list[float]]
) -> list[dict[str, Any]]:
    """One score row per value, question ids ``<class>-<index>`` shared across variants."""
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


def two_variants(
    small: dict[str, list[float]], large: dict[str, list[float]]
) -> pd.DataFrame:
    """Score rows of a ``small`` (200) and a ``large`` (2000) variant."""
    return pd.DataFrame(
        score_rows("small", 200, "1", small) + score_rows("large", 2000, "2", large)
    )


def four_classes() -> pd.DataFrame:
    """Two variants over four classes, one NaN score, listed out of size order."""
    small = score_rows(
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
    large = score_rows(
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
    return pd.DataFrame(large + small)
