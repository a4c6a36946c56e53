"""The review sample: kept records per task class, dropped records per rule, borderline ones.

The clean stage keeps only its survivors, so the records it dropped (and why) are found
by replaying its passes here with the same ``clean`` settings, through the clean
stage's own functions; the replay must end on exactly ``clean_instructions``, or the
two were made with other parameters and the sample would lie.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa

from belle_kedro.common.records import RECORD_COLUMNS, record_bytes
from belle_kedro.pipelines.clean.dedup import (
    NearDuplicates,
    comparison_keys,
    find_near_duplicates,
    find_reference_matches,
)
from belle_kedro.pipelines.clean.passes import _seed_texts
from belle_kedro.pipelines.clean.rules import RULES, normalise_records
from belle_kedro.pipelines.clean.settings import CleanSettings, MatchingSettings
from belle_kedro.pipelines.review.settings import SampleSettings

SIGNAL_COLUMNS = ("stratum", "rule", "partner", "score")


def record_ids(records: pd.DataFrame) -> list[str]:
    """A stable id per record: the first 16 hex digits of its fields' SHA-256."""
    return [
        hashlib.sha256(record_bytes(*row)).hexdigest()[:16]
        for row in records.loc[:, list(RECORD_COLUMNS)].itertuples(index=False)
    ]


def _dropped(records: pd.DataFrame, mask: np.ndarray, rule: str) -> pd.DataFrame:
    return records[mask].assign(rule=rule, partner="", score=np.nan)


def _matched(
    records: pd.DataFrame,
    found_keep: np.ndarray,
    partners: list[str],
    scores: np.ndarray,
    rule: str,
) -> pd.DataFrame:
    dropped = ~found_keep
    return records[dropped].assign(
        rule=rule,
        partner=[partners[i] for i in np.flatnonzero(dropped)],
        score=scores[dropped].round(4),
    )


def _partner_texts(
    records: pd.DataFrame, duplicate_of: np.ndarray, references: list[str]
) -> list[str]:
    count = len(records)
    instructions = records["instruction"].tolist()
    return [
        ""
        if match < 0
        else (references[match - count] if match >= count else instructions[match])
        for match in duplicate_of.tolist()
    ]


def _keys(records: pd.DataFrame, include_input: bool) -> pa.LargeStringArray:
    return comparison_keys(
        records["instruction"], records["input"] if include_input else None
    )


def _near_duplicates(
    keys: pa.LargeStringArray,
    seed_keys: pa.LargeStringArray,
    threshold: float,
    matching: MatchingSettings,
) -> NearDuplicates:
    return find_near_duplicates(
        keys,
        seed_keys,
        threshold=threshold,
        minhash=matching.minhash,
        workers=matching.workers,
    )


def replay_clean(
    generated: pd.DataFrame,
    seed_tasks: pd.DataFrame,
    eval_set: pd.DataFrame,
    clean: CleanSettings,
    margin: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(kept, dropped)`` as the clean stage decides them.

    ``dropped`` carries ``rule`` (which step dropped it), ``partner`` (the kept record,
    seed task or eval question it repeats) and ``score`` (that pair's ROUGE-L F).
    ``kept`` carries the best near-duplicate ``score`` of the records that would have
    been dropped at ``threshold - margin`` (NaN for the rest) and its ``partner``.
    """
    records = normalise_records(generated)
    drops = []
    for name, rule in clean.rules.in_order():
        if rule.enabled:
            records, flags = RULES[name](records, **rule.options())
            mask = flags.fillna(False).astype(bool).to_numpy()
            drops.append(_dropped(records, mask, name))
            records = records[~mask].reset_index(drop=True)
    near, matching = clean.near_duplicates, clean.matching
    seed_instructions, seed_inputs = _seed_texts(seed_tasks, near.include_input)
    if not near.against_seed_tasks:
        seed_instructions, seed_inputs = [], None if seed_inputs is None else []
    borderline = pd.DataFrame({"partner": [""] * len(records), "score": np.nan})
    if near.enabled:
        keys = _keys(records, near.include_input)
        seed_keys = comparison_keys(seed_instructions, seed_inputs)
        found = _near_duplicates(keys, seed_keys, near.threshold, matching)
        partners = _partner_texts(records, found.duplicate_of, seed_instructions)
        drops.append(
            _matched(records, found.keep, partners, found.score, "near_duplicates")
        )
        records = records[found.keep].reset_index(drop=True)
        keys = keys.filter(pa.array(found.keep))
        if margin > 0:
            # Kept records a slightly lower threshold would drop: the least sure keeps.
            close = _near_duplicates(keys, seed_keys, near.threshold - margin, matching)
            borderline = pd.DataFrame(
                {
                    "partner": _partner_texts(
                        records, close.duplicate_of, seed_instructions
                    ),
                    "score": np.where(close.keep, np.nan, close.score.round(4)),
                }
            )
    decon = clean.decontamination
    if decon.enabled and len(records) and len(eval_set):
        questions = eval_set["question"].tolist()
        found = find_reference_matches(
            _keys(records, decon.include_input),
            comparison_keys(questions),
            threshold=decon.threshold,
            minhash=matching.minhash,
            workers=matching.workers,
            progress=None,
            engine=clean.engine,
        )
        partners = _partner_texts(records, found.duplicate_of, questions)
        drops.append(
            _matched(records, found.keep, partners, found.score, "decontamination")
        )
        records = records[found.keep].reset_index(drop=True)
        borderline = borderline[found.keep].reset_index(drop=True)
    kept = pd.concat([records, borderline], axis=1)
    dropped = (
        pd.concat(drops, ignore_index=True)
        if drops
        else records.iloc[:0].assign(rule="", partner="", score=np.nan)
    )
    return kept, dropped


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
