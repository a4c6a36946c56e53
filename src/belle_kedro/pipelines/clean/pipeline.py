"""Wiring of the clean pipeline: normalise -> rule filters -> near-duplicates -> report."""

from kedro.pipeline import Node, Pipeline

from belle_kedro.pipelines.clean.nodes import (
    build_clean_report,
    filter_instructions,
    normalise_instructions,
    remove_near_duplicates,
)


def create_pipeline() -> Pipeline:
    """generated_instructions -> clean_instructions, clean_report and clean_metrics."""
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
                ["filtered_instructions", "clean_filter_report"],
                name="filter_instructions",
            ),
            Node(
                remove_near_duplicates,
                [
                    "filtered_instructions",
                    "seed_tasks",
                    "params:clean.near_duplicates",
                    "params:clean.report_examples",
                ],
                ["clean_instructions", "clean_dedup_report"],
                name="remove_near_duplicates",
            ),
            Node(
                build_clean_report,
                ["clean_filter_report", "clean_dedup_report", "clean_instructions"],
                ["clean_report", "clean_metrics"],
                name="build_clean_report",
            ),
        ]
    )
