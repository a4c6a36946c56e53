"""The O(n^2) near-duplicate pass that the fast one must agree with (tests and benches)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Indel

from belle_kedro.common.text import rouge_l_f

# rapidfuzz's Indel similarity equals char ROUGE-L F; it only pre-selects, rouge_l_f decides.
_CUTOFF_SLACK = 1e-9


def exhaustive_near_duplicates(
    keys: Sequence[str], reference_keys: Sequence[str] = (), *, threshold: float
) -> np.ndarray:
    """Keep mask of Alpaca's greedy rule: each key scored against every kept key and reference."""
    kept = [key for key in reference_keys if key]
    keep = np.ones(len(keys), dtype=bool)
    for position, key in enumerate(keys):
        if not key:
            continue
        candidates = process.extract(
            key,
            kept,
            scorer=Indel.normalized_similarity,
            score_cutoff=threshold - _CUTOFF_SLACK,
            limit=None,
        )
        if any(rouge_l_f(key, other) >= threshold for other, _, _ in candidates):
            keep[position] = False
        else:
            kept.append(key)
    return keep


def exhaustive_matches(
    keys: Sequence[str],
    reference_keys: Sequence[str] = (),
    *,
    threshold: float,
    references_only: bool = False,
) -> tuple[list[bool], list[int], list[float]]:
    """``keep``, ``duplicate_of`` and ``score`` as :class:`NearDuplicates` reads them.

    Every pair is scored: a key goes when a kept earlier key (not with
    ``references_only``) or a reference reaches ``threshold``; its match is the
    partner with the highest score, the earliest of equals (references, numbered
    ``n + k``, come before every key); with ``references_only``, the last reference
    of equals.
    """
    count = len(keys)
    partners = [(count + k, key) for k, key in enumerate(reference_keys)]
    keep, duplicate_of, score = [], [], []
    for key in keys:
        best, match = -1.0, -1
        for position, other in partners:
            value = rouge_l_f(key, other) if key and other else 0.0
            better = value >= best if references_only else value > best
            if value >= threshold and better:
                best, match = value, position
        keep.append(match < 0)
        duplicate_of.append(match)
        score.append(max(best, 0.0))
        if match < 0 and not references_only:
            partners.append((len(keep) - 1, key))
    return keep, duplicate_of, score
