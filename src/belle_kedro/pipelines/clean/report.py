"""The clean report: every step's drops in one JSON, its counts as MLflow metrics."""

from __future__ import annotations

from typing import Any

import pandas as pd

from belle_kedro.common.tracking import as_metrics


def clean_report(
    filter_report: dict[str, Any],
    dedup_report: dict[str, Any],
    decontamination_report: dict[str, Any],
    class_counts: dict[str, Any],
    clean_instructions: pd.DataFrame,
) -> tuple[dict[str, Any], dict[str, dict[str, float]], dict[str, str]]:
    """The JSON report (per-step drops + examples, kept records per predicted task
    class), the counts as MLflow metrics and the eval set's digest as an MLflow tag."""
    steps = [*filter_report["rules"], dedup_report, decontamination_report]
    report: dict[str, Any] = {
        "input_records": filter_report["input_records"],
        "output_records": len(clean_instructions),
        "eval_set_digest": decontamination_report["eval_set_digest"],
        "steps": steps,
        "task_classes": class_counts,
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
        **{
            f"kept.class.{name}": count
            for name, count in class_counts["kept_per_class"].items()
        },
        "classifier.held_out_accuracy": class_counts["classifier"]["held_out_accuracy"],
    }
    tags = {"eval_set_digest": decontamination_report["eval_set_digest"]}
    return report, as_metrics(metrics), tags
