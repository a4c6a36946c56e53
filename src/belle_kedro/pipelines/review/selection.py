"""The review sample: kept records per task class, dropped records per rule, borderline ones.

Everything comes from the clean stage's own outputs of the same run: the kept records
(``clean_instructions``) with their predicted classes, and every dropped record with its
rule, partner, score and class (``clean_drops``). The only matching done here is the
borderline search: kept records a slightly lower near-duplicate threshold would drop.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from belle_kedro.common.records import RECORD_COLUMNS, record_bytes
from belle_kedro.pipelines.clean.dedup import comparison_keys, find_near_duplicates
from belle_kedro.pipelines.clean.passes import partner_texts, seed_texts
from belle_kedro.pipelines.clean.settings import CleanSettings
from belle_kedro.pipelines.review.settings import SampleSettings

SIGNAL_COLUMNS = ("stratum", "rule", "partner", "score")


def record_ids(records: pd.DataFrame) -> list[str]:
    """A stable id per record: the first 16 hex digits of its fields' SHA-256."""
    return [
        hashlib.sha256(record_bytes(*row)).hexdigest()[:16]
        for row in records.loc[:, list(RECORD_COLUMNS)].itertuples(index=False)
    ]


def borderline_duplicates(
    kept: pd.DataFrame, seed_tasks: pd.DataFrame, clean: CleanSettings, margin: float
) -> pd.DataFrame:
    """``partner, score`` per kept record: its best near-duplicate partner when a
    threshold ``margin`` lower would have dropped it (the least sure keeps), else
    empty and NaN. One near-duplicate pass over the kept records, with clean's settings.
    """
    near, matching = clean.near_duplicates, clean.matching
    none = pd.DataFrame({"partner": [""] * len(kept), "score": np.nan})
    if not near.enabled or margin <= 0 or kept.empty:
        return none
    seed_instructions, seed_inputs = seed_texts(seed_tasks, near.include_input)
    if not near.against_seed_tasks:
        seed_instructions, seed_inputs = [], None if seed_inputs is None else []
    close = find_near_duplicates(
        comparison_keys(
            kept["instruction"], kept["input"] if near.include_input else None
        ),
        comparison_keys(seed_instructions, seed_inputs),
        threshold=near.threshold - margin,
        minhash=matching.minhash,
        workers=matching.workers,
        progress="borderline near duplicates",
        engine=clean.engine,
    )
    return pd.DataFrame(
        {
            "partner": partner_texts(kept, close.duplicate_of, seed_instructions),
            "score": np.where(close.keep, np.nan, close.score.round(4)),
        }
    )


def _length_borderline(
    kept: pd.DataFrame, clean: CleanSettings, margin: int
) -> np.ndarray:
    """Kept records whose instruction length lies within ``margin`` of a length limit."""
    length = clean.rules.length
    if not length.enabled:
        return np.zeros(len(kept), dtype=bool)
    chars = kept["instruction"].str.len().to_numpy()
    near_min = chars < length.min_instruction_chars + margin
    with_input = (kept["input"].str.len() > 0).to_numpy()
    near_max = with_input & (chars > length.max_instruction_chars_with_input - margin)
    if length.max_output_chars is not None:
        near_max |= (
            kept["output"].str.len().to_numpy() > length.max_output_chars - margin
        )
    return near_min | near_max


def _draw(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """A seeded draw of ``size`` rows (all when fewer), in a stable order."""
    if len(frame) <= size:
        return frame
    return frame.sample(n=size, random_state=seed).sort_index()


def draw_sample(
    kept: pd.DataFrame,
    dropped: pd.DataFrame,
    clean: CleanSettings,
    sample: SampleSettings,
    seed: int,
) -> pd.DataFrame:
    """The review sample: one row per record, its stratum and the automatic signals.

    Strata: ``kept`` (``kept_per_class`` per predicted class), ``borderline`` (kept
    records the rules were least sure of, at most ``borderline``, closest first) and
    ``dropped`` (``dropped_per_rule`` per rule). ``kept`` needs a ``task_class`` column.
    """
    duplicate_close = kept["score"].notna().to_numpy()
    length_close = _length_borderline(kept, clean, sample.length_margin)
    unsure = kept[duplicate_close | length_close].assign(
        rule=np.where(duplicate_close, "near_duplicates", "length")[
            duplicate_close | length_close
        ]
    )
    unsure = unsure.sort_values("score", ascending=False, kind="stable").head(
        sample.borderline
    )
    rest = kept.drop(index=unsure.index)
    parts = [unsure.assign(stratum="borderline")]
    for _, members in rest.groupby("task_class", sort=True):
        parts.append(
            _draw(members, sample.kept_per_class, seed).assign(
                stratum="kept", rule="", partner="", score=np.nan
            )
        )
    for _, members in dropped.groupby("rule", sort=True):
        parts.append(
            _draw(members, sample.dropped_per_rule, seed).assign(stratum="dropped")
        )
    chosen = pd.concat(parts, ignore_index=True)
    chosen.insert(0, "record_id", record_ids(chosen))
    return chosen.drop_duplicates("record_id").reset_index(drop=True)
