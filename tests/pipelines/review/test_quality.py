"""Wilson intervals and the filters' quality figures, against values computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from belle_kedro.pipelines.review.quality import filter_quality, quality_metrics, wilson


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Worked by hand from the score-interval formula (z = 1.96):
        (8, 10, 0.4902, 0.9433),
        (4, 6, 0.3000, 0.9032),
        (3, 8, 0.1368, 0.6943),
        (0, 1, 0.0, 0.7935),  # stays inside [0, 1] at 0 %
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_matches_hand_computed_intervals(successes, trials, low, high):
    assert wilson(successes, trials) == pytest.approx((low, high), abs=1e-4)


def test_wilson_of_no_trials_is_undefined():
    assert all(math.isnan(bound) for bound in wilson(0, 0))


def test_quality_groups_by_class_and_rule_and_flattens_to_metrics():
    decided = pd.DataFrame(
        {
            "stratum": ["kept", "kept", "borderline", "dropped", "dropped"],
            "rule": ["", "", "near_duplicates", "length", "length"],
            "task_class": ["math", "math", "chat", "math", "chat"],
            "review_decision": ["accept", "reject", "edit", "accept", "reject"],
        }
    )
    quality = filter_quality(decided)
    assert quality["keep_precision"]["all"]["accepted"] == 2
    assert quality["keep_precision"]["all"]["reviewed"] == 3
    assert quality["keep_precision"]["by_class"]["math"]["share"] == 0.5
    assert quality["keep_precision"]["by_rule"]["none"]["reviewed"] == 2
    assert quality["false_drops"]["by_rule"]["length"]["share"] == 0.5
    assert quality["false_drops"]["by_class"]["chat"]["share"] == 0.0
    metrics = quality_metrics(quality)
    assert metrics["false_drops.by_rule.length"] == 0.5
    assert metrics["keep_precision.by_class.chat.reviewed"] == 1
