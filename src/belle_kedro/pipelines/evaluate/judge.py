"""The LLM judge: prompt assembly, requests, score parsing, cache keys and sample averaging.

BELLE's judge sees the class prompt, the question, the standard answer (when the class
has one) and the model's answer, and replies with ``得分: x`` for x in [0, 1]. Judges
are chatty and inconsistent, so :func:`parse_score` is deliberately forgiving about the
*form* of the score and strict about its *presence*: a reply without a readable score is
"unparsed" (``None``), never silently 0, so it cannot drag a class mean down.

Parsing rules (each one covered in ``tests/pipelines/evaluate/test_judge.py``):

* NFKC first: full-width digits, colons, dots and spaces (``得分：０．８``) become ASCII;
  a Chinese full stop between two digits (``0。8``) is read as a decimal point.
* Markdown emphasis and code marks (``**``, ``__``, backticks) and opening brackets
  around the number are ignored.
* The label is ``得分`` (also ``评分`` or ``score``, any case), optionally followed by
  ``为``/``是`` and a colon, then the number.
* ``x/y`` is a fraction of y (``0.8/1`` -> 0.8, ``8/10`` -> 0.8); ``x%`` is x / 100.
* Several scores in one reply: the **last** one wins. Judges reason first and conclude
  last, and a corrected score ("得分: 0.5 ... 修正后得分: 0.7") comes after the first.
* The result is clamped to [0, 1] (``1.5`` -> 1, ``-0.2`` -> 0).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from belle_kedro.datasets.judge_prompts import prompt_for_class
from belle_kedro.llm.base import LLMBackend, LLMRequest, LLMResponse
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.runner import RequestLimits, collect_responses, run_sync

logger = logging.getLogger(__name__)

JUDGE_ID_PREFIX = "judge-"
JUDGE_COLUMNS = [
    "question_id",
    "judge_model",
    "judge_samples",
    "judge_parsed_samples",
    "judge_score",
    "judge_parsed",
    "judge_replies",
]

_NUMBER = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)"
_SCORE = re.compile(
    r"(?:得分|评分|score)\s*(?:为|是)?\s*[:：]?\s*[\[(【（]?\s*"
    rf"(?P<value>{_NUMBER})"
    rf"(?:\s*(?P<percent>%)|\s*/\s*(?P<denominator>{_NUMBER}))?",
    re.IGNORECASE,
)
_DECORATION = re.compile(r"\*\*|__|`")
_CJK_DECIMAL = re.compile(r"(?<=\d)。(?=\d)")


def parse_score(reply: str | None) -> float | None:
    """The judge's score in [0, 1], or ``None`` when the reply has no readable score."""
    if not reply:
        return None
    text = unicodedata.normalize("NFKC", reply)
    text = _CJK_DECIMAL.sub(".", _DECORATION.sub("", text))
    matches = list(_SCORE.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    value = float(last.group("value"))
    if last.group("percent"):
        value /= 100.0
    elif last.group("denominator") is not None:
        denominator = float(last.group("denominator"))
        if denominator <= 0:
            return None
        value /= denominator
    if not math.isfinite(value):
        return None
    return min(1.0, max(0.0, value))


def build_judge_prompt(
    class_prompt: str, question: str, std_answer: str, answer: str
) -> str:
    """Class prompt, question, standard answer (only when there is one), model answer."""
    parts = [class_prompt.strip(), "", f"问题：{question.strip()}"]
    if std_answer and std_answer.strip():
        parts.append(f"标准回答：{std_answer.strip()}")
    parts.append(f"模型回答：{answer.strip()}")
    return "\n".join(parts)


def judge_request_id(
    judge_model: str, prompt: str, sample: int, request_params: Mapping[str, Any]
) -> str:
    """Deterministic id: judge model + prompt hash + sample index (+ sampling params).

    The same prompt judged again by the same model with the same settings gets the same
    id, so the journal answers it and a re-run never pays twice. Changing the judge,
    its temperature or the answer under judgement changes the id.
    """
    settings = json.dumps(dict(request_params), sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(
        "\x1f".join((judge_model, settings, prompt)).encode("utf-8")
    ).hexdigest()[:24]
    return f"{JUDGE_ID_PREFIX}{digest}-s{sample}"


@dataclass(frozen=True)
class SampleAverage:
    """The mean of the parsed samples of one answer; ``score`` is NaN when none parsed."""

    score: float
    n_samples: int
    n_parsed: int

    @property
    def parsed(self) -> bool:
        return self.n_parsed > 0


def average_samples(scores: Sequence[float | None]) -> SampleAverage:
    """Average the judge samples that parsed; unparsed ones are left out, not zeroed."""
    parsed = [score for score in scores if score is not None]
    mean = sum(parsed) / len(parsed) if parsed else math.nan
    return SampleAverage(score=mean, n_samples=len(scores), n_parsed=len(parsed))


def sample_ids(
    judge_model: str, prompt: str, n_samples: int, request_params: Mapping[str, Any]
) -> list[str]:
    """The request ids of all samples of one prompt, sample 0 first."""
    return [
        judge_request_id(judge_model, prompt, sample, request_params)
        for sample in range(n_samples)
    ]


def empty_judgements() -> pd.DataFrame:
    """A judgements table with no rows (the judge is off, or had nothing to judge)."""
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
) -> list[LLMRequest]:
    """One request per (answer, sample); ids from judge model + prompt hash + sample index."""
    params = dict(judge["request_params"])
    requests = []
    rows = answers[
        ["question_id", "variant", "class", "question", "std_answer", "answer"]
    ].to_dict("records")
    for row in rows:
        prompt = build_judge_prompt(
            class_prompts[row["class"]],
            row["question"],
            row["std_answer"],
            row["answer"],
        )
        for sample, request_id in enumerate(
            sample_ids(judge_model, prompt, int(judge["samples"]), params)
        ):
            requests.append(
                LLMRequest(
                    request_id=request_id,
                    prompt=prompt,
                    system=judge["system"],
                    params=params,
                    meta={
                        "question_id": row["question_id"],
                        "variant": row["variant"],
                        "sample": sample,
                    },
                )
            )
    return requests


def judgement_rows(
    requests: Sequence[LLMRequest],
    responses: Mapping[str, LLMResponse],
    judge_model: str,
) -> pd.DataFrame:
    """One row per answer: the mean of its parsed samples, counts and the raw replies."""
    by_question: dict[str, list[LLMResponse | None]] = {}
    for request in requests:
        by_question.setdefault(request.meta["question_id"], []).append(
            responses.get(request.request_id)
        )
    rows = []
    for question_id, samples in by_question.items():
        replies = [
            response.text if response is not None and response.ok else None
            for response in samples
        ]
        average = average_samples([parse_score(reply) for reply in replies])
        rows.append(
            {
                "question_id": question_id,
                "judge_model": judge_model,
                "judge_samples": average.n_samples,
                "judge_parsed_samples": average.n_parsed,
                "judge_score": average.score,
                "judge_parsed": average.parsed,
                "judge_replies": json.dumps(replies, ensure_ascii=False),
            }
        )
    return pd.DataFrame(rows, columns=JUDGE_COLUMNS) if rows else empty_judgements()


def collect_judgements(
    answers: pd.DataFrame,
    class_prompts: Mapping[str, str],
    backend: LLMBackend,
    journal: ResponseJournal,
    judge: Mapping[str, Any],
) -> pd.DataFrame:
    """Judge ``answers`` with ``backend``, journaling every reply; one row per answer.

    Requests go through :func:`~belle_kedro.llm.runner.collect_responses` with the
    variant's journal, so an interrupted run resumes and a re-run with the same judge,
    prompts and answers sends nothing.
    """
    variant = str(answers["variant"].iloc[0]) if len(answers) else "unknown"
    requests = build_judge_requests(answers, class_prompts, judge, backend.model)

    async def judge_all() -> dict[str, LLMResponse]:
        # One event loop for the requests and the close, so pooled connections are
        # released by the loop that opened them.
        try:
            return await collect_responses(
                backend, requests, journal, RequestLimits.of(judge), f"judge {variant}"
            )
        finally:
            await backend.aclose()
            journal.close()

    table = judgement_rows(requests, run_sync(judge_all()), backend.model)
    unparsed = int((table["judge_samples"] - table["judge_parsed_samples"]).sum())
    if unparsed:
        logger.warning(
            "Judge (%s): %d of %d replies had no readable score; left out, not counted as 0",
            variant,
            unparsed,
            len(requests),
        )
    return table
