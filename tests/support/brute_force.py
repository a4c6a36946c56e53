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
