"""Wiring of the clean pipeline: normalise -> rules -> near duplicates -> decontamination -> task classes -> report."""

from kedro.pipeline import Node, Pipeline

from belle_kedro.pipelines.clean.nodes import (
    classify_tasks,
    decontaminate,
    filter_instructions,
    normalise_instructions,
    remove_near_duplicates,
)
from belle_kedro.pipelines.clean.report import clean_report


def create_pipeline() -> Pipeline:
    """generated_instructions (+ seed_tasks, eval_set) -> clean_instructions, their task classes, clean_drops, clean_report, clean_metrics, clean_tags."""
    return Pipeline(
        [
            Node(
                normalise_instructions,
                "generated_instructions",
                "normalised_instructions",
                name="normalise_instructions",
            ),
            Node(
                filter_instructions,
                [
                    "normalised_instructions",
                    "params:clean.rules",
                    "params:clean.report_examples",
                ],
                ["filtered_instructions", "clean_rule_drops", "clean_filter_report"],
                name="filter_instructions",
            ),
            Node(
                remove_near_duplicates,
                {
                    "records": "filtered_instructions",
                    "seed_tasks": "seed_tasks",
                    "settings": "params:clean.near_duplicates",
                    "matching": "params:clean.matching",
                    "examples": "params:clean.report_examples",
                    "engine": "params:clean.engine",
                },
                [
                    "deduplicated_instructions",
                    "clean_duplicate_drops",
                    "clean_dedup_report",
                ],
                name="remove_near_duplicates",
            ),
            Node(
                decontaminate,
                {
                    "records": "deduplicated_instructions",
                    "eval_set": "eval_set",
                    "settings": "params:clean.decontamination",
                    "matching": "params:clean.matching",
                    "examples": "params:clean.report_examples",
                    "engine": "params:clean.engine",
                },
                [
                    "clean_instructions",
                    "clean_contamination_drops",
                    "clean_decontamination_report",
                ],
                name="decontaminate",
            ),
            Node(
                classify_tasks,
                {
                    "clean_instructions": "clean_instructions",
                    "rule_drops": "clean_rule_drops",
                    "duplicate_drops": "clean_duplicate_drops",
                    "contamination_drops": "clean_contamination_drops",
                    "seed_tasks": "seed_tasks",
                    "eval_set": "eval_set",
                    "settings": "params:clean.classifier",
                },
                [
                    "task_classifier",
                    "clean_task_classes",
                    "clean_drops",
                    "clean_class_counts",
                ],
                name="classify_tasks",
            ),
            Node(
                clean_report,
                [
                    "clean_filter_report",
                    "clean_dedup_report",
                    "clean_decontamination_report",
                    "clean_class_counts",
                    "clean_instructions",
                ],
                ["clean_report", "clean_metrics", "clean_tags"],
                name="build_clean_report",
            ),
        ]
    )
