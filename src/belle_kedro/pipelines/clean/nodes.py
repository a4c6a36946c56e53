"""Nodes of the clean pipeline: normalise, rule filters, near-duplicate removal, report.

Each node builds its settings from the raw ``params:clean.*`` block it receives and
hands the typed object to the domain modules beside it. The two pair-matching nodes
take ``clean.engine`` (``local`` or ``ray``, checked when the session starts) by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from belle_kedro.common.config import build
from belle_kedro.pipelines.clean.classifier import (
    TaskClassifier,
    labelled_texts,
    train_classifier,
)
from belle_kedro.pipelines.clean.passes import decontamination_pass, near_duplicate_pass
from belle_kedro.pipelines.clean.rules import apply_rules, normalise_records
from belle_kedro.pipelines.clean.settings import (
    ClassifierSettings,
    DecontaminationSettings,
    MatchingSettings,
    NearDuplicatesSettings,
    RulesSettings,
)


def normalise_instructions(generated_instructions: pd.DataFrame) -> pd.DataFrame:
    """Safe NFKC and whitespace folding of instruction, input and output; provenance kept."""
    return normalise_records(generated_instructions)


def filter_instructions(
    records: pd.DataFrame, rules: Mapping[str, Any], examples: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Run the rule filters in order; the survivors, the dropped records (each with
    its rule) and each rule's drops with examples."""
    kept, dropped, rule_rows = apply_rules(
        records, build(RulesSettings, rules, "clean.rules"), examples=examples
    )
    return kept, dropped, {"input_records": len(records), "rules": rule_rows}


def remove_near_duplicates(
    records: pd.DataFrame,
    seed_tasks: pd.DataFrame,
    settings: Mapping[str, Any],
    matching: Mapping[str, Any],
    examples: int,
    *,
    engine: str,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Alpaca's near-duplicate rule against earlier kept records and the seed tasks."""
    return near_duplicate_pass(
        records,
        seed_tasks,
        build(NearDuplicatesSettings, settings, "clean.near_duplicates"),
        build(MatchingSettings, matching, "clean.matching"),
        examples,
        engine=engine,
    )


def decontaminate(
    records: pd.DataFrame,
    eval_set: pd.DataFrame,
    settings: Mapping[str, Any],
    matching: Mapping[str, Any],
    examples: int,
    *,
    engine: str,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Drop records that repeat an eval-set question; report drops per eval class."""
    return decontamination_pass(
        records,
        eval_set,
        build(DecontaminationSettings, settings, "clean.decontamination"),
        build(MatchingSettings, matching, "clean.matching"),
        examples,
        engine=engine,
    )


def classify_tasks(
    clean_instructions: pd.DataFrame,
    rule_drops: pd.DataFrame,
    duplicate_drops: pd.DataFrame,
    contamination_drops: pd.DataFrame,
    *,
    seed_tasks: pd.DataFrame,
    eval_set: pd.DataFrame,
    settings: Mapping[str, Any],
) -> tuple[TaskClassifier, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Fit the task-class model on the labelled texts; each kept record's class (one
    ``task_class`` column, row for row with clean_instructions), every dropped record
    with its rule, partner, score and class (``clean_drops``), and the counts."""
    classifier = train_classifier(
        labelled_texts(eval_set, seed_tasks),
        build(ClassifierSettings, settings, "clean.classifier"),
    )
    predicted, _ = classifier.predict(clean_instructions["instruction"])
    classes = pd.DataFrame({"task_class": pd.Series(predicted, dtype=object)})
    drops = pd.concat(
        [rule_drops, duplicate_drops, contamination_drops], ignore_index=True
    )
    drops["task_class"] = pd.Series(
        classifier.predict(drops["instruction"])[0], dtype=object
    )
    counts = classes["task_class"].value_counts().sort_index()
    summary = {
        "classifier": classifier.summary(),
        "kept_per_class": {str(k): int(v) for k, v in counts.items()},
        "dropped_per_rule_and_class": {
            str(rule): {
                str(k): int(v)
                for k, v in group["task_class"].value_counts().sort_index().items()
            }
            for rule, group in drops.groupby("rule", sort=True)
        },
    }
    return classifier, classes, drops, summary
