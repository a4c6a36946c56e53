"""Wiring of the review pipeline: sample -> tasks -> annotations -> reviewed_instructions."""

from kedro.pipeline import Node, Pipeline

from belle_kedro.pipelines.review.nodes import (
    apply_review,
    export_review_tasks,
    pull_annotations,
    select_for_review,
)


def create_tasks_pipeline() -> Pipeline:
    """clean's outputs -> review_sample, review_tasks, review_label_config."""
    return Pipeline(
        [
            Node(
                select_for_review,
                {
                    "clean_instructions": "clean_instructions",
                    "clean_task_classes": "clean_task_classes",
                    "clean_drops": "clean_drops",
                    "seed_tasks": "seed_tasks",
                    "task_classifier": "task_classifier",
                    "clean_params": "params:clean",
                    "params": "params:review",
                },
                ["review_sample", "review_selection"],
                name="select_for_review",
            ),
            Node(
                export_review_tasks,
                ["review_sample", "review_selection", "params:review"],
                ["review_tasks", "review_label_config"],
                name="export_review_tasks",
            ),
        ]
    )


def create_pipeline() -> Pipeline:
    """The tasks, then the annotations applied: reviewed_instructions + review report."""
    return create_tasks_pipeline() + Pipeline(
        [
            Node(
                pull_annotations,
                ["review_export", "params:review"],
                "review_annotations",
                name="pull_annotations",
            ),
            Node(
                apply_review,
                [
                    "clean_instructions",
                    "review_sample",
                    "review_annotations",
                    "review_selection",
                    "params:review",
                ],
                ["reviewed_instructions", "review_report", "review_metrics"],
                name="apply_review",
            ),
        ]
    )
