"""Split clean instructions into a held-out set and nested, seeded sample-size variants.

Every random choice is a seeded hash of the record's normalised instruction, so the same
input and seed always give the same split, whatever the row order or the machine.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from belle_kedro.common.records import (
    as_text_records,
    records_digest,
    without_skipped,
)
from belle_kedro.common.text import as_texts, map_texts, similarity_key, text_series
from belle_kedro.pipelines.split.settings import MixInSettings, SplitSettings

logger = logging.getLogger(__name__)

UNKNOWN_CATEGORY = "<unknown>"


def _hash_unit(keys: pd.Series, salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per key, fixed by (salt, key)."""
    digests = (
        hashlib.blake2b(f"{salt}\x1f{key}".encode(), digest_size=8).digest()
        for key in keys
    )
    return np.fromiter(
        (int.from_bytes(d, "big") / 2**64 for d in digests),
        dtype=np.float64,
        count=len(keys),
    )


def _instruction_keys(records: pd.DataFrame) -> pd.Series:
    """Each record's keyed instruction: an Arrow-backed column, built a chunk at a time."""
    return text_series(map_texts(similarity_key, records["instruction"]), records.index)


def _ranked(score: np.ndarray, keys: pd.Series) -> np.ndarray:
    """Positions by ``score``, then key, then position (a stable Arrow sort: UTF-8 byte
    order is code point order, Python's string order), with no Python object per row."""
    table = pa.table({"score": score, "key": as_texts(keys)})
    order = pc.sort_indices(
        table, sort_keys=[("score", "ascending"), ("key", "ascending")]
    )
    return order.to_numpy()


def _normalise_records(records: pd.DataFrame, source: str) -> pd.DataFrame:
    records, skipped = without_skipped(records)
    if skipped:
        logger.warning(
            "%s: left out conversations the reader skipped: %s", source, skipped
        )
    records = as_text_records(records, source)
    if "category" not in records.columns:
        records["category"] = None
    return records


def _holdout_count(total: int, settings: SplitSettings) -> int:
    if settings.holdout_size is not None:
        count = settings.holdout_size
    else:
        assert settings.holdout_fraction is not None  # SplitSettings.check: one is set
        count = round(settings.holdout_fraction * total)
    if not 0 <= count < total:
        raise ValueError(
            f"split.holdout_size/holdout_fraction gives {count} held-out records, but only {total} records are available"
        )
    return count


def _stratified_quota(groups: pd.Series, count: int) -> dict[str, int]:
    """Largest-remainder allocation of ``count`` across groups, proportional to size."""
    sizes = groups.value_counts().sort_index()
    exact = sizes / sizes.sum() * count
    quota = {str(group): int(exact[group]) for group in sizes.index}
    remainder = count - sum(quota.values())
    # Ties broken by group name so the allocation never depends on row order.
    order = sorted(quota, key=lambda g: (-(exact[g] - quota[g]), g))
    for group in order[:remainder]:
        quota[group] += 1
    return quota


def pool_with_mix_in(
    clean_instructions: pd.DataFrame,
    mix_in_instructions: pd.DataFrame,
    settings: SplitSettings,
) -> pd.DataFrame:
    """The split's pool: clean records, plus the mix-in when ``mix_in.mode`` is ``pool``."""
    records = _normalise_records(clean_instructions, "clean_instructions")
    if settings.mix_in.mode != "pool":
        return records
    extra = _sample_mix_in(mix_in_instructions, settings.mix_in, settings.seed)
    return pd.concat([records, extra], ignore_index=True)


def _sample_mix_in(
    mix_in_instructions: pd.DataFrame, mix_in: MixInSettings, seed: int
) -> pd.DataFrame:
    extra = _normalise_records(mix_in_instructions, "mix_in_instructions")
    if mix_in.size is not None and mix_in.size < len(extra):
        order = np.argsort(
            _hash_unit(_instruction_keys(extra), f"{seed}:mix_in"), kind="stable"
        )
        extra = extra.iloc[np.sort(order[: mix_in.size])].reset_index(drop=True)
    return extra


def holdout_split(
    pool: pd.DataFrame, settings: SplitSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a stratified (by category where known), seeded share of the pool.

    Returns ``(holdout, train_pool)``. Records sharing a normalised instruction with
    the held-out set are removed from the training pool, so the two never overlap.
    An empty pool is a ``ValueError`` that points at the clean report.
    """
    records = _normalise_records(pool, "split pool")
    if records.empty:
        # Nothing to hold out or train on: say where the records went, not a quota error.
        raise ValueError(
            "split: the pool holds no records (clean_instructions is empty and no "
            "mix-in was pooled); clean_report says what each clean step dropped"
        )
    keys = _instruction_keys(records)
    score = _hash_unit(keys, f"{settings.seed}:holdout")
    groups = records["category"].fillna(UNKNOWN_CATEGORY).astype(str)
    quota = _stratified_quota(groups, _holdout_count(len(records), settings))
    chosen = np.zeros(len(records), dtype=bool)
    for group, take in quota.items():
        members = np.flatnonzero((groups == group).to_numpy())
        # Hash score, then the key itself, orders records without looking at row order.
        ranked = members[_ranked(score[members], keys.iloc[members])]
        chosen[ranked[:take]] = True
    holdout = records[chosen].reset_index(drop=True)
    held_keys = set(keys[chosen])
    train_pool = records[~chosen & ~keys.isin(held_keys)].reset_index(drop=True)
    dropped = int((~chosen).sum()) - len(train_pool)
    if dropped:
        logger.info(
            "Dropped %d training records that repeat a held-out instruction", dropped
        )
    return holdout, train_pool


def nested_variants(
    train_pool: pd.DataFrame,
    holdout: pd.DataFrame,
    mix_in_instructions: pd.DataFrame,
    settings: SplitSettings,
) -> dict[str, pd.DataFrame]:
    """Nested, seeded sample-size variants, keyed by the names in ``variant_sizes``.

    One seeded permutation of the pool; variant ``n`` is its first ``n`` records, so each
    larger variant contains every smaller one. With ``mix_in.mode: every_variant`` the
    mix-in sample (BELLE's ~50K English Alpaca) is appended to every variant.
    """
    keys = _instruction_keys(train_pool)
    order = _ranked(_hash_unit(keys, f"{settings.seed}:variants"), keys)
    shuffled = train_pool.iloc[order].reset_index(drop=True)
    extra = None
    if settings.mix_in.mode == "every_variant":
        extra = _sample_mix_in(mix_in_instructions, settings.mix_in, settings.seed)
        extra = extra[~_instruction_keys(extra).isin(set(_instruction_keys(holdout)))]
    variants = {}
    for name, size in settings.variant_sizes.items():
        if size > len(shuffled):
            raise ValueError(
                f"split.variant_sizes.{name} asks for {size} records, but the training pool has only {len(shuffled)} after the held-out split"
            )
        variant = shuffled.iloc[:size]
        if extra is not None:
            variant = pd.concat([variant, extra], ignore_index=True)
        variants[name] = variant.reset_index(drop=True)
    return variants


def split_summary(
    holdout: pd.DataFrame, seed: int, variants: dict[str, pd.DataFrame]
) -> dict[str, Any]:
    """Sizes, digests and the overlap check of the split, for the report and MLflow."""
    held_keys = set(_instruction_keys(holdout))
    report: dict[str, Any] = {
        "seed": seed,
        "holdout": {"size": len(holdout), "digest": records_digest(holdout)},
        "variants": {},
    }
    for name, variant in variants.items():
        overlap = int(_instruction_keys(variant).isin(held_keys).sum())
        if overlap:
            raise AssertionError(
                f"variant {name} shares {overlap} instructions with the held-out set"
            )
        report["variants"][name] = {
            "size": len(variant),
            "digest": records_digest(variant),
            "holdout_overlap": overlap,
        }
    return report
