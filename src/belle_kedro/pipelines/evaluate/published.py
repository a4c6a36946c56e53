"""BELLE's published overall scores, shown beside ours only on BELLE's own eval set."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from belle_kedro.datasets.eval_set import eval_set_digest
from belle_kedro.pipelines.evaluate.settings import PublishedSettings


@dataclass(frozen=True)
class PublishedScores:
    """Scores per training-set size and their label; no scores: ``label`` says why."""

    label: str
    by_size: dict[int, float] = field(default_factory=dict)


def published_scores(
    published: PublishedSettings | None, eval_set: pd.DataFrame
) -> PublishedScores:
    """The published scores, or none with the reason they are not shown.

    They are only comparable on BELLE's own eval set, so they are shown only when the
    eval set's digest is the one ``published.eval_set_digest`` names.
    """
    if published is None:
        return PublishedScores(
            "no published scores are configured (evaluate.report.published)"
        )
    digest = eval_set_digest(eval_set)
    if digest != published.eval_set_digest:
        return PublishedScores(
            f"{published.label} not shown: they were measured on BELLE's eval set "
            f"(digest {published.eval_set_digest[:12]}…), this run's eval set has "
            f"digest {digest[:12]}…, so the numbers would not be comparable"
        )
    return PublishedScores(published.label, published.by_size)
