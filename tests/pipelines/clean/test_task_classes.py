"""The task classes clean predicts: per-class counts in the clean report and its metrics."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from belle_kedro.common.config import ParameterError
from belle_kedro.pipelines.clean.nodes import classify_tasks
from belle_kedro.pipelines.clean.report import clean_report
from tests.support.project import base_parameters
from tests.support.review import clean_fixture_run

SETTINGS = base_parameters("clean")["classifier"]


def test_the_report_counts_kept_records_per_predicted_class():
    run = clean_fixture_run()
    counts = run["class_counts"]
    kept = run["clean"]
    filter_report = {"input_records": 16, "rules": []}
    dedup = {"rule": "near_duplicates", "input": 9, "dropped": 0}
    decon = {
        "rule": "decontamination",
        "dropped": 0,
        "eval_set_digest": "e",
        "classes": {},
    }
    report, metrics, _ = clean_report(filter_report, dedup, decon, counts, kept)
    per_class = report["task_classes"]["kept_per_class"]
    assert sum(per_class.values()) == len(kept) == 7
    # The arithmetic question and the translation request land in their classes.
    assert per_class["math"] == 1 and per_class["translation"] == 1
    assert metrics["kept.class.math"]["value"] == 1.0
    # Dropped per rule and class: every record clean dropped (9 of the fixture's 16),
    # as many per rule as the report's steps count.
    by_rule = counts["dropped_per_rule_and_class"]
    assert sum(sum(c.values()) for c in by_rule.values()) == len(run["drops"]) == 9
    assert {rule: sum(c.values()) for rule, c in by_rule.items()} == (
        run["drops"]["rule"].value_counts().to_dict()
    )
    assert by_rule["near_duplicates"] == {"brainstorming": 2}
    drops = run["drops"].set_index("rule")
    assert (drops.loc["near_duplicates", "score"] >= 0.7).all()
    assert drops.loc["near_duplicates", "partner"].str.len().gt(0).all()
    assert drops.loc["decontamination", "partner"] == (
        "在一个标准大气压下，纯水的沸点是多少摄氏度？"
    )
    assert drops.loc["length", "partner"] == "" and pd.isna(
        drops.loc["length", "score"]
    )
    accuracy = report["task_classes"]["classifier"]["held_out_accuracy"]
    assert 0.5 < accuracy <= 1.0
    assert metrics["classifier.held_out_accuracy"]["value"] == accuracy


def test_classes_are_row_for_row_with_the_kept_records_and_seeded():
    run = clean_fixture_run()
    again = clean_fixture_run()
    assert run["class_counts"] == again["class_counts"]
    kept = run["clean"]
    _, classes, _, counts = _classify(kept)
    assert len(classes) == len(kept)
    assert classes["task_class"].value_counts().to_dict() == counts["kept_per_class"]
    # Two classes (LinearSVC's one signed margin) still give each row its class.
    by_text = dict(zip(kept["instruction"], classes["task_class"], strict=True))
    assert by_text["计算 12 乘以 15 等于多少"] == "math"
    assert by_text["写一首关于秋天的五言绝句"] == "generation"


def _labelled() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seed tasks without categories and a small eval set of two classes."""
    seeds = pd.DataFrame(
        {"instruction": ["写一首诗"], "instances": [[{"input": "", "output": "好"}]]}
    )
    questions = ["一加一等于几", "三乘以四是多少", "十减去七等于几", "二的平方是多少",
                 "写一首春天的诗", "写一段生日祝福", "写一个童话故事", "写一首关于海的歌"]  # fmt: skip
    eval_set = pd.DataFrame(
        {
            "question": questions,
            "std_answer": [""] * 8,
            "class": ["math"] * 4 + ["generation"] * 4,
        }
    )
    return seeds, eval_set


def _classify(
    kept: pd.DataFrame, settings: dict[str, Any] = SETTINGS
) -> tuple[Any, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """classify_tasks on ``kept`` with no drops and the two-class labelled texts."""
    seeds, eval_set = _labelled()
    none = kept.iloc[:0].assign(rule="", partner="", score=float("nan"))
    return classify_tasks(
        kept, none, none, none, seed_tasks=seeds, eval_set=eval_set, settings=settings
    )


def test_an_empty_clean_output_gets_empty_counts():
    empty = pd.DataFrame({"instruction": [], "input": [], "output": []}, dtype=object)
    _, classes, drops, counts = _classify(empty)
    assert classes.empty and drops.empty and counts["kept_per_class"] == {}


def test_a_bad_classifier_setting_names_its_key():
    with pytest.raises(ParameterError, match=r"clean\.classifier\.ngram_min"):
        _classify(pd.DataFrame({"instruction": []}), {**SETTINGS, "ngram_min": 0})
