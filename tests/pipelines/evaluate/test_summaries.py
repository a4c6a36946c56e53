"""Summaries from the scored answers: score tables, offline means, judge reliability."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from belle_kedro.pipelines.evaluate.summaries import (
    judge_reliability,
    offline_summary,
    parent_run_summary,
    report_tables,
    variant_summary,
)
from tests.pipelines.evaluate.rows import report_settings


def _judged(variant: str, train_size: int) -> pd.DataFrame:
    """Three judged answers as score_answers writes them (JSON columns from the judge)."""
    return pd.DataFrame(
        {
            "question_id": ["a", "b", "c"],
            "variant": variant,
            "train_size": train_size,
            "registered_model_name": "m",
            "model_version": "1",
            "model_uri": "models:/m/1",
            "class": ["math", "math", "open qa"],
            "score": [0.5, math.nan, 0.9],
            "score_source": "LLM judge `j`",
            "score_metric": "judged score",
            "rouge_l": [0.2, 0.4, math.nan],
            "char_f1": 0.5,
            "number_match": [1.0, 0.0, math.nan],
            "answer_chars": [4.0, 6.0, 8.0],
            "reference_nll": [2.0, 4.0, math.nan],
            "reference_tokens": [1, 2, 0],
            "judge_samples": [3, 3, 3],
            "judge_parsed_samples": [2, 0, 3],
            "judge_parsed": [True, False, True],
            "judge_score": [0.5, math.nan, 0.9],
            "judge_sample_std": [0.1, math.nan, 0.0],
            "judge_sample_spread": [0.4, math.nan, 0.0],
            "judge_sample_scores": [
                "[0.4, 0.6, null]",
                "[null, null, null]",
                "[0.9, 0.9, 0.9]",
            ],
            "judge_failures": [
                json.dumps(["no value labelled 得分"], ensure_ascii=False),
                json.dumps(
                    [
                        "no value labelled 得分",
                        "out of range: 8 (expected 0 to 1)",
                        "no value labelled 得分",
                    ],
                    ensure_ascii=False,
                ),
                "[]",
            ],  # fmt: skip
            # what the judge replied; the report never reads it again
            "judge_replies": "not json",
        }
    )


def test_judge_reliability_uses_the_judge_node_s_parsed_columns() -> None:
    reliability = judge_reliability(_judged("small", 10)).set_index("class")
    math_row = reliability.loc["math"]
    assert (math_row["answers_judged"], math_row["replies"]) == (2, 6)
    assert math_row["parse_failures"] == 4
    assert math_row["mean_sample_std"] == pytest.approx(0.1)
    assert math_row["share_spread_over_0_3"] == 1.0  # 0.4 > 0.3, the NaN left out
    assert math_row["failure_examples"] == (
        "no value labelled 得分 (×3) | out of range: 8 (expected 0 to 1) (×1)"
    )
    assert reliability.loc["open qa", "failure_examples"] == ""


def test_offline_summary_means_and_pooled_perplexity() -> None:
    row = offline_summary(_judged("small", 10)).iloc[0]
    assert row["rouge_l"] == pytest.approx(0.3)  # NaN skipped
    assert row["number_match"] == pytest.approx(0.5)
    assert row["perplexity"] == pytest.approx(math.exp(6.0 / 3))  # pooled over tokens
    assert row["judge_parse_rate"] == pytest.approx(2 / 3)


def test_report_tables_size_variants_nominally_and_name_the_score() -> None:
    tables = report_tables(
        [_judged("large", 999), _judged("small", 11)],
        {"small": 200, "large": 2000},
        report_settings(bootstrap_resamples=20, macro_exclusions=[]),
    )
    assert tables.macro["variant"].tolist() == ["small", "large"]
    assert tables.macro["train_size"].tolist() == [200, 2000]
    assert set(tables.macro["score_metric"]) == {"judged score"}
    assert len(tables.table) == 4 and len(tables.reliability) == 4
    assert tables.offline["variant"].tolist() == ["small", "large"]


def test_variant_and_parent_run_summaries() -> None:
    summary = variant_summary(_judged("small", 10))
    assert summary["score.math"] == 0.5 and summary["score.open_qa"] == 0.9
    assert summary["score.macro"] == pytest.approx(0.7)
    assert summary["offline.rouge_l"] == pytest.approx(0.3)
    macro = pd.DataFrame({"variant": ["small"], "macro": [0.7], "macro_excl": [0.9]})
    assert parent_run_summary(macro, {"score": 0.7}) == {
        "macro.small": 0.7,
        "macro_excl.small": 0.9,
        "champion.score": 0.7,
    }
