"""Wiring of the evaluate pipeline: one namespace per variant, then one report for all."""

from collections.abc import Sequence

from kedro.pipeline import Node, Pipeline

from belle_kedro.pipelines.evaluate.nodes import (
    answer_questions,
    assign_champion_alias,
    build_score_tables,
    choose_champion,
    judge_answers,
    plot_class_heatmap,
    plot_scaling,
    report_metrics,
    score_answers,
    select_questions,
    variant_metrics,
    write_report,
)

# Shared by every variant, so kept out of the namespaces.
SHARED_INPUTS = {
    "eval_questions",
    "judge_prompts",
    "judge_templates",
    "judge_credentials",
}
SHARED_PARAMETERS = {
    "params:evaluate.generation",
    "params:evaluate.judge",
    "params:evaluate.scoring",
}


def _variant_template() -> Pipeline:
    return Pipeline(
        [
            Node(
                answer_questions,
                ["eval_questions", "model_version", "params:evaluate.generation"],
                "answers",
                name="answer_questions",
            ),
            Node(
                judge_answers,
                {
                    "answers": "answers",
                    "judge_prompts": "judge_prompts",
                    "judge_templates": "judge_templates",
                    "journal": "judge_journal",
                    "credentials": "judge_credentials",
                    "judge_params": "params:evaluate.judge",
                },
                "judgements",
                name="judge_answers",
            ),
            Node(
                score_answers,
                ["answers", "judgements", "params:evaluate.scoring"],
                "scored_answers",
                name="score_answers",
            ),
            Node(
                variant_metrics,
                "scored_answers",
                "eval_metrics",
                name="variant_metrics",
            ),
        ]
    )


def create_pipeline(variants: Sequence[str]) -> Pipeline:
    """Eval questions, one namespaced pipeline per variant, then the shared report."""
    per_variant = sum(
        (
            Pipeline(
                _variant_template(),
                namespace=variant,
                inputs=SHARED_INPUTS,
                parameters=SHARED_PARAMETERS,
            )
            for variant in variants
        ),
        Pipeline([]),
    )
    report = Pipeline(
        [
            Node(
                build_score_tables,
                [
                    "params:evaluate.report",
                    "params:split.variant_sizes",
                    *(f"{variant}.scored_answers" for variant in variants),
                ],
                ["eval_table", "eval_macro", "offline_summary", "judge_reliability"],
                name="build_score_tables",
            ),
            Node(
                plot_scaling,
                {
                    "table": "eval_table",
                    "macro": "eval_macro",
                    "eval_set": "eval_set",
                    "report_params": "params:evaluate.report",
                },
                ["scaling_plot_png", "scaling_plot"],
                name="plot_scaling",
            ),
            Node(
                plot_class_heatmap,
                ["eval_table", "eval_macro"],
                ["class_heatmap_png", "class_heatmap"],
                name="plot_class_heatmap",
            ),
            Node(
                choose_champion,
                ["eval_macro", "params:evaluate.champion"],
                "best_variant",
                name="choose_champion",
            ),
            Node(
                assign_champion_alias,
                ["best_variant", "params:evaluate.champion"],
                "champion",
                name="assign_champion_alias",
            ),
            Node(
                write_report,
                {
                    "table": "eval_table",
                    "macro": "eval_macro",
                    "offline": "offline_summary",
                    "reliability": "judge_reliability",
                    "champion": "champion",
                    "eval_set": "eval_set",
                    "report_params": "params:evaluate.report",
                },
                "eval_report",
                name="write_report",
            ),
            Node(
                report_metrics,
                ["eval_macro", "champion"],
                "evaluate_metrics",
                name="report_metrics",
            ),
        ]
    )
    questions = Pipeline(
        [
            Node(
                select_questions,
                ["eval_set", "params:evaluate.questions"],
                "eval_questions",
                name="select_eval_questions",
            )
        ]
    )
    return questions + per_variant + report
