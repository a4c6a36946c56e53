"""Wiring of the generate pipeline."""

from kedro.pipeline import Node, Pipeline

from belle_kedro.pipelines.generate.nodes import (
    generation_metrics,
    parse_responses,
    request_responses,
)


def create_pipeline() -> Pipeline:
    """seed_tasks -> (raw_responses journal) -> generation_summary -> generated_instructions."""
    return Pipeline(
        [
            Node(
                request_responses,
                inputs=[
                    "seed_tasks",
                    "generation_prompt",
                    "raw_responses",
                    "generator_credentials",
                    "params:generate",
                ],
                outputs="generation_summary",
                name="request_responses",
            ),
            Node(
                parse_responses,
                inputs=["raw_responses", "generation_summary", "params:generate"],
                outputs="generated_instructions",
                name="parse_responses",
            ),
            Node(
                generation_metrics,
                inputs="generation_summary",
                outputs="generation_metrics",
                name="generation_metrics",
            ),
        ]
    )
