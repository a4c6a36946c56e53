"""The LLM judge: prompt templates, requests, score reading, cache keys and sample statistics.

The request layout is a template file, ``conf/base/prompts/judge/<name>.yml``, chosen by
``evaluate.judge.template`` and filled by :meth:`JudgeTemplate.format_input`:

* ``belle``: BELLE's request byte for byte, as its ``eval/ChatGPT_Score.html`` page
  builds it: one user message ``{prompt} {question} 标准回答:{std_answer}  模型回答：'
  {answer}'。请针对模型回答给出得分，顺便给出理由：``, and for generation,
  brainstorming and rewrite (no standard answer) ``{prompt} {question}  模型回答：
  '{answer}'。…``. Nothing is stripped or re-spaced.
* ``ours``: class prompt, question, standard answer (when there is one), model answer,
  one per line.

:func:`read_score` reads the score the judge *gave*, never a guess
(each rule covered in ``tests/pipelines/evaluate/test_score_reading.py``):

* NFKC first (full-width digits, colons, spaces), Markdown emphasis ignored, a Chinese
  full stop between two digits read as a decimal point.
* The **first** value labelled ``得分`` counts: judges state the score, then explain,
  and a later "若严格评分 0.5" is commentary, not the score. A label with no value after
  it (an echoed "请按照“得分:”的形式") is skipped.
* ``x/y`` and ``x分（满分y分）`` are x / y; ``x%`` is x / 100; a bare x must lie in
  [0, 1], the scale BELLE's prompts ask for.
* Chinese numerals are read when they name one number (``零点八``, ``八分（满分十分）``);
  ``七八分`` (7 or 8) is ambiguous and not read.
* Out of range (``得分: 8`` with no scale, ``12/10``, ``-0.2``) is rejected, not clamped,
  and so is a range (``0.6-0.7``). Every rejection carries a reason for the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from belle_kedro.common.config import Settings, build, setting
from belle_kedro.datasets.judge_prompts import prompt_for_class
from belle_kedro.llm.base import (
    RESUME_HINT,
    IncompleteRun,
    LLMRequest,
    LLMResponse,
    failure_reason,
)
from belle_kedro.llm.client import HELD_BACK, LLMClient
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.runner import run_sync
from belle_kedro.pipelines.evaluate.judge_settings import JudgeSettings

logger = logging.getLogger(__name__)

JUDGE_ID_PREFIX = "judge-"
JUDGE_COLUMNS = [
    "question_id",
    "judge_model",
    "judge_samples",
    "judge_parsed_samples",
    "judge_score",
    "judge_parsed",
    "judge_sample_std",
    "judge_sample_spread",
    "judge_sample_scores",
    "judge_failures",
    "judge_replies",
]

_ARABIC = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)"
_CHINESE = r"[零〇一二两三四五六七八九十百点]+"
_VALUE = rf"(?P<value>{_ARABIC}|{_CHINESE})"
_LABEL = re.compile(r"得分")
_AFTER_LABEL = re.compile(
    r"\s*(?:为|是)?\s*[:：]?\s*[\[(【（]?\s*" + _VALUE + r"(?P<tail>[^\n]{0,40})"
)
_PERCENT = re.compile(r"\s*%")
_FRACTION = re.compile(rf"\s*/\s*(?P<scale>{_ARABIC}|{_CHINESE})")
_OUT_OF = re.compile(
    rf"\s*分?\s*[,，(（\[【]?\s*(?:满分|总分)\s*(?:为|是)?\s*(?P<scale>{_ARABIC}|{_CHINESE})"
)
_RANGE = re.compile(rf"\s*分?\s*(?:-|~|～|到|至)\s*(?:{_ARABIC}|{_CHINESE})")
_DECORATION = re.compile(r"\*\*|__|`")
_CJK_DECIMAL = re.compile(r"(?<=\d)。(?=\d)")
_CHINESE_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip


@dataclass(frozen=True)
class ScoreReading:
    """One judge reply read: ``score`` in [0, 1], or NaN with ``reason`` saying why."""

    score: float
    reason: str = ""

    @property
    def parsed(self) -> bool:
        return not math.isnan(self.score)


def chinese_number(text: str) -> float | None:
    """The value of a Chinese numeral that names one number, else None (``八九`` is 8 or 9)."""
    whole, _, decimals = text.partition("点")
    if "点" in decimals or (
        decimals and not all(c in _CHINESE_DIGITS for c in decimals)
    ):
        return None
    fraction = "".join(str(_CHINESE_DIGITS[c]) for c in decimals)
    if whole in ("百", "一百"):  # the only hundred a score scale needs: 满分一百分
        integer = 100
    elif "十" in whole:
        tens, _, units = whole.partition("十")
        if "十" in units or len(tens) > 1 or len(units) > 1:
            return None
        if any(c not in _CHINESE_DIGITS for c in tens + units):
            return None
        integer = (_CHINESE_DIGITS[tens] if tens else 1) * 10 + (
            _CHINESE_DIGITS[units] if units else 0
        )
    elif len(whole) == 1 and whole in _CHINESE_DIGITS:
        integer = _CHINESE_DIGITS[whole]
    else:
        return None
    return float(f"{integer}.{fraction}") if fraction else float(integer)


def _number(text: str) -> float | None:
    if re.fullmatch(_ARABIC, text):
        return float(text)
    return chinese_number(text)


def _normalized(reply: str) -> str:
    text = unicodedata.normalize("NFKC", reply)
    return _CJK_DECIMAL.sub(".", _DECORATION.sub("", text))


def read_score(reply: str | None) -> ScoreReading:
    """The score the judge gave in [0, 1], or NaN with the reason it could not be read."""
    if reply is None or not reply.strip():
        return ScoreReading(math.nan, "no reply")
    text = _normalized(reply)
    for label in _LABEL.finditer(text):
        found = _AFTER_LABEL.match(text, label.end())
        if found is None:
            continue
        raw, tail = found.group("value"), found.group("tail")
        value = _number(raw)
        if value is None:
            return ScoreReading(math.nan, f"ambiguous Chinese numeral '{raw}'")
        if _RANGE.match(tail):
            return ScoreReading(
                math.nan, f"a range, not one score: '{raw}{tail.strip()}'"
            )
        return _scaled(value, raw, tail)
    return ScoreReading(math.nan, "no value labelled 得分")


def _scaled(value: float, raw: str, tail: str) -> ScoreReading:
    """``value`` put on [0, 1] by the scale written after it; out of range is rejected."""
    scale_match = _FRACTION.match(tail) or _OUT_OF.match(tail)
    if _PERCENT.match(tail):
        scale, written = 100.0, f"{raw}%"
    elif scale_match is not None:
        parsed_scale = _number(scale_match.group("scale"))
        if parsed_scale is None:
            return ScoreReading(
                math.nan, f"ambiguous scale '{scale_match.group('scale')}'"
            )
        scale, written = parsed_scale, f"{raw} of {scale_match.group('scale')}"
    else:
        scale, written = 1.0, raw
    if scale <= 0:
        return ScoreReading(math.nan, f"scale {written} is not positive")
    if not 0.0 <= value <= scale:
        return ScoreReading(
            math.nan, f"out of range: {written} (expected 0 to {scale:g})"
        )
    return ScoreReading(value / scale)


@dataclass(frozen=True)
class JudgeTemplate(Settings):
    """A judge request layout: one file in ``conf/base/prompts/judge/``."""

    with_reference: str = setting(
        "the user message with {class_prompt} {question} {std_answer} {answer}"
    )
    without_reference: str = setting("the same without {std_answer}")
    omit_reference_for: tuple[str, ...] = setting(
        "classes sent without the standard answer"
    )
    omit_empty_reference: bool = setting("a blank standard answer is left out too")
    strip_fields: bool = setting("strip whitespace around every field")

    def format_input(
        self,
        class_prompt: str,
        *,
        cls: str,
        question: str,
        std_answer: str,
        answer: str,
    ) -> str:
        """The judge's user message for one answer."""
        fields = {
            "class_prompt": class_prompt,
            "question": question,
            "std_answer": std_answer,
            "answer": answer,
        }
        if self.strip_fields:
            fields = {name: value.strip() for name, value in fields.items()}
        omitted = cls in self.omit_reference_for or (
            self.omit_empty_reference and not std_answer.strip()
        )
        layout = self.without_reference if omitted else self.with_reference
        return layout.format(**fields)


def load_template(
    templates: Mapping[str, Callable[[], Any]], name: str
) -> JudgeTemplate:
    """Template ``name`` from the ``judge_templates`` partitions (file name = name)."""
    if name not in templates:
        raise ValueError(
            f"evaluate.judge.template {name!r}: no conf/base/prompts/judge/{name}.yml; "
            f"templates there: {', '.join(sorted(templates))}"
        )
    return build(JudgeTemplate, templates[name](), f"prompts/judge/{name}.yml")


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
    """The parsed samples of one answer: mean, spread and counts (NaN when too few parsed)."""

    score: float
    std: float
    spread: float
    n_samples: int
    n_parsed: int

    @property
    def parsed(self) -> bool:
        return self.n_parsed > 0


def average_samples(scores: Sequence[float | None]) -> SampleAverage:
    """Mean, population std and max - min of the samples that parsed; unparsed left out.

    ``std`` and ``spread`` need two parsed samples; with fewer they are NaN, so an
    answer judged once says nothing about the judge's consistency.
    """
    parsed = np.array([score for score in scores if score is not None], dtype=float)
    return SampleAverage(
        score=float(parsed.mean()) if len(parsed) else math.nan,
        std=float(parsed.std()) if len(parsed) > 1 else math.nan,
        spread=float(parsed.max() - parsed.min()) if len(parsed) > 1 else math.nan,
        n_samples=len(scores),
        n_parsed=len(parsed),
    )


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
    template: JudgeTemplate,
    settings: JudgeSettings,
    judge_model: str,
) -> list[LLMRequest]:
    """One request per (answer, sample); ids from judge model + prompt hash + sample index."""
    params = dict(settings.request_params)
    requests = []
    rows = answers[
        ["question_id", "variant", "class", "question", "std_answer", "answer"]
    ].to_dict("records")
    for row in rows:
        prompt = template.format_input(
            class_prompts[row["class"]],
            cls=row["class"],
            question=row["question"],
            std_answer=row["std_answer"],
            answer=row["answer"],
        )
        for sample, request_id in enumerate(
            sample_ids(judge_model, prompt, settings.samples, params)
        ):
            requests.append(
                LLMRequest(
                    request_id=request_id,
                    prompt=prompt,
                    system=settings.system,
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
        readings = [read_score(reply) for reply in replies]
        average = average_samples(
            [reading.score if reading.parsed else None for reading in readings]
        )
        rows.append(
            {
                "question_id": question_id,
                "judge_model": judge_model,
                "judge_samples": average.n_samples,
                "judge_parsed_samples": average.n_parsed,
                "judge_score": average.score,
                "judge_parsed": average.parsed,
                "judge_sample_std": average.std,
                "judge_sample_spread": average.spread,
                "judge_sample_scores": json.dumps(
                    [reading.score if reading.parsed else None for reading in readings]
                ),
                "judge_failures": json.dumps(
                    [reading.reason for reading in readings if not reading.parsed],
                    ensure_ascii=False,
                ),
                "judge_replies": json.dumps(replies, ensure_ascii=False),
            }
        )
    return pd.DataFrame(rows, columns=JUDGE_COLUMNS) if rows else empty_judgements()


def collect_judgements(
    answers: pd.DataFrame,
    class_prompts: Mapping[str, str],
    template: JudgeTemplate,
    *,
    client: LLMClient,
    journal: ResponseJournal,
    settings: JudgeSettings,
) -> pd.DataFrame:
    """Judge ``answers`` through ``client``, journaling every reply; one row per answer.

    The client's transport (chat, completion or the Batch API) writes every answer to
    the variant's journal, so an interrupted run resumes and a re-run with the same
    judge, prompts and answers sends nothing.
    """
    variant = str(answers["variant"].iloc[0]) if len(answers) else "unknown"
    requests = build_judge_requests(
        answers, class_prompts, template, settings, client.model
    )

    async def judge_all() -> dict[str, LLMResponse]:
        # One event loop for the requests and the close, so pooled connections are
        # released by the loop that opened them.
        try:
            return await client.collect(
                requests, journal, settings.request_limits, f"judge {variant}"
            )
        finally:
            await client.aclose()
            journal.close()

    responses = run_sync(judge_all())
    failed = [r for r in responses.values() if not r.ok and r.error not in HELD_BACK]
    if failed:
        raise IncompleteRun(f"judge {variant}: {failure_reason(failed)}. {RESUME_HINT}")
    table = judgement_rows(requests, responses, client.model)
    unparsed = int((table["judge_samples"] - table["judge_parsed_samples"]).sum())
    if unparsed:
        logger.warning(
            "Judge (%s): %d of %d replies had no readable score; left out, not counted as 0",
            variant,
            unparsed,
            len(requests),
        )
    return table
