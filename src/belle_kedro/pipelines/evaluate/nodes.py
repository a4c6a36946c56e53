"""Evaluate nodes: answer the eval set, judge and score the answers, report, crown a champion.

Per variant (namespaced like train): ``answer_questions`` -> ``judge_answers`` ->
``score_answers`` -> ``variant_metrics``. Across variants: ``build_score_tables`` ->
``plot_scaling`` / ``plot_class_heatmap`` / ``choose_champion`` ->
``assign_champion_alias`` -> ``write_report`` / ``report_metrics``.

Each node builds its settings from its ``params:evaluate.*`` block and calls the
modules beside it: ``questions``, ``answering``, ``judge``, ``scores``, ``summaries``
(with ``statistics``), ``figures``, ``champion``, ``published`` and ``markdown``.
``answer_questions`` loads a model from the MLflow registry, ``judge_answers`` talks to
the judge's API (and appends to its journal on disk), ``assign_champion_alias`` writes
to the MLflow registry; the others are pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import mlflow
import pandas as pd

from belle_kedro.common.config import build
from belle_kedro.common.tracking import as_metrics
from belle_kedro.llm.client import open_client
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.pipelines.evaluate import (
    answering,
    figures,
    judge,
    markdown,
    questions,
    scores,
    summaries,
)
from belle_kedro.pipelines.evaluate import champion as champions
from belle_kedro.pipelines.evaluate.judge_settings import JudgeSettings
from belle_kedro.pipelines.evaluate.published import published_scores
from belle_kedro.pipelines.evaluate.settings import (
    ChampionSettings,
    GenerationSettings,
    QuestionsSettings,
    ReportSettings,
    ScoringSettings,
)


def select_questions(
    eval_set: pd.DataFrame, selection: Mapping[str, Any]
) -> pd.DataFrame:
    """The questions every variant answers: all, or a seeded sample of ``max_per_class``.

    Adds ``question_id`` (a hash of class and question), stable across runs and variants.
    """
    settings = build(QuestionsSettings, selection, "evaluate.questions")
    return questions.select_questions(eval_set, settings)


def answer_questions(
    questions: pd.DataFrame,
    model_version: Mapping[str, Any],
    generation: Mapping[str, Any],
) -> pd.DataFrame:
    """The registered model's answers through the shared template, plus its NLL on each std answer.

    The questions are logged with ``mlflow.log_input`` (context ``evaluation``) on the
    active run, the variant's child run that scores with them.
    """
    settings = build(GenerationSettings, generation, "evaluate.generation")
    if mlflow.active_run() is not None:
        mlflow.log_input(
            mlflow.data.from_pandas(questions, name="eval_questions"),  # type: ignore[attr-defined]
            context="evaluation",
        )
    return answering.answer_questions(questions, model_version, settings)


def judge_answers(
    answers: pd.DataFrame,
    judge_prompts: Mapping[str, str],
    judge_templates: Mapping[str, Callable[[], Any]],
    *,
    journal: ResponseJournal,
    credentials: Mapping[str, Any],
    judge_params: Mapping[str, Any],
) -> pd.DataFrame:
    """Judge scores per answer: the mean of ``samples`` parsed judge replies.

    Switched off (``enabled: false``) this returns no rows and the table falls back to
    the offline score; ``max_answers`` judges only the first N answers.
    """
    settings = build(JudgeSettings, judge_params, "evaluate.judge")
    if not settings.enabled:
        return judge.empty_judgements()
    selected = answers.head(settings.max_answers) if settings.max_answers else answers
    # Checked before the backend loads or anything is paid for.
    class_prompts = judge.class_prompts_for(selected, judge_prompts)
    template = judge.load_template(judge_templates, settings.template)
    client = open_client(settings.backend, credentials, "evaluate.judge.backend")
    return judge.collect_judgements(
        selected,
        class_prompts,
        template,
        client=client,
        journal=journal,
        settings=settings,
    )


def score_answers(
    answers: pd.DataFrame, judgements: pd.DataFrame, scoring: Mapping[str, Any]
) -> pd.DataFrame:
    """Offline metrics per answer, the judge's score, and the ``score`` the tables use."""
    settings = build(ScoringSettings, scoring, "evaluate.scoring")
    return scores.score_rows(answers, judgements, settings)


def variant_metrics(scored_answers: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per-class mean scores and offline means for the variant's MLflow child run."""
    return as_metrics(summaries.variant_summary(scored_answers))


def build_score_tables(
    report_params: Mapping[str, Any],
    variant_sizes: Mapping[str, int],
    *scored_answers: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The class x variant table, the macro table, the offline summary, judge reliability.

    Variants are sized by ``split.variant_sizes`` (see
    :func:`~belle_kedro.pipelines.evaluate.summaries.combine_variants`).
    """
    settings = build(ReportSettings, report_params, "evaluate.report")
    sizes = {str(variant): int(size) for variant, size in variant_sizes.items()}
    tables = summaries.report_tables(scored_answers, sizes, settings)
    return tables.table, tables.macro, tables.offline, tables.reliability


def plot_scaling(
    table: pd.DataFrame,
    macro: pd.DataFrame,
    eval_set: pd.DataFrame,
    report_params: Mapping[str, Any],
) -> tuple[Any, Any]:
    """The scaling plot as a matplotlib figure (PNG) and a plotly figure (kedro-viz)."""
    settings = build(ReportSettings, report_params, "evaluate.report")
    chart = figures.scaling_chart(
        table,
        macro,
        score_label=str(macro["score_metric"].iloc[0]),
        published=published_scores(settings.published, eval_set),
    )
    return figures.to_matplotlib(chart), figures.to_plotly(chart)


def plot_class_heatmap(table: pd.DataFrame, macro: pd.DataFrame) -> tuple[Any, Any]:
    """The class x variant heat map with CIs, as PNG (matplotlib) and plotly JSON."""
    heatmap = figures.class_heatmap(
        table, score_label=str(macro["score_metric"].iloc[0])
    )
    return figures.to_matplotlib(heatmap), figures.to_plotly(heatmap)


def choose_champion(macro: pd.DataFrame, champion: Mapping[str, Any]) -> dict[str, Any]:
    """The champion by ``champion.rule`` on ``champion.metric``."""
    settings = build(ChampionSettings, champion, "evaluate.champion")
    return champions.choose_champion(macro, settings)


def assign_champion_alias(
    best: Mapping[str, Any], champion: Mapping[str, Any]
) -> dict[str, Any]:
    """Point the registry alias (``champion.alias``) at the champion's version.

    The version also gets a ``champion_rule`` tag naming the rule that chose it.
    """
    settings = build(ChampionSettings, champion, "evaluate.champion")
    return champions.assign_alias(best, settings.alias)


def write_report(
    table: pd.DataFrame,
    macro: pd.DataFrame,
    offline: pd.DataFrame,
    *,
    reliability: pd.DataFrame,
    champion: Mapping[str, Any],
    eval_set: pd.DataFrame,
    report_params: Mapping[str, Any],
) -> str:
    """The markdown report for ``08_reporting``."""
    settings = build(ReportSettings, report_params, "evaluate.report")
    return markdown.markdown_report(
        table,
        macro,
        offline,
        reliability,
        champion,
        settings=settings,
        published=published_scores(settings.published, eval_set),
    )


def report_metrics(
    macro: pd.DataFrame, champion: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    """Macro scores per variant (and the champion's) for the parent MLflow run."""
    return as_metrics(summaries.parent_run_summary(macro, champion))
