"""Nodes of the clean pipeline: normalise, rule filters, near-duplicate removal, report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from belle_kedro.common.config import build
from belle_kedro.common.tracking import as_metrics
from belle_kedro.datasets.eval_set import eval_set_digest
from belle_kedro.pipelines.clean.dedup import (
    MinHashSettings,
    comparison_keys,
    find_near_duplicates,
    find_reference_matches,
)
from belle_kedro.pipelines.clean.rules import (
    EXAMPLE_CHARS,
    apply_rules,
    normalise_records,
)


def normalise_instructions(generated_instructions: pd.DataFrame) -> pd.DataFrame:
    """Safe NFKC and whitespace folding of instruction, input and output; provenance kept."""
    return normalise_records(generated_instructions)


def filter_instructions(
    records: pd.DataFrame, rules: Mapping[str, Mapping[str, Any]], examples: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the configured rule filters in order; report each rule's drops with examples."""
    kept, rule_rows = apply_rules(records, rules, examples=examples)
    return kept, {"input_records": len(records), "rules": rule_rows}


def _seed_texts(
    seed_tasks: pd.DataFrame, include_input: bool
) -> tuple[list[str], list[str] | None]:
    """Each seed task's instruction, with its first instance's input when asked."""
    instructions = [str(text) for text in seed_tasks["instruction"]]
    if not include_input:
        return instructions, None
    inputs = [
        str(instances[0]["input"]) if len(instances) else ""
        for instances in seed_tasks["instances"]
    ]
    return instructions, inputs


def _minhash(matching: Mapping[str, Any]) -> MinHashSettings:
    return build(MinHashSettings, matching["minhash"], "clean.matching.minhash")


def remove_near_duplicates(
    records: pd.DataFrame,
    seed_tasks: pd.DataFrame,
    settings: Mapping[str, Any],
    matching: Mapping[str, Any],
    examples: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop records whose instruction (optionally + input) has ROUGE-L F >= threshold
    against an earlier kept record or a seed task (Alpaca's rule, order-stable)."""
    threshold = float(settings["threshold"])
    include_input = bool(settings["include_input"])
    report: dict[str, Any] = {
        "rule": "near_duplicates",
        "enabled": bool(settings["enabled"]),
        "input": len(records),
        "threshold": threshold,
        "include_input": include_input,
        "against_seed_tasks": bool(settings["against_seed_tasks"]),
        "dropped": 0,
        "dropped_as_seed_duplicates": 0,
        "examples": [],
    }
    if not report["enabled"]:
        return records, report
    keys = comparison_keys(
        records["instruction"].tolist(),
        records["input"].tolist() if include_input else None,
    )
    seed_keys: list[str] = []
    seed_instructions: list[str] = []
    if report["against_seed_tasks"]:
        seed_instructions, seed_inputs = _seed_texts(seed_tasks, include_input)
        seed_keys = comparison_keys(seed_instructions, seed_inputs)
    found = find_near_duplicates(
        keys,
        seed_keys,
        threshold=threshold,
        minhash=_minhash(matching),
        workers=matching["workers"],
        progress="near-duplicate signatures",
    )
    report["candidate_pairs"] = found.candidates
    report["verified_pairs"] = found.verified
    dropped_positions = [
        position for position in range(len(records)) if not found.keep[position]
    ]
    report["dropped"] = len(dropped_positions)
    report["dropped_as_seed_duplicates"] = int(
        (found.duplicate_of >= len(records)).sum()
    )
    for position in dropped_positions[:examples]:
        match = int(found.duplicate_of[position])
        matched = (
            seed_instructions[match - len(records)]
            if match >= len(records)
            else records["instruction"].iat[match]
        )
        report["examples"].append(
            {
                "instruction": records["instruction"].iat[position],
                "duplicate_of": matched,
                "duplicate_of_seed_task": match >= len(records),
                "rouge_l": round(float(found.score[position]), 4),
            }
        )
    return records[found.keep].reset_index(drop=True), report


def decontaminate(
    records: pd.DataFrame,
    eval_set: pd.DataFrame,
    settings: Mapping[str, Any],
    matching: Mapping[str, Any],
    examples: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop records whose instruction (+ input) has ROUGE-L F >= threshold against an
    eval-set question; report drops per eval class and the eval set's digest."""
    threshold = float(settings["threshold"])
    report: dict[str, Any] = {
        "rule": "decontamination",
        "enabled": bool(settings["enabled"]),
        "input": len(records),
        "threshold": threshold,
        "include_input": bool(settings["include_input"]),
        "eval_questions": len(eval_set),
        "eval_set_digest": eval_set_digest(eval_set),
        "dropped": 0,
        "classes": {},
    }
    if not report["enabled"] or records.empty or eval_set.empty:
        return records, report
    keys = comparison_keys(
        records["instruction"].tolist(),
        records["input"].tolist() if report["include_input"] else None,
    )
    questions = eval_set["question"].tolist()
    found = find_reference_matches(
        keys,
        comparison_keys(questions),
        threshold=threshold,
        minhash=_minhash(matching),
        workers=matching["workers"],
        progress="decontamination signatures",
    )
    classes = eval_set["class"].tolist()
    for position in np.flatnonzero(~found.keep).tolist():
        question = int(found.duplicate_of[position]) - len(records)
        entry = report["classes"].setdefault(
            classes[question], {"dropped": 0, "examples": []}
        )
        entry["dropped"] += 1
        if len(entry["examples"]) < examples:
            entry["examples"].append(
                {
                    "instruction": str(records["instruction"].iat[position])[
                        :EXAMPLE_CHARS
                    ],
                    "input": str(records["input"].iat[position])[:EXAMPLE_CHARS],
                    "eval_question": questions[question][:EXAMPLE_CHARS],
                    "rouge_l": round(float(found.score[position]), 4),
                }
            )
    report["dropped"] = int((~found.keep).sum())
    report["classes"] = dict(sorted(report["classes"].items()))
    return records[found.keep].reset_index(drop=True), report


def build_clean_report(
    filter_report: dict[str, Any],
    dedup_report: dict[str, Any],
    decontamination_report: dict[str, Any],
    clean_instructions: pd.DataFrame,
) -> tuple[dict[str, Any], dict[str, dict[str, float]], dict[str, str]]:
    """The JSON report (per-step drops + examples), the counts as MLflow metrics and the
    eval set's digest as an MLflow tag."""
    steps = [*filter_report["rules"], dedup_report, decontamination_report]
    report: dict[str, Any] = {
        "input_records": filter_report["input_records"],
        "output_records": len(clean_instructions),
        "eval_set_digest": decontamination_report["eval_set_digest"],
        "steps": steps,
    }
    if report["input_records"] == 0:
        report["note"] = "the input held no records: the clean output is empty"
    metrics = {
        "input_records": report["input_records"],
        "output_records": report["output_records"],
        **{f"dropped.{step['rule']}": step["dropped"] for step in steps},
        **{
            f"decontamination.{name}": entry["dropped"]
            for name, entry in decontamination_report["classes"].items()
        },
    }
    tags = {"eval_set_digest": decontamination_report["eval_set_digest"]}
    return report, as_metrics(metrics), tags
