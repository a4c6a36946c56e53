"""Evaluate nodes: answer the eval set, judge and score the answers, report, crown a champion.

Per variant (namespaced like train): ``answer_questions`` -> ``judge_answers`` ->
``score_answers`` -> ``variant_metrics``. Across variants: ``build_score_tables`` ->
``plot_scaling`` / ``choose_champion`` -> ``assign_champion_alias`` -> ``write_report``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from belle_kedro import judging, metrics, reporting
from belle_kedro.formats.eval import prompt_for_class
from belle_kedro.journal import ResponseJournal
from belle_kedro.templates import build_prompt

logger = logging.getLogger(__name__)

# At or below this temperature sampling is indistinguishable from argmax, so decode
# greedily (BELLE's evals used 0.001) and make answers exactly reproducible.
GREEDY_BELOW_TEMPERATURE = 0.01

# The offline metrics a table can be built on when the judge is off (all in [0, 1]).
OFFLINE_SCORES = {
    "rouge_l": "character ROUGE-L F1 of the answer against the standard answer",
    "char_f1": "character-bag F1 of the answer against the standard answer",
    "number_match": "exact match of the final number (math-like classes only)",
    "reference_token_prob": "geometric-mean probability of the standard answer's tokens, 1 / perplexity",
}

JUDGE_COLUMNS = [
    "question_id",
    "judge_model",
    "judge_samples",
    "judge_parsed_samples",
    "judge_score",
    "judge_parsed",
    "judge_replies",
]


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
    max_per_class = selection.get("max_per_class")
    if max_per_class:
        shuffled = questions.sample(
            frac=1.0, random_state=int(selection.get("seed", 0))
        )
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

    Loads ``model_version["model_uri"]`` from the MLflow registry, decodes in batches
    (greedy when the temperature is ~0) and scores the standard answers' likelihood
    with the same weights, so the model is loaded once per variant.
    """
    from belle_kedro.modeling import generate_answers
    from belle_kedro.registry import load_registered_model

    model, tokenizer = load_registered_model(str(model_version["model_uri"]))
    temperature = float(generation.get("temperature", 0.001))
    batch_size = int(generation.get("batch_size", 8))
    prompts = [build_prompt(question) for question in questions["question"]]
    references = questions["std_answer"].tolist()
    # Batches of similar length waste little on padding; results go back in eval-set order.
    order = sorted(
        range(len(prompts)), key=lambda i: len(prompts[i]) + len(references[i])
    )
    torch.manual_seed(int(generation.get("seed", 0)))
    sorted_answers = generate_answers(
        model,
        tokenizer,
        [prompts[i] for i in order],
        max_new_tokens=int(generation.get("max_new_tokens", 512)),
        batch_size=batch_size,
        do_sample=temperature > GREEDY_BELOW_TEMPERATURE,
        temperature=temperature,
        top_p=float(generation.get("top_p", 1.0)),
        progress=f"answer {model_version['variant']}",
    )
    sorted_nll = metrics.reference_nll(
        model,
        tokenizer,
        [prompts[i] for i in order],
        [references[i] for i in order],
        batch_size=batch_size,
    )
    answers: list[str] = [""] * len(prompts)
    nll: list[tuple[float, int]] = [(math.nan, 0)] * len(prompts)
    for position, i in enumerate(order):
        answers[i] = sorted_answers[position]
        nll[i] = sorted_nll[position]
    result = questions.copy()
    result["answer"] = answers
    result["reference_nll"] = [value for value, _ in nll]
    result["reference_tokens"] = [tokens for _, tokens in nll]
    result["variant"] = str(model_version["variant"])
    result["train_size"] = int(model_version["train_size"])
    result["registered_model_name"] = str(model_version["registered_model_name"])
    result["model_version"] = str(model_version["version"])
    result["model_uri"] = str(model_version["model_uri"])
    result["temperature"] = temperature
    return result


def _judge_request_params(judge: Mapping[str, Any]) -> dict[str, Any]:
    return dict(judge.get("request_params") or {})


def _empty_judgements() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in JUDGE_COLUMNS})


def class_prompts_for(
    answers: pd.DataFrame, judge_prompts: Mapping[str, str]
) -> dict[str, str]:
    """The judge prompt of every class in ``answers``; a class without one is a clear error."""
    return {
        cls: prompt_for_class(judge_prompts, cls)
        for cls in sorted(answers["class"].unique())
    }


def build_judge_requests(
    answers: pd.DataFrame,
    class_prompts: Mapping[str, str],
    judge: Mapping[str, Any],
    judge_model: str,
) -> list[Any]:
    """One request per (answer, sample); ids from judge model + prompt hash + sample index."""
    from belle_kedro.llm.base import LLMRequest

    model = judge_model
    params = _judge_request_params(judge)
    n_samples = int(judge.get("samples", 3))
    requests = []
    rows = answers[
        ["question_id", "variant", "class", "question", "std_answer", "answer"]
    ].to_dict("records")
    for row in rows:
        prompt = judging.build_judge_prompt(
            class_prompts[row["class"]],
            row["question"],
            row["std_answer"],
            row["answer"],
        )
        for sample, request_id in enumerate(
            judging.sample_ids(model, prompt, n_samples, params)
        ):
            requests.append(
                LLMRequest(
                    request_id=request_id,
                    prompt=prompt,
                    system=judge.get("system") or None,
                    params=params,
                    meta={
                        "question_id": row["question_id"],
                        "variant": row["variant"],
                        "sample": sample,
                    },
                )
            )
    return requests


def judge_answers(
    answers: pd.DataFrame,
    judge_prompts: Mapping[str, str],
    journal: ResponseJournal,
    credentials: Mapping[str, Any],
    judge: Mapping[str, Any],
) -> pd.DataFrame:
    """Judge scores per answer: the mean of ``samples`` parsed judge replies.

    Switched off (``enabled: false``) this returns no rows and the table falls back to
    the offline score. Requests go through ``collect_responses`` with the variant's
    journal, so an interrupted run resumes and a re-run with the same judge, prompts
    and answers sends nothing.
    """
    if not judge.get("enabled", False):
        return _empty_judgements()
    from belle_kedro.llm.factory import build_backend
    from belle_kedro.llm.runner import collect_responses_async, run_sync

    selected = answers
    max_answers = judge.get("max_answers")
    if max_answers:
        selected = answers.head(int(max_answers))
    # Checked before the backend loads or anything is paid for.
    class_prompts = class_prompts_for(selected, judge_prompts)
    variant = str(answers["variant"].iloc[0]) if len(answers) else "unknown"
    backend = build_backend(judge["backend"], credentials)
    requests = build_judge_requests(selected, class_prompts, judge, backend.model)

    async def judge_all() -> dict[str, Any]:
        # One event loop for the requests and the close, so pooled connections are
        # released by the loop that opened them.
        try:
            return await collect_responses_async(
                backend,
                requests,
                journal,
                max_in_flight=int(judge.get("max_in_flight", 8)),
                requests_per_minute=judge.get("requests_per_minute"),
                tokens_per_minute=judge.get("tokens_per_minute"),
                progress=f"judge {variant}",
            )
        finally:
            await backend.aclose()
            journal.close()

    responses = run_sync(judge_all())
    by_question: dict[str, list[Any]] = {}
    for request in requests:
        by_question.setdefault(request.meta["question_id"], []).append(
            responses.get(request.request_id)
        )
    rows = []
    unparsed_replies = 0
    for question_id, samples in by_question.items():
        replies = [
            response.text if response is not None and response.ok else None
            for response in samples
        ]
        average = judging.average_samples(
            [judging.parse_score(reply) for reply in replies]
        )
        unparsed_replies += average.n_samples - average.n_parsed
        rows.append(
            {
                "question_id": question_id,
                "judge_model": backend.model,
                "judge_samples": average.n_samples,
                "judge_parsed_samples": average.n_parsed,
                "judge_score": average.score,
                "judge_parsed": average.parsed,
                "judge_replies": json.dumps(replies, ensure_ascii=False),
            }
        )
    if unparsed_replies:
        logger.warning(
            "Judge (%s): %d of %d replies had no readable score; left out, not counted as 0",
            variant,
            unparsed_replies,
            len(requests),
        )
    return pd.DataFrame(rows, columns=JUDGE_COLUMNS) if rows else _empty_judgements()


def score_answers(
    answers: pd.DataFrame, judgements: pd.DataFrame, scoring: Mapping[str, Any]
) -> pd.DataFrame:
    """Offline metrics per answer, the judge's score, and the ``score`` the tables use.

    ``score`` is the judge's mean when judging ran, else the offline metric named by
    ``scoring.offline_score`` (NaN where it is undefined, e.g. no standard answer);
    ``score_source`` says which, in words, for the report.
    """
    number_classes = set(scoring.get("number_match_classes", ["math"]))
    offline = pd.DataFrame(
        [
            metrics.reference_metrics(
                answer, std_answer, number_match=cls in number_classes
            )
            for answer, std_answer, cls in zip(
                answers["answer"], answers["std_answer"], answers["class"], strict=True
            )
        ],
        index=answers.index,
    )
    scored = pd.concat([answers, offline], axis=1)
    scored["perplexity"] = [
        math.exp(nll / tokens) if tokens else math.nan
        for nll, tokens in zip(
            scored["reference_nll"], scored["reference_tokens"], strict=True
        )
    ]
    # Geometric-mean probability the model gives each standard-answer token: in [0, 1],
    # higher is better, and it separates smoke-sized models whose answers are empty.
    scored["reference_token_prob"] = 1.0 / scored["perplexity"]
    judged = judgements.drop_duplicates("question_id")
    scored = scored.merge(judged, on="question_id", how="left")
    scored["judge_samples"] = scored["judge_samples"].fillna(0).astype(int)
    scored["judge_parsed_samples"] = (
        scored["judge_parsed_samples"].fillna(0).astype(int)
    )
    scored["judge_parsed"] = (
        scored["judge_parsed"].astype("boolean").fillna(False).astype(bool)
    )
    scored["judge_score"] = scored["judge_score"].astype(float)
    if len(judged):
        judge_model = str(judged["judge_model"].iloc[0])
        scored["score"] = scored["judge_score"]
        scored["score_metric"] = "judged score"
        scored["score_source"] = (
            f"LLM judge `{judge_model}`: mean of the parsed judge samples per answer "
            "(replies without a readable `得分` are left out, never counted as 0)"
        )
    else:
        metric = str(scoring.get("offline_score", "rouge_l"))
        if metric not in OFFLINE_SCORES:
            raise ValueError(
                f"scoring.offline_score must be one of {sorted(OFFLINE_SCORES)}, not {metric!r}"
            )
        scored["score"] = scored[metric]
        scored["score_metric"] = f"offline {metric}"
        scored["score_source"] = (
            f"offline `{metric}` ({OFFLINE_SCORES[metric]}; judge switched off, "
            "questions without a standard answer have no score)"
        )
    return scored


def variant_metrics(scored_answers: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per-class mean scores and offline means for the variant's MLflow child run."""
    class_means = scored_answers.groupby("class", sort=True)["score"].mean().to_dict()
    summary = {
        f"score.{cls.replace(' ', '_')}": mean for cls, mean in class_means.items()
    }
    summary["score.macro"] = reporting.macro_average(class_means)
    offline = reporting.offline_summary(scored_answers).iloc[0].drop("variant")
    summary.update({f"offline.{name}": value for name, value in offline.items()})
    return {
        key: {"value": float(value), "step": 0}
        for key, value in summary.items()
        if not pd.isna(value)
    }


def build_score_tables(
    report: Mapping[str, Any],
    variant_sizes: Mapping[str, int],
    *scored_answers: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The class x variant table, the per-variant macro table and the offline summary.

    A variant's size is its nominal size from ``split.variant_sizes`` (BELLE's 0.2M to
    2M), not the record count train saw: ``conf/belle`` adds the same English mix-in to
    every variant, which BELLE's figure does not count either. The record count stays
    in the answers as ``train_records``.
    """
    combined = pd.concat(scored_answers, ignore_index=True)
    combined["train_records"] = combined["train_size"]
    combined["train_size"] = [
        int(variant_sizes.get(variant, records))
        for variant, records in zip(
            combined["variant"], combined["train_records"], strict=True
        )
    ]
    table, macro = reporting.score_tables(
        combined,
        n_resamples=int(report.get("bootstrap_resamples", 1000)),
        confidence=float(report.get("confidence", 0.95)),
        seed=int(report.get("seed", 0)),
        macro_exclusions=list(report.get("macro_exclusions", ["math", "code"])),
    )
    for column in ("score_source", "score_metric"):
        macro[column] = " / ".join(combined[column].drop_duplicates().tolist())
    return table, macro, reporting.offline_summary(combined)


def _published(report: Mapping[str, Any]) -> tuple[dict[int, float], str]:
    published = report.get("published") or {}
    overall = {
        int(size): float(value)
        for size, value in (published.get("overall") or {}).items()
    }
    return overall, str(published.get("label", "published"))


def plot_scaling(
    table: pd.DataFrame, macro: pd.DataFrame, report: Mapping[str, Any]
) -> tuple[Any, Any]:
    """The scaling plot as a matplotlib figure (PNG) and a plotly figure (kedro-viz)."""
    published, label = _published(report)
    return reporting.scaling_figures(
        table,
        macro,
        score_label=str(macro["score_metric"].iloc[0]),
        published=published,
        published_label=label,
    )


def choose_champion(macro: pd.DataFrame, champion: Mapping[str, Any]) -> dict[str, Any]:
    """The best variant by ``champion.metric`` (macro by default)."""
    return reporting.choose_champion(macro, str(champion.get("metric", "macro")))


def assign_champion_alias(
    best: Mapping[str, Any], champion: Mapping[str, Any]
) -> dict[str, Any]:
    """Point the registry alias (``champion.alias``) at the best variant's version."""
    from mlflow.tracking import MlflowClient

    alias = str(champion.get("alias", "champion"))
    MlflowClient().set_registered_model_alias(
        best["registered_model_name"], alias, best["version"]
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
    champion: Mapping[str, Any],
    report: Mapping[str, Any],
) -> str:
    """The markdown report for ``08_reporting``."""
    published, label = _published(report)
    return reporting.markdown_report(
        table,
        macro,
        offline,
        champion,
        score_description=str(macro["score_source"].iloc[0]),
        macro_exclusions=list(report.get("macro_exclusions", ["math", "code"])),
        confidence=float(report.get("confidence", 0.95)),
        published=published,
        published_label=label,
    )


def report_metrics(
    macro: pd.DataFrame, champion: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    """Macro scores per variant (and the champion's) for the parent MLflow run."""
    values: dict[str, float] = {}
    for row in macro.itertuples(index=False):
        values[f"macro.{row.variant}"] = row.macro
        values[f"macro_excl.{row.variant}"] = row.macro_excl
    values["champion.score"] = champion["score"]
    return {
        key: {"value": float(value), "step": 0}
        for key, value in values.items()
        if not pd.isna(value)
    }
