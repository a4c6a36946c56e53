"""The shape kedro-mlflow's metrics datasets save: ``{name: {"value": v, "step": s}}``."""

from __future__ import annotations

import math
from collections.abc import Mapping


def as_metrics(
    values: Mapping[str, float | int | None], step: int = 0
) -> dict[str, dict[str, float]]:
    """Metrics for ``MlflowMetricsHistoryDataset``; None and NaN values are left out."""
    return {
        name: {"value": float(value), "step": step}
        for name, value in values.items()
        if value is not None and not math.isnan(float(value))
    }
