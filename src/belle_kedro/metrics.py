"""Offline metrics: scores that need no judge, only the standard answer or the model.

Everything here works on characters (Chinese has no spaces; see ``belle_kedro.text``).
A metric that cannot be computed for a row (no standard answer, no number in a math
answer) is NaN, never 0, so it drops out of a mean instead of pulling it down.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

from belle_kedro.text import rouge_l, similarity_key

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


def reference_nll(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    references: Sequence[str],
    *,
    batch_size: int,
) -> list[tuple[float, int]]:
    """Summed negative log-likelihood of each reference given its prompt, and its token count.

    Only the reference tokens are scored (the prompt is context, as in SFT), and only
    their positions go through the output projection (``base_model`` hidden states, then
    the output embeddings), so long prompts cost no vocabulary-sized logits. Returns
    ``(nan, 0)`` for an empty reference. Perplexity is ``exp(sum_nll / tokens)``; keep
    the sums so a class or variant perplexity is pooled over tokens, not averaged.
    """
    import torch

    results: list[tuple[float, int]] = [(math.nan, 0)] * len(prompts)
    scored = [
        i for i, reference in enumerate(references) if reference and reference.strip()
    ]
    pad_id = (
        tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id
    )
    model.eval()
    for start in range(0, len(scored), batch_size):
        batch = scored[start : start + batch_size]
        sequences: list[list[int]] = []
        labels: list[list[int]] = []
        for i in batch:
            prompt_ids = tokenizer(prompts[i], add_special_tokens=False)["input_ids"]
            reference_ids = tokenizer(references[i].strip(), add_special_tokens=False)[
                "input_ids"
            ]
            sequences.append(prompt_ids + reference_ids)
            labels.append([-100] * len(prompt_ids) + reference_ids)
        width = max(len(ids) for ids in sequences)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        label_ids = torch.full((len(batch), width), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, target) in enumerate(zip(sequences, labels, strict=True)):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            label_ids[row, : len(ids)] = torch.tensor(target)
            attention[row, : len(ids)] = 1
        # position t predicts token t + 1; only reference positions need the vocabulary
        # projection, which is most of the cost with a large vocabulary and long prompts.
        mask = label_ids[:, 1:] != -100
        with torch.no_grad():
            hidden = model.base_model(
                input_ids=input_ids, attention_mask=attention
            ).last_hidden_state
            logits = model.get_output_embeddings()(hidden[:, :-1][mask]).float()
            token_nll = torch.nn.functional.cross_entropy(
                logits, label_ids[:, 1:][mask], reduction="none"
            )
        counts = mask.sum(dim=1).tolist()
        for i, row_nll in zip(batch, torch.split(token_nll, counts), strict=True):
            tokens = int(row_nll.numel())
            results[i] = (float(row_nll.sum()), tokens) if tokens else (math.nan, 0)
    return results


def pooled_perplexity(nll_sums: Sequence[float], token_counts: Sequence[int]) -> float:
    """exp(total NLL / total tokens) over the rows that were scored; NaN if none were."""
    total_nll = sum(
        nll for nll, tokens in zip(nll_sums, token_counts, strict=True) if tokens
    )
    total_tokens = sum(tokens for tokens in token_counts if tokens)
    return math.exp(total_nll / total_tokens) if total_tokens else math.nan
