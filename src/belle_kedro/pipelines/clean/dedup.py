"""Near-duplicate removal with Alpaca's semantics, near-linear at million scale.

A record is a near duplicate when its comparison key has character-level ROUGE-L F
(``2 * LCS / (|a| + |b|)``, see :mod:`belle_kedro.common.text`) at or above a threshold against
any EARLIER KEPT record or any reference text (the seed tasks). Records are visited in
input order, so the kept set is deterministic and order-stable.

Three stages, only the last one sequential:

1. **Candidates** (worker processes, one chunk of keys each): a MinHash signature of each
   key's multiset of characters, cut into bands of ``rows_per_band`` values; two keys
   that agree on a whole band are candidates. A pair at ROUGE-L F >= t has multiset
   Jaccard >= (t / 2) / (1 - t / 2) (LCS <= the multiset overlap), 0.54 at 0.7, so
   every true pair has a known lower bound on its chance to share a band. Unrelated keys collide with a probability that
   does not depend on how many records there are, so a record's cost follows its true
   candidates, never the size of the kept set. Within one bucket a record is paired
   with at most ``bucket_neighbours`` earlier members (a guard against template-sized
   buckets). A pair is emitted only if an exact upper bound on its score (the overlap
   of the keys' counts over 32 character classes, :class:`_UpperBound`) reaches the
   threshold, so most chance collisions never reach the merge or the verification.
2. **Verification** (rapidfuzz ``cpdist``, C threads on every core): the exact LCS of
   every candidate pair.
   Only pairs at or above the threshold remain, so precision is exactly 1.
3. **Greedy decision** (sequential, over the verified pairs only): a record is dropped
   when one of its verified partners is a seed task or an earlier record that was KEPT.

The candidate stage is approximate (a pair can fail to share a band); docs/clean.md
gives the measured recall against the exact pass.

Keys travel as one Arrow ``large_string`` array (:func:`as_texts`), never as one Python
string per record: workers get compact slices, code points come from decoding a slice's
UTF-8 buffer at once, and verification gathers only a block's pairs as Python strings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import process
from rapidfuzz.distance import LCSseq
from tqdm.auto import tqdm

from belle_kedro.common.text import Texts, as_texts, map_texts, similarity_key
from belle_kedro.pipelines.clean.engine import BlockRunner, engine_session
from belle_kedro.pipelines.clean.settings import MinHashSettings

_CHUNK_KEYS = 20_000  # keys per signature task: a few MB of shingles per worker
# Elements per signature grid: a band's permuted grid (6 x 8192 x 8 bytes) stays in L2.
_BLOCK_ELEMENTS = 8192
_MIN_MERGE_PAIRS = 4_000_000  # pending candidate pairs worth a merge (32 MB)
_DECIDE_PAIRS = 1_000_000  # verified pairs a block of the greedy decision
_VERIFY_PAIRS = 1_000_000  # candidate pairs verified per cpdist call (bounded memory)
_TASK_BANDS = 8  # bands per candidate task
T = TypeVar("T")
logger = logging.getLogger(__name__)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64 finaliser constants
_MIX_2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class NearDuplicates:
    """Outcome of a near-duplicate pass over ``n`` records and ``r`` reference texts.

    ``keep[i]`` says whether record ``i`` survives. ``duplicate_of[i]`` is -1 for a kept
    record, ``j < n`` for the earlier kept record it repeats, or ``n + k`` for reference
    ``k``; ``score[i]`` is that pair's ROUGE-L F (0 for kept records). ``candidates``
    and ``verified`` count the pairs each stage produced.
    """

    keep: np.ndarray
    duplicate_of: np.ndarray
    score: np.ndarray
    candidates: int
    verified: int


def _joined_key(text: str, extra: str) -> str:
    return similarity_key(f"{text}{extra}")


def comparison_keys(
    instructions: Texts, inputs: Texts | None = None
) -> pa.LargeStringArray:
    """The strings compared: keyed instruction, optionally followed by the keyed input."""
    if inputs is None:
        return as_texts(map_texts(similarity_key, instructions))
    return as_texts(map_texts(_joined_key, instructions, inputs))


class _Blocks(Sequence[T]):
    """``count`` blocks, each made by ``make(index)`` only when a worker pool (or Ray)
    takes it, so the blocks never all exist at once beside what they are cut from."""

    def __init__(self, count: int, make: Callable[[int], T]) -> None:
        self.length, self.make = count, make

    def __len__(self) -> int:
        return self.length

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...
    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if isinstance(index, slice):
            return [self[position] for position in range(self.length)[index]]
        if not -self.length <= index < self.length:
            raise IndexError(index)
        return self.make(index % self.length)


def _key_slices(keys: pa.LargeStringArray, size: int) -> _Blocks[pa.LargeStringArray]:
    """``keys`` in compact slices of ``size`` (a plain slice pickles the whole buffer)."""
    return _Blocks(
        -(len(keys) // -size),
        lambda index: pa.concat_arrays([keys.slice(index * size, size)]),
    )


def _sorted_unique(parts: list[np.ndarray]) -> np.ndarray:
    """The sorted distinct values of the integer arrays in ``parts``, which it empties.

    Emptying the caller's list frees the parts before the in-place sort, so the peak is
    one copy of the union. (numpy 2.4's ``np.unique`` took 3.5 s on 3M int64 where a
    sort and compare takes 0.04 s, measured here: it was most of the pass.)
    """
    merged = np.concatenate(parts)
    parts.clear()
    merged.sort()
    distinct = np.ones(len(merged), dtype=bool)
    distinct[1:] = merged[1:] != merged[:-1]
    return merged[distinct]


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fixed, well-spread 64-bit hash (wraps, never warns)."""
    values = values ^ (values >> np.uint64(30))
    values = values * _MIX_1
    values = values ^ (values >> np.uint64(27))
    values = values * _MIX_2
    return values ^ (values >> np.uint64(31))


def _characters(
    keys: pa.LargeStringArray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every key's code points end to end, the key each belongs to, and the key lengths.

    One decode of the keys' UTF-8 bytes, not a Python string per key.
    """
    lengths = _lengths(keys)
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[
        keys.offset : keys.offset + len(keys) + 1
    ]
    data = keys.buffers()[2]
    utf8 = b"" if data is None else memoryview(data)[offsets[0] : offsets[-1]]
    chars = np.frombuffer(
        bytes(utf8).decode("utf-8").encode("utf-32-le"), dtype=np.uint32
    )
    return chars, np.repeat(np.arange(len(keys), dtype=np.int64), lengths), lengths


def _multiset_elements(
    keys: pa.LargeStringArray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each key's hashed multiset elements, key after key, and the keys' lengths.

    The k-th occurrence of a character is its own element (char, k), so 16 underscores
    share 14 elements with 14 underscores, where a set would share one.
    """
    chars, owner, lengths = _characters(keys)
    pairs = owner * (1 << 21) + chars.astype(np.int64)
    pairs.sort()  # by key, then by character: equal characters become runs
    positions = np.arange(len(pairs), dtype=np.int64)
    run_start = np.ones(len(pairs), dtype=bool)
    run_start[1:] = pairs[1:] != pairs[:-1]
    occurrence = positions - np.maximum.accumulate(np.where(run_start, positions, 0))
    hashed = _mix(
        ((pairs & ((1 << 21) - 1)) + (occurrence << 21)).astype(np.uint64)
        + np.uint64(seed)
    )
    return hashed, lengths


@dataclass(frozen=True)
class _UpperBound:
    """An exact upper bound on the ROUGE-L F of any pair, from per-key counts.

    Characters are hashed into 32 classes. The LCS of two keys is at most their multiset
    overlap, which is at most the overlap of their class counts (merging characters into
    a class can only raise it), so a pair whose class overlap cannot reach the threshold
    cannot be a near duplicate. On the bench corpus it rules out about 89 % of the LSH
    candidates before they are merged and verified.

    A key's counts are 32 bytes packed in four uint64 words, so a pair's overlap is a
    byte-wise minimum and one multiply (the overlap is at most the shorter length, so no
    byte sum carries); keys over 255 characters get the length bound only.
    """

    lengths: np.ndarray
    packed_counts: np.ndarray  # (keys, 4) uint64: 32 one-byte class counts

    @classmethod
    def of(cls, keys: pa.LargeStringArray) -> _UpperBound:
        parts = []
        counts = np.zeros((len(keys), 32), dtype=np.uint8)
        for start in range(0, len(keys), _CHUNK_KEYS):
            chunk = keys.slice(start, _CHUNK_KEYS)
            chars, owner, chunk_lengths = _characters(chunk)
            parts.append(chunk_lengths)
            classes = (_mix(chars.astype(np.uint64)) & np.uint64(31)).astype(np.int64)
            chunk_counts = np.bincount(
                owner * 32 + classes, minlength=len(chunk) * 32
            ).reshape(len(chunk), 32)
            chunk_counts[chunk_lengths > 255] = 255  # never binding (see may_reach)
            counts[start : start + len(chunk)] = chunk_counts
        return cls(
            np.concatenate([np.zeros(0, np.int64), *parts]), counts.view(np.uint64)
        )

    def reordered(self, order: np.ndarray) -> _UpperBound:
        """The same bound with row ``i`` holding key ``order[i]``."""
        return _UpperBound(self.lengths[order], self.packed_counts[order])

    def may_reach(
        self, first: np.ndarray, second: np.ndarray, threshold: float
    ) -> np.ndarray:
        """Whether each pair's bound reaches ``threshold``.

        The length bound (the overlap is at most the shorter key) goes first: it needs
        two small gathers, and the class counts are read only for the pairs it passes.
        """
        first_length, second_length = self.lengths[first], self.lengths[second]
        shorter = np.minimum(first_length, second_length)
        # A hair of slack: the bound must never be stricter than the verified score.
        needed = threshold * (first_length + second_length) - 1e-9
        reach = 2 * shorter >= needed
        (rest,) = np.nonzero(reach)
        overlap = np.minimum(
            self.packed_counts[first[rest]].view(np.uint8),
            self.packed_counts[second[rest]].view(np.uint8),
        ).view(np.uint64)
        words = overlap[:, 0] + overlap[:, 1] + overlap[:, 2] + overlap[:, 3]
        byte_sum = (words * np.uint64(0x0101010101010101)) >> np.uint64(56)
        # Up to 255 characters the byte sum never exceeds the shorter length; beyond,
        # it is meaningless and the shorter length bounds.
        bounded = np.where(
            shorter[rest] > 255, shorter[rest], byte_sum.astype(np.int64)
        )
        reach[rest] = 2 * bounded >= needed[rest]
        return reach


def _band_keys(keys: pa.LargeStringArray, settings: MinHashSettings) -> np.ndarray:
    """``(len(keys), bands)`` band hashes; an empty key gets 0 (it never becomes a candidate).

    32 bits a band: unrelated keys then share a band hash by chance about n² / 2³³ times
    a band (a few thousand extra candidates at 1M, each verified), for half the memory.

    Keys go in blocks of similar length, each a ``(length, keys)`` grid of its elements
    (a shorter key repeats its last element, which leaves its minimum unchanged), so a
    permutation's minima are one vectorised reduction over a grid that stays in the
    CPU cache; ``np.minimum.reduceat`` over ragged keys was three times slower.
    """
    rows, bands = settings.rows_per_band, settings.bands
    hashed, lengths = _multiset_elements(keys, settings.seed)
    starts = np.cumsum(lengths) - lengths
    rng = np.random.default_rng(settings.seed)
    multipliers = rng.integers(1, 2**63, size=settings.permutations, dtype=np.uint64)
    multipliers |= np.uint64(1)  # odd: multiply-shift hashing needs it
    addends = rng.integers(0, 2**63, size=settings.permutations, dtype=np.uint64)
    result = np.zeros((len(keys), bands), dtype=np.uint32)
    present = np.flatnonzero(lengths > 0)
    present = present[np.argsort(lengths[present], kind="stable")]
    begin = 0
    while begin < len(present):
        # Lengths ascend, so the block's last key sets its grid height.
        reach = min(
            begin + max(1, _BLOCK_ELEMENTS // int(lengths[present[begin]])),
            len(present),
        )
        end = min(
            begin + max(1, _BLOCK_ELEMENTS // int(lengths[present[reach - 1]])),
            len(present),
        )
        members, begin = present[begin:end], end
        height = int(lengths[members[-1]])
        grid = hashed[
            starts[members][None, :]
            + np.minimum(np.arange(height)[:, None], lengths[members][None, :] - 1)
        ]
        minima = np.empty((bands * rows, len(members)), dtype=np.uint64)
        permuted = np.empty((rows, height, len(members)), dtype=np.uint64)
        for first in range(0, bands * rows, rows):
            # A band's permutations: multiply-add, then the minimum per key. The shift
            # to the high half comes after the minimum (it is monotone).
            np.multiply(
                grid[None], multipliers[first : first + rows, None, None], out=permuted
            )
            np.add(permuted, addends[first : first + rows, None, None], out=permuted)
            permuted.min(axis=1, out=minima[first : first + rows])
        minima >>= np.uint64(32)
        by_band = minima.reshape(bands, rows, len(members))
        band_hash = np.broadcast_to(
            np.arange(1, bands + 1, dtype=np.uint64)[:, None], (bands, len(members))
        )
        for row in range(rows):
            band_hash = _mix(band_hash ^ by_band[:, row])
        # The high half, never 0 for a real key.
        result[members] = ((band_hash >> np.uint64(32)).astype(np.uint32) | 1).T
    return result


def _candidate_pairs(
    band_keys: np.ndarray,
    neighbours: int,
    bound: _UpperBound,
    threshold: float,
    earlier_than: int,
) -> np.ndarray:
    """Unique ``(earlier, later)`` positions sharing a band, as ``earlier * n + later``.

    Only pairs whose :class:`_UpperBound` reaches the threshold and whose earlier
    position is below ``earlier_than`` are kept (a reference-only pass wants pairs with
    a reference, the first positions, and bounds no other pair).
    """
    count = len(band_keys)
    # parts[0] is the merged, distinct set once there is one; the rest wait for a merge.
    parts: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    merged = 0
    positions = np.arange(count, dtype=np.int64)
    unsigned = positions.astype(np.uint64)
    waiting = 0  # pairs appended since the last merge
    for band in range(band_keys.shape[1]):
        # Band hash in the high half, position in the low: one plain sort orders each
        # bucket's members in input order (7x faster than a stable argsort).
        composite = np.sort((band_keys[:, band].astype(np.uint64) << 32) | unsigned)
        order = (composite & np.uint64(0xFFFFFFFF)).astype(np.int64)
        ordered = (composite >> np.uint64(32)).astype(np.uint32)
        new_bucket = np.ones(count, dtype=bool)
        new_bucket[1:] = ordered[1:] != ordered[:-1]
        bucket_start = np.maximum.accumulate(np.where(new_bucket, positions, 0))
        rank = positions - bucket_start  # place of each member within its bucket
        real = ordered != 0
        # The bound's rows in bucket order: one gather a band, then each pair reads two
        # nearby rows instead of two random ones (at 1M the rows outgrow the cache).
        in_order = bound.reordered(order)
        # The first members of a bucket are the likeliest to be kept, the nearest ones
        # the likeliest to be alike: pair with up to ``neighbours`` of each (a first
        # member that is also a near one is paired once).
        for distance in range(1, neighbours + 1):
            later = np.flatnonzero((rank >= distance) & real)
            if len(later) == 0:
                break
            far = later[rank[later] >= neighbours + distance]
            for earlier_slots, later_slots in (
                (later - distance, later),
                (bucket_start[far] + distance - 1, far),
            ):
                wanted = order[earlier_slots] < earlier_than
                earlier_at, later_at = earlier_slots[wanted], later_slots[wanted]
                possible = in_order.may_reach(earlier_at, later_at, threshold)
                parts.append(
                    order[earlier_at[possible]] * count + order[later_at[possible]]
                )
                waiting += len(parts[-1])
        # Merge once the waiting pairs outnumber the merged ones: each pair is sorted
        # O(log) times in all (re-sorting the merged set every few bands was most of
        # the time at 1M), and memory stays within about twice the distinct pairs.
        if waiting >= max(merged, _MIN_MERGE_PAIRS):
            parts.append(_sorted_unique(parts))
            merged, waiting = len(parts[0]), 0
    return _sorted_unique(parts)


def _verify_block(
    pairs: np.ndarray, shared: tuple[pa.LargeStringArray, np.ndarray, float, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of one block whose exact ROUGE-L F reaches the threshold, with scores.

    Only this block's keys become Python strings (cpdist needs them).
    """
    all_keys, lengths, threshold, threads = shared
    earlier, later = np.divmod(pairs, len(all_keys))
    lcs = process.cpdist(
        all_keys.take(earlier).to_pylist(),
        all_keys.take(later).to_pylist(),
        scorer=LCSseq.similarity,
        dtype=np.int64,
        workers=threads,
    )
    # The same formula as rouge_l_f.
    scores = 2.0 * lcs / (lengths[earlier] + lengths[later])
    hit = scores >= threshold
    return np.stack([earlier[hit], later[hit]], axis=1), scores[hit]


def _verify(
    all_keys: pa.LargeStringArray,
    lengths: np.ndarray,
    pairs: np.ndarray,
    threshold: float,
    runner: BlockRunner,
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose exact ROUGE-L F reaches ``threshold``, with their scores.

    Block by block, so the working memory is a block's, not a copy of every pair. Local
    blocks run one after the other on every core (cpdist's C threads); Ray blocks run
    as one single-threaded task each.
    """
    local = runner.engine == "local"
    shared = (all_keys, lengths, threshold, runner.workers if local else 1)
    blocks = [
        pairs[start : start + _VERIFY_PAIRS]
        for start in range(0, len(pairs), _VERIFY_PAIRS)
    ]
    hits: list[np.ndarray] = [np.zeros((0, 2), dtype=np.int64)]
    hit_scores: list[np.ndarray] = [np.zeros(0, dtype=np.float64)]
    results = (
        (_verify_block(block, shared) for block in blocks)
        if local
        else runner.map(_verify_block, blocks, shared)
    )
    for block_hits, block_scores in results:
        hits.append(block_hits)
        hit_scores.append(block_scores)
    return np.concatenate(hits), np.concatenate(hit_scores)


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")


def _worker_count(workers: int | None) -> int:
    return workers if workers is not None else (os.cpu_count() or 1)


@dataclass(frozen=True)
class _Search:
    """How a pass finds its pairs: the public functions' keyword arguments, checked."""

    threshold: float
    minhash: MinHashSettings
    workers: int
    progress: str | None
    engine: str

    @classmethod
    def of(
        cls,
        threshold: float,
        minhash: MinHashSettings,
        workers: int | None,
        progress: str | None,
        engine: str,
    ) -> _Search:
        _check_threshold(threshold)
        minhash.check()  # built by hand (bench, tests), it has not been checked yet
        return cls(threshold, minhash, _worker_count(workers), progress, engine)


def _candidate_task(
    band_keys: np.ndarray, shared: tuple[int, _UpperBound, float, int]
) -> np.ndarray:
    return _candidate_pairs(band_keys, *shared)


def _all_candidates(
    band_keys: np.ndarray,
    bound: _UpperBound,
    search: _Search,
    runner: BlockRunner,
    earlier_than: int,
) -> np.ndarray:
    """Every band's candidate pairs, distinct and sorted (see :func:`_candidate_pairs`).

    One task per ``_TASK_BANDS`` bands (worker processes locally, Ray tasks on Ray),
    merged in the driver as the tasks finish: the same distinct set in any order.
    """
    shared = (search.minhash.bucket_neighbours, bound, search.threshold, earlier_than)
    groups = _Blocks(
        -(band_keys.shape[1] // -_TASK_BANDS),
        lambda index: np.ascontiguousarray(
            band_keys[:, index * _TASK_BANDS : (index + 1) * _TASK_BANDS]
        ),
    )
    parts: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    waiting = 0  # pairs received since the last merge (the same policy as one pass)
    for pairs in runner.map(_candidate_task, groups, shared):
        parts.append(pairs)
        waiting += len(pairs)
        if waiting >= max(len(parts[0]), _MIN_MERGE_PAIRS):
            parts.append(_sorted_unique(parts))
            waiting = 0
    return _sorted_unique(parts)


def _matching_pairs(
    reference_keys: pa.LargeStringArray,
    keys: pa.LargeStringArray,
    search: _Search,
    *,
    references_only: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Verified pairs, their scores and the candidate count, over references then keys.

    Positions count the references first: they are "earlier" than every record. With
    ``references_only`` only pairs of a reference and a key are verified.
    """
    minhash, progress = search.minhash, search.progress
    all_keys = pa.concat_arrays([reference_keys, keys])
    chunks = _key_slices(all_keys, _CHUNK_KEYS)
    band_keys = np.zeros((len(all_keys), minhash.bands), np.uint32)
    with engine_session(search.engine, search.workers) as runner:
        with tqdm(
            total=len(chunks), desc=progress, disable=progress is None, mininterval=2.0
        ) as bar:
            signatures = runner.map(_band_keys, chunks, minhash)
            for position, signature in enumerate(signatures):
                band_keys[
                    position * _CHUNK_KEYS : position * _CHUNK_KEYS + len(signature)
                ] = signature
                bar.update()
        bound = _UpperBound.of(all_keys)
        references = len(reference_keys)
        candidates = _all_candidates(
            band_keys,
            bound,
            search,
            runner,
            references if references_only else len(all_keys),
        )
        del band_keys  # the largest array so far; verification does not need it
        if references_only:  # pairs of two references are no match either
            candidates = candidates[candidates % len(all_keys) >= references]
        verified, scores = _verify(
            all_keys, bound.lengths, candidates, search.threshold, runner
        )
    return verified, scores, len(candidates)


def find_near_duplicates(
    keys: Texts,
    reference_keys: Texts = (),
    *,
    threshold: float,
    minhash: MinHashSettings,
    workers: int | None = None,
    progress: str | None = None,
    engine: str = "local",
) -> NearDuplicates:
    """Alpaca's greedy pass: drop each key that matches an earlier kept key or a reference.

    ``keys`` and ``reference_keys`` are comparison keys (:func:`comparison_keys`).
    ``workers`` processes/threads (``None``: every core); ``progress`` names a tqdm bar;
    ``engine`` is ``local`` or ``ray`` (:mod:`belle_kedro.pipelines.clean.engine`).

    A repeat of an earlier identical key is always dropped (ROUGE-L 1 against the first
    copy, or against whatever kept record the first copy repeats), so only the first
    copy of each key takes part in the search; this is exact, not an approximation,
    and keeps buckets of repeated instructions ("翻译成英文" with many inputs) small.
    """
    search = _Search.of(threshold, minhash, workers, progress, engine)
    keys = as_texts(keys)
    count = len(keys)
    lengths = _lengths(keys)
    first = first_copies(keys)
    distinct = np.flatnonzero((first == np.arange(count)) & (lengths > 0))
    inner = _greedy(keys.take(distinct), as_texts(reference_keys), search)
    keep = np.zeros(count, dtype=bool)
    duplicate_of = np.full(count, -1, dtype=np.int64)
    score = np.zeros(count, dtype=np.float64)
    keep[lengths == 0] = True  # an empty key matches nothing (ROUGE-L of "" is 0)
    keep[distinct] = inner.keep
    duplicate_of[distinct] = np.where(
        inner.duplicate_of < 0,
        -1,
        np.where(
            inner.duplicate_of < len(distinct),
            distinct[np.minimum(inner.duplicate_of, len(distinct) - 1)],
            inner.duplicate_of - len(distinct) + count,
        ),
    )
    score[distinct] = inner.score
    copies = np.flatnonzero((first != np.arange(count)) & (lengths > 0))
    original = first[copies]
    kept_original = keep[original]
    duplicate_of[copies] = np.where(kept_original, original, duplicate_of[original])
    score[copies] = np.where(kept_original, 1.0, score[original])
    return NearDuplicates(
        keep=keep,
        duplicate_of=duplicate_of,
        score=score,
        candidates=inner.candidates,
        verified=inner.verified + len(copies),
    )


def _lengths(keys: pa.LargeStringArray) -> np.ndarray:
    """Each key's length in code points (``len`` of the Python string)."""
    return pc.utf8_length(keys).to_numpy(zero_copy_only=False).astype(np.int64)


def first_copies(keys: pa.LargeStringArray) -> np.ndarray:
    """For each key, the position of the first key equal to it.

    Arrow's dictionary encoding numbers distinct values in order of first appearance,
    so a position holds a first copy exactly when its code exceeds every earlier code.
    """
    codes = keys.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    codes = codes.astype(np.int64)
    new = np.ones(len(codes), dtype=bool)
    new[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    return np.flatnonzero(new)[codes]


def _undecided(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``keep``, ``duplicate_of`` and ``best`` for ``count`` keys before any decision."""
    return (
        np.ones(count, dtype=bool),
        np.full(count, -1, dtype=np.int64),
        np.zeros(count, dtype=np.float64),
    )


def _decide(
    verified: np.ndarray, scores: np.ndarray, references: int, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sequential greedy rule over verified pairs: ``keep``, ``duplicate_of``, ``best``.

    Later record by later record in input order, a record goes when one of its partners
    was kept (references always are, and are never dropped); its match is the kept
    partner with the highest score, the earliest of equals. A plain Python loop over
    ``_DECIDE_PAIRS`` pairs at a time (numpy's per-call cost on a handful of partners
    was most of this stage), so only one block's pairs are ever Python numbers.
    """
    keep, duplicate_of, best = _undecided(count)
    order = np.lexsort((verified[:, 0], verified[:, 1]))
    verified, scores = verified[order], scores[order]
    kept = bytearray(b"\x01") * count
    start = 0
    while start < len(verified):
        # A block ends with a whole group: every pair of its last record is in it.
        stop = min(start + _DECIDE_PAIRS, len(verified))
        stop = int(np.searchsorted(verified[:, 1], verified[stop - 1, 1], "right"))
        current, match, top = -1, -1, -1.0
        for later, earlier, score in zip(
            verified[start:stop, 1].tolist(),
            verified[start:stop, 0].tolist(),
            scores[start:stop].tolist(),
            strict=True,
        ):
            if later != current:
                if match >= 0:
                    kept[current] = 0
                    duplicate_of[current], best[current] = match, top
                current, match, top = later, -1, -1.0
            if later >= references and kept[earlier] and score > top:
                match, top = earlier, score
        if match >= 0:
            kept[current] = 0
            duplicate_of[current], best[current] = match, top
        start = stop
    keep[:] = np.frombuffer(kept, dtype=np.uint8).astype(bool)
    return keep, duplicate_of, best


def _greedy(
    keys: pa.LargeStringArray, reference_keys: pa.LargeStringArray, search: _Search
) -> NearDuplicates:
    """The greedy pass over distinct keys: candidates, verification, then decisions."""
    references = len(reference_keys)
    verified, scores, candidates = _matching_pairs(
        reference_keys, keys, search, references_only=False
    )
    # The decision is the one stage that runs on the driver alone on every engine; these
    # lines let a run's log show its time (bench/kedro_run.py: its driver memory too).
    logger.info(
        "near-duplicate decision: %d verified pairs over %d keys",
        len(verified),
        references + len(keys),
    )
    keep, duplicate_of, best = _decide(
        verified, scores, references, references + len(keys)
    )
    logger.info("near-duplicate decision done: %d keys dropped", int((~keep).sum()))
    return _outcome(keep, duplicate_of, best, references, (candidates, len(verified)))


def find_reference_matches(
    keys: Texts,
    reference_keys: Texts,
    *,
    threshold: float,
    minhash: MinHashSettings,
    workers: int | None,
    progress: str | None,
    engine: str,
) -> NearDuplicates:
    """Drop each key that matches one of ``reference_keys``; keys never match each other.

    The outcome reads as for :func:`find_near_duplicates` (a match is always ``n + k``,
    the reference with the highest score, the last of equals). Its callers are the
    clean and review stages, which pass every search setting from ``clean``'s block.
    """
    references = len(reference_keys)
    search = _Search.of(threshold, minhash, workers, progress, engine)
    verified, scores, candidates = _matching_pairs(
        as_texts(reference_keys), as_texts(keys), search, references_only=True
    )
    keep, duplicate_of, best = _undecided(references + len(keys))
    # Highest score last, so the fancy assignment leaves each key its best reference.
    order = np.argsort(scores, kind="stable")
    later, earlier = verified[order, 1], verified[order, 0]
    keep[later] = False
    duplicate_of[later] = earlier
    best[later] = scores[order]
    return _outcome(keep, duplicate_of, best, references, (candidates, len(verified)))


def _outcome(
    keep: np.ndarray,
    duplicate_of: np.ndarray,
    best: np.ndarray,
    references: int,
    pair_counts: tuple[int, int],
) -> NearDuplicates:
    """Back to the caller's numbering: records 0..n-1, reference k as n + k.

    ``pair_counts``: the candidate and the verified pairs.
    """
    count = len(keep) - references
    owner = duplicate_of[references:]
    mapped = np.where(
        owner < 0, -1, np.where(owner < references, owner + count, owner - references)
    )
    return NearDuplicates(
        keep=keep[references:],
        duplicate_of=mapped,
        score=best[references:],
        candidates=pair_counts[0],
        verified=pair_counts[1],
    )
