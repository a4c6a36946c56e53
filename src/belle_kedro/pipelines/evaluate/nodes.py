"""Evaluate nodes: answer the eval set, judge and score the answers, report, crown a champion.

Per variant (namespaced like train): ``answer_questions`` -> ``judge_answers`` ->
``score_answers`` -> ``variant_metrics``. Across variants: ``build_score_tables`` ->
``plot_scaling`` / ``choose_champion`` -> ``assign_champion_alias`` -> ``write_report``.

``answer_questions`` loads a model from the MLflow registry, ``judge_answers`` talks to
the judge's API (and appends to its journal on disk), ``assign_champion_alias`` writes
to the MLflow registry; the others are pure.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from belle_kedro.common.config import build
from belle_kedro.common.template import build_prompt
from belle_kedro.common.tracking import as_metrics
from belle_kedro.datasets.eval_set import eval_set_digest
from belle_kedro.llm.client import open_client
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.pipelines.evaluate import answering, judge, report, scores
from belle_kedro.pipelines.evaluate.judge_settings import JudgeSettings

logger = logging.getLogger(__name__)


def _question_id(cls: str, question: str) -> str:
    return hashlib.sha256(f"{cls}\x1f{question}".encode()).hexdigest()[:16]


def select_questions(
    eval_set: pd.DataFrame, selection: Mapping[str, Any]
) -> pd.DataFrame:
    """The questions every variant answers: all, or a seeded sample of ``max_per_class``.

    Adds ``question_id`` (a hash of class and question), stable across runs and variants.
    """
    questions = eval_set.copy()
    questions["question_id"] = [
        _question_id(cls, question)
        for cls, question in zip(questions["class"], questions["question"], strict=True)
    ]
    duplicated = questions["question_id"].duplicated()
    if duplicated.any():
        logger.warning(
            "Dropping %d repeated questions from the eval set", int(duplicated.sum())
        )
        questions = questions[~duplicated]
    max_per_class = selection["max_per_class"]
    if max_per_class:
        shuffled = questions.sample(frac=1.0, random_state=int(selection["seed"]))
        questions = (
            shuffled.groupby("class", sort=False).head(int(max_per_class)).sort_index()
        )
    return questions.reset_index(drop=True)[
        ["question_id", "class", "question", "std_answer"]
    ]


def answer_questions(
    questions: pd.DataFrame,
    model_version: Mapping[str, Any],
    generation: Mapping[str, Any],
) -> pd.DataFrame:
    """The registered model's answers through the shared template, plus its NLL on each std answer.

    Loads ``model_version["model_uri"]`` from the MLflow registry once, and uses it to
    answer (greedy when the temperature is ~0) and to score the standard answers.
    """
    model, tokenizer = answering.load_registered_model(
        str(model_version["model_uri"]),
        device=str(generation["device"]),
        dtype=str(generation["dtype"]),
    )
    answers, nll = answering.answer_in_length_order(
        model,
        tokenizer,
        [build_prompt(question) for question in questions["question"]],
        questions["std_answer"].tolist(),
        generation,
        progress=f"answer {model_version['variant']}",
    )
    result = questions.copy()
    result["answer"] = answers
    result["reference_nll"] = [value for value, _ in nll]
    result["reference_tokens"] = [tokens for _, tokens in nll]
    result["variant"] = str(model_version["variant"])
    result["train_size"] = int(model_version["train_size"])
    result["registered_model_name"] = str(model_version["registered_model_name"])
    result["model_version"] = str(model_version["version"])
    result["model_uri"] = str(model_version["model_uri"])
    result["temperature"] = float(generation["temperature"])
    return result


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
    return scores.score_rows(answers, judgements, scoring)


def variant_metrics(scored_answers: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per-class mean scores and offline means for the variant's MLflow child run."""
    class_means = {
        str(cls): float(mean)
        for cls, mean in scored_answers.groupby("class", sort=True)["score"]
        .mean()
        .items()
    }
    summary = {
        f"score.{cls.replace(' ', '_')}": mean for cls, mean in class_means.items()
    }
    summary["score.macro"] = report.macro_average(class_means)
    offline = report.offline_summary(scored_answers).iloc[0].drop("variant")
    summary.update({f"offline.{name}": value for name, value in offline.items()})
    return as_metrics(summary)


def build_score_tables(
    report_params: Mapping[str, Any],
    variant_sizes: Mapping[str, int],
    *scored_answers: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The class x variant table, the macro table, the offline summary, judge reliability.

    A variant's size is its nominal size from ``split.variant_sizes`` (BELLE's 0.2M to
    2M), not the record count train saw: ``conf/belle`` adds the same English mix-in to
    every variant, which BELLE's figure does not count either. The record count stays
    in the answers as ``train_records``.
    """
    combined = pd.concat(scored_answers, ignore_index=True)
    combined["train_records"] = combined["train_size"]
    combined["train_size"] = [
        int(variant_sizes[variant]) for variant in combined["variant"]
    ]
    table, macro = report.score_tables(
        combined,
        n_resamples=int(report_params["bootstrap_resamples"]),
        confidence=float(report_params["confidence"]),
        seed=int(report_params["seed"]),
        macro_exclusions=list(report_params["macro_exclusions"]),
    )
    for column in ("score_source", "score_metric"):
        macro[column] = " / ".join(combined[column].drop_duplicates().tolist())
    return (
        table,
        macro,
        report.offline_summary(combined),
        report.judge_reliability(combined),
    )


def _published(
    report_params: Mapping[str, Any], eval_set: pd.DataFrame
) -> tuple[dict[int, float], str]:
    """BELLE's published scores and their label, or ``({}, why they are not shown)``.

    They are only comparable on BELLE's own eval set, so they are shown only when the
    eval set's digest is the one ``published.eval_set_digest`` names.
    """
    published = report_params["published"]
    if not published:
        return {}, "no published scores are configured (evaluate.report.published)"
    digest = eval_set_digest(eval_set)
    if digest != published["eval_set_digest"]:
        return {}, (
            f"{published['label']} not shown: they were measured on BELLE's eval set "
            f"(digest {published['eval_set_digest'][:12]}…), this run's eval set has "
            f"digest {digest[:12]}…, so the numbers would not be comparable"
        )
    overall = {int(size): float(value) for size, value in published["overall"].items()}
    return overall, str(published["label"])


def plot_scaling(
    table: pd.DataFrame,
    macro: pd.DataFrame,
    eval_set: pd.DataFrame,
    report_params: Mapping[str, Any],
) -> tuple[Any, Any]:
    """The scaling plot as a matplotlib figure (PNG) and a plotly figure (kedro-viz)."""
    published, label = _published(report_params, eval_set)
    return report.scaling_figures(
        table,
        macro,
        score_label=str(macro["score_metric"].iloc[0]),
        published=published,
        published_label=label,
    )


def plot_class_heatmap(table: pd.DataFrame, macro: pd.DataFrame) -> tuple[Any, Any]:
    """The class x variant heat map with CIs, as PNG (matplotlib) and plotly JSON."""
    return report.class_heatmap_figures(
        table, score_label=str(macro["score_metric"].iloc[0])
    )


def choose_champion(macro: pd.DataFrame, champion: Mapping[str, Any]) -> dict[str, Any]:
    """The champion by ``champion.rule`` on ``champion.metric``."""
    return report.choose_champion(macro, str(champion["metric"]), str(champion["rule"]))


def assign_champion_alias(
    best: Mapping[str, Any], champion: Mapping[str, Any]
) -> dict[str, Any]:
    """Point the registry alias (``champion.alias``) at the champion's version.

    The version also gets a ``champion_rule`` tag naming the rule that chose it.
    """
    from mlflow.tracking import MlflowClient

    alias = str(champion["alias"])
    client = MlflowClient()
    client.set_registered_model_alias(
        best["registered_model_name"], alias, best["version"]
    )
    client.set_model_version_tag(
        best["registered_model_name"], best["version"], "champion_rule", best["rule"]
    )
    logger.info(
        "Alias %s -> %s version %s (%s)",
        alias,
        best["registered_model_name"],
        best["version"],
        best["variant"],
    )
    return {
        **best,
        "alias": alias,
        "model_uri_alias": f"models:/{best['registered_model_name']}@{alias}",
    }


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
    published, label = _published(report_params, eval_set)
    return report.markdown_report(
        table,
        macro,
        offline,
        reliability,
        champion,
        score_description=str(macro["score_source"].iloc[0]),
        macro_exclusions=list(report_params["macro_exclusions"]),
        confidence=float(report_params["confidence"]),
        published=published,
        published_label=label,
    )


def report_metrics(
    macro: pd.DataFrame, champion: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    """Macro scores per variant (and the champion's) for the parent MLflow run."""
    values: dict[str, float] = {}
    for row in macro.itertuples(index=False):
        values[f"macro.{row.variant}"] = float(row.macro)  # type: ignore[arg-type]
        values[f"macro_excl.{row.variant}"] = float(row.macro_excl)  # type: ignore[arg-type]
    values["champion.score"] = champion["score"]
    return as_metrics(values)
