"""Near-duplicate removal with Alpaca's semantics, at million scale.

A record is a near duplicate when its comparison key has character-level ROUGE-L F
(``2 * LCS / (|a| + |b|)``, see :mod:`belle_kedro.common.text`) at or above a threshold against
any EARLIER KEPT record or any reference text (the seed tasks). Records are visited in
input order, so the kept set is deterministic and order-stable.

Candidate generation is an exact prefix-filtered set-similarity join, so it loses no
pair: the LCS of two strings is at most the overlap of their character multisets, so
``ROUGE-L >= t`` implies ``overlap >= t * (|a| + |b|) / 2`` and a length ratio of at
least ``t / (2 - t)``. Each key becomes a multiset of ``(char, occurrence)`` tokens in
one global order (rarest first). With ``o`` the least overlap a partner can have, the
first ``|x| - o + ell`` tokens of two records that reach the threshold share at least
``min(ell, o)`` tokens (the ell-prefix lemma of AdaptJoin, Wang et al. 2012); only
those candidates reach the exact LCS check (rapidfuzz, C speed).

Most near duplicates share their rarest characters, so every record first probes only
its :data:`FAST_PROBE_TOKENS` rarest tokens (short posting lists) and stops at the first
verified match; only records that survive that pass pay for the full prefix probe.
Both passes verify with the exact score, so the speed-up never changes the kept set.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Indel
from tqdm.auto import tqdm

from belle_kedro.common.text import rouge_l_f, similarity_key

# How many shared prefix tokens a candidate needs (capped by the least overlap). Larger
# values lengthen each probe but prune more pairs before the LCS; 3 was fastest on the
# shared Chinese data (see docs/clean.md).
PREFIX_SHARED_TOKENS = 3
# Rarest tokens probed first, in the cheap early-exit pass.
FAST_PROBE_TOKENS = 1
# rapidfuzz's Indel normalized similarity equals char ROUGE-L F; it only pre-selects,
# text.rouge_l_f has the final word, so float rounding at the threshold cannot differ.
_CUTOFF_SLACK = 1e-9
_MAX_TOKENS_PER_CHAR = 1 << 21  # > every Unicode code point


@dataclass(frozen=True)
class NearDuplicates:
    """Outcome of a near-duplicate pass over ``n`` records and ``r`` reference texts.

    ``keep[i]`` says whether record ``i`` survives. ``duplicate_of[i]`` is -1 for a kept
    record, ``j < n`` for the earlier kept record it repeats, or ``n + k`` for reference
    ``k``; ``score[i]`` is that pair's ROUGE-L F (0 for kept records).
    """

    keep: np.ndarray
    duplicate_of: np.ndarray
    score: np.ndarray


def comparison_keys(
    instructions: Sequence[str], inputs: Sequence[str] | None = None
) -> list[str]:
    """The strings compared: keyed instruction, optionally followed by the keyed input."""
    if inputs is None:
        return [similarity_key(text) for text in instructions]
    return [
        similarity_key(f"{text}{extra}")
        for text, extra in zip(instructions, inputs, strict=True)
    ]


def _min_overlap(length: np.ndarray | int, threshold: float) -> np.ndarray | int:
    """Least multiset overlap any partner of a ``length``-char key needs."""
    alpha = threshold / (2.0 - threshold)
    return np.ceil(np.asarray(length) * alpha - 1e-9).astype(np.int64)


def _ranked_tokens(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each key's ``(char, occurrence)`` tokens as global ranks, rarest first.

    Returns ``(ranks, offsets)``: key ``i`` owns ``ranks[offsets[i]:offsets[i + 1]]``,
    sorted ascending. Vectorised: one UTF-32 view of all keys, no per-char Python.
    """
    lengths = np.fromiter((len(key) for key in keys), dtype=np.int64, count=len(keys))
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    chars = np.frombuffer("".join(keys).encode("utf-32-le"), dtype=np.uint32).astype(
        np.int64
    )
    owner = np.repeat(np.arange(len(keys), dtype=np.int64), lengths)
    # Occurrence number of each char within its key: stable sort by (key, char), then
    # count up inside each run of equal (key, char).
    order = np.lexsort((chars, owner))
    sorted_owner, sorted_chars = owner[order], chars[order]
    run_start = np.ones(len(order), dtype=bool)
    run_start[1:] = (sorted_owner[1:] != sorted_owner[:-1]) | (
        sorted_chars[1:] != sorted_chars[:-1]
    )
    run_first = np.maximum.accumulate(np.where(run_start, np.arange(len(order)), 0))
    occurrence = np.arange(len(order)) - run_first
    codes = sorted_chars + occurrence * _MAX_TOKENS_PER_CHAR
    unique_codes, token_of, counts = np.unique(
        codes, return_inverse=True, return_counts=True
    )
    # Global order: rarest first, ties by code, so it never depends on input order.
    rank_of_token = np.empty(len(unique_codes), dtype=np.int64)
    rank_of_token[np.lexsort((unique_codes, counts))] = np.arange(len(unique_codes))
    ranks = rank_of_token[token_of]
    # Back to key order, each key's ranks ascending (sorted_owner is already grouped).
    regroup = np.lexsort((ranks, sorted_owner))
    return ranks[regroup].astype(np.int32), offsets


class _PrefixIndex:
    """Inverted index from token rank to the ids of indexed keys whose prefix holds it."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.postings: dict[int, array] = {}
        self.lengths = np.zeros(1024, dtype=np.int64)
        self.keys = np.empty(1024, dtype=object)
        self.size = 0

    def prefix(self, ranks: np.ndarray) -> list[int]:
        length = len(ranks)
        size = min(
            length,
            length - int(_min_overlap(length, self.threshold)) + PREFIX_SHARED_TOKENS,
        )
        return ranks[:size].tolist()

    def add(self, key: str, prefix: list[int]) -> int:
        entry = self.size
        if entry == len(self.lengths):  # grow both by doubling: amortised O(1) appends
            self.lengths = np.concatenate([self.lengths, np.zeros_like(self.lengths)])
            self.keys = np.concatenate(
                [self.keys, np.empty(len(self.keys), dtype=object)]
            )
        self.lengths[entry] = len(key)
        self.keys[entry] = key
        self.size += 1
        for rank in prefix:
            postings = self.postings.get(rank)
            if postings is None:
                self.postings[rank] = array("q", (entry,))
            else:
                postings.append(entry)
        return entry

    def fast_candidates(self, prefix: list[int]) -> np.ndarray:
        """Entries sharing one of the query's rarest tokens (a subset of all candidates)."""
        found = [
            np.frombuffer(self.postings[rank], dtype=np.int64)
            for rank in prefix[:FAST_PROBE_TOKENS]
            if rank in self.postings
        ]
        if not found:
            return np.empty(0, dtype=np.int64)
        return found[0] if len(found) == 1 else np.unique(np.concatenate(found))

    def candidates(self, key: str, prefix: list[int]) -> np.ndarray:
        """Every entry that can reach the threshold with ``key`` (no false negatives)."""
        lists = [
            np.frombuffer(self.postings[rank], dtype=np.int64)
            for rank in prefix
            if rank in self.postings
        ]
        if not lists:
            return np.empty(0, dtype=np.int64)
        # Counting by bincount is linear; a sort-based unique was the bottleneck.
        counts = np.bincount(np.concatenate(lists), minlength=self.size)
        entries = np.flatnonzero(counts)
        shared = counts[entries]
        length = len(key)
        partner = self.lengths[entries]
        # ROUGE-L <= 2 * min / (sum): the length filter; overlap >= t * sum / 2.
        long_enough = (
            2 * np.minimum(partner, length)
            >= self.threshold * (partner + length) - 1e-9
        )
        # The first k common tokens of a pair lie in both prefixes for every k up to
        # o_pair - max(0, o_x - ell, o_y - ell) (o_x: least overlap any partner of x
        # needs); so pairs sharing fewer prefix tokens than that cannot reach t.
        pair_overlap = np.ceil(self.threshold * (partner + length) / 2 - 1e-9)
        slack = np.maximum(
            _min_overlap(partner, self.threshold), _min_overlap(length, self.threshold)
        )
        need = pair_overlap - np.maximum(0, slack - PREFIX_SHARED_TOKENS)
        return entries[long_enough & (shared >= need)]

    def best_match(self, key: str, entries: np.ndarray) -> tuple[int, float] | None:
        """The entry with the highest ROUGE-L F at or above the threshold, if any."""
        if len(entries) == 0:
            return None
        found = process.extractOne(
            key,
            self.keys[entries].tolist(),
            scorer=Indel.normalized_similarity,
            score_cutoff=self.threshold - _CUTOFF_SLACK,
        )
        if found is None:
            return None
        entry = int(entries[found[2]])
        score = rouge_l_f(key, self.keys[entry])
        return (entry, score) if score >= self.threshold else None

    def all_matches(self, key: str, entries: np.ndarray) -> list[tuple[int, float]]:
        """Every entry at or above the threshold, with its exact score."""
        if len(entries) == 0:
            return []
        found = process.extract(
            key,
            self.keys[entries].tolist(),
            scorer=Indel.normalized_similarity,
            score_cutoff=self.threshold - _CUTOFF_SLACK,
            limit=None,
        )
        scored = (
            (int(entries[index]), rouge_l_f(key, self.keys[entries[index]]))
            for _, _, index in found
        )
        return [(entry, score) for entry, score in scored if score >= self.threshold]


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")


def find_near_duplicates(
    keys: Sequence[str],
    reference_keys: Sequence[str] = (),
    *,
    threshold: float,
    progress: str | None = None,
) -> NearDuplicates:
    """Alpaca's greedy pass: drop each key that matches an earlier kept key or a reference.

    ``keys`` and ``reference_keys`` are comparison keys (:func:`comparison_keys`).
    ``progress`` names a tqdm bar; ``None`` shows none.
    """
    _check_threshold(threshold)
    count = len(keys)
    all_keys = list(keys) + list(reference_keys)
    ranks, offsets = _ranked_tokens(all_keys)
    index = _PrefixIndex(threshold)
    owner_of_entry: list[int] = []  # index entry -> position in all_keys
    for position in range(count, len(all_keys)):
        if offsets[position + 1] > offsets[position]:
            index.add(
                all_keys[position],
                index.prefix(ranks[offsets[position] : offsets[position + 1]]),
            )
            owner_of_entry.append(position)

    keep = np.ones(count, dtype=bool)
    duplicate_of = np.full(count, -1, dtype=np.int64)
    score = np.zeros(count, dtype=np.float64)
    for position in tqdm(
        range(count), desc=progress, disable=progress is None, mininterval=2.0
    ):
        start, end = offsets[position], offsets[position + 1]
        if start == end:  # an empty key matches nothing (ROUGE-L of "" is 0)
            continue
        key = keys[position]
        prefix = index.prefix(ranks[start:end])
        match = index.best_match(key, index.fast_candidates(prefix))
        if match is None:
            match = index.best_match(key, index.candidates(key, prefix))
        if match is None:
            index.add(key, prefix)
            owner_of_entry.append(position)
        else:
            keep[position] = False
            duplicate_of[position] = owner_of_entry[match[0]]
            score[position] = match[1]
    return NearDuplicates(keep=keep, duplicate_of=duplicate_of, score=score)


def near_duplicate_pairs(
    keys: Sequence[str], *, threshold: float, progress: str | None = None
) -> set[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i < j``, with ROUGE-L F >= threshold, via the same join."""
    _check_threshold(threshold)
    ranks, offsets = _ranked_tokens(keys)
    index = _PrefixIndex(threshold)
    owner_of_entry: list[int] = []
    pairs: set[tuple[int, int]] = set()
    for position in tqdm(
        range(len(keys)), desc=progress, disable=progress is None, mininterval=2.0
    ):
        start, end = offsets[position], offsets[position + 1]
        if start == end:
            continue
        key = keys[position]
        prefix = index.prefix(ranks[start:end])
        for entry, _ in index.all_matches(key, index.candidates(key, prefix)):
            pairs.add((owner_of_entry[entry], position))
        index.add(key, prefix)
        owner_of_entry.append(position)
    return pairs
