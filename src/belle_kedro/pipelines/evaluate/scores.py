"""Offline metrics: scores that need no judge, only the standard answer or the model.

Everything here works on characters (Chinese has no spaces; see
:mod:`belle_kedro.common.text`).
A metric that cannot be computed for a row (no standard answer, no number in a math
answer) is NaN, never 0, so it drops out of a mean instead of pulling it down.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

import pandas as pd

from belle_kedro.common.text import rouge_l, similarity_key
from belle_kedro.pipelines.evaluate.settings import ScoringSettings

# The offline metrics a table can be built on when the judge is off (all in [0, 1]);
# the keys are settings.OfflineScore, the choices of evaluate.scoring.offline_score.
OFFLINE_SCORES = {
    "rouge_l": "character ROUGE-L F1 of the answer against the standard answer",
    "char_f1": "character-bag F1 of the answer against the standard answer",
    "number_match": "exact match of the final number (math-like classes only)",
    "reference_token_prob": "geometric-mean probability of the standard answer's tokens, 1 / perplexity",
}

# A signed decimal or fraction; thousands separators are removed before matching.
_NUMBER = re.compile(r"(?:(?<![\d.])[-+])?\d+(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER_TOLERANCE = 1e-6


def char_f1(prediction: str, reference: str) -> float:
    """Bag-of-characters F1 (SQuAD-style F1 with characters as tokens)."""
    predicted = Counter(similarity_key(prediction))
    expected = Counter(similarity_key(reference))
    overlap = sum((predicted & expected).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(predicted.values())
    recall = overlap / sum(expected.values())
    return 2 * precision * recall / (precision + recall)


def final_number(text: str) -> float | None:
    """The last number written in ``text`` (fractions as their value), or None."""
    normalized = _THOUSANDS.sub("", unicodedata.normalize("NFKC", text or ""))
    found = _NUMBER.findall(normalized)
    if not found:
        return None
    last = found[-1].replace(" ", "")
    if "/" in last:
        numerator, denominator = (float(part) for part in last.split("/"))
        return numerator / denominator if denominator else None
    return float(last)


def numbers_match(answer: str, std_answer: str) -> float:
    """1.0 / 0.0 when the final numbers agree / differ; NaN when either has none."""
    expected = final_number(std_answer)
    if expected is None:
        return math.nan
    got = final_number(answer)
    if got is None:
        return 0.0  # the reference has a number and the answer gives none: wrong
    return float(abs(got - expected) <= _NUMBER_TOLERANCE * max(1.0, abs(expected)))


def reference_metrics(
    answer: str, std_answer: str, *, number_match: bool
) -> dict[str, float]:
    """ROUGE-L, char F1 and (for math-like classes) final-number match against the reference."""
    has_reference = bool(std_answer and std_answer.strip())
    return {
        "rouge_l": rouge_l(answer, std_answer) if has_reference else math.nan,
        "char_f1": char_f1(answer, std_answer) if has_reference else math.nan,
        "number_match": numbers_match(answer, std_answer)
        if number_match and has_reference
        else math.nan,
        "answer_chars": float(len(answer.strip())),
    }


def pooled_perplexity(nll_sums: Sequence[float], token_counts: Sequence[int]) -> float:
    """exp(total NLL / total tokens) over the rows that were scored; NaN if none were."""
    total_nll = sum(
        nll for nll, tokens in zip(nll_sums, token_counts, strict=True) if tokens
    )
    total_tokens = sum(tokens for tokens in token_counts if tokens)
    return math.exp(total_nll / total_tokens) if total_tokens else math.nan


def score_rows(
    answers: pd.DataFrame, judgements: pd.DataFrame, scoring: ScoringSettings
) -> pd.DataFrame:
    """Offline metrics per answer, the judge's score, and the ``score`` the tables use.

    ``score`` is the judge's mean when judging ran, else the offline metric named by
    ``scoring.offline_score`` (NaN where it is undefined, e.g. no standard answer);
    ``score_source`` says which, in words, for the report.
    """
    number_classes = set(scoring.number_match_classes)
    offline = pd.DataFrame(
        [
            reference_metrics(answer, std_answer, number_match=cls in number_classes)
            for answer, std_answer, cls in zip(
                answers["answer"], answers["std_answer"], answers["class"], strict=True
            )
        ],
        index=answers.index,
    )
    scored = pd.concat([answers, offline], axis=1)
    scored["perplexity"] = [
        pooled_perplexity([nll], [tokens])
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
        metric = scoring.offline_score
        scored["score"] = scored[metric]
        scored["score_metric"] = f"offline {metric}"
        scored["score_source"] = (
            f"offline `{metric}` ({OFFLINE_SCORES[metric]}; judge switched off, "
            "questions without a standard answer have no score)"
        )
    return scored
