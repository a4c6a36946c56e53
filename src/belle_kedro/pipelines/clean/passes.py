"""The two pair-matching passes of the clean pipeline, each with its report section.

Near duplicates (Alpaca's rule, against earlier kept records and the seed tasks) and
decontamination (against the eval set's questions); both find their pairs through
:mod:`belle_kedro.pipelines.clean.dedup`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from belle_kedro.common.records import select_rows
from belle_kedro.common.text import STR_DTYPE
from belle_kedro.datasets.eval_set import eval_set_digest
from belle_kedro.pipelines.clean.dedup import (
    comparison_keys,
    find_near_duplicates,
    find_reference_matches,
)
from belle_kedro.pipelines.clean.rules import EXAMPLE_CHARS, dropped_rows
from belle_kedro.pipelines.clean.settings import (
    DecontaminationSettings,
    MatchingSettings,
    NearDuplicatesSettings,
)


def seed_texts(
    seed_tasks: pd.DataFrame, include_input: bool
) -> tuple[list[str], list[str] | None]:
    """Each seed task's instruction, with its first instance's input when asked."""
    instructions = [str(text) for text in seed_tasks["instruction"]]
    if not include_input:
        return instructions, None
    inputs = [
        str(instances[0]["input"]) if len(instances) else ""
        for instances in seed_tasks["instances"]
    ]
    return instructions, inputs


def near_duplicate_pass(
    records: pd.DataFrame,
    seed_tasks: pd.DataFrame,
    settings: NearDuplicatesSettings,
    matching: MatchingSettings,
    examples: int,
    *,
    engine: str,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Drop records whose instruction (optionally + input) has ROUGE-L F >= threshold
    against an earlier kept record or a seed task (Alpaca's rule, order-stable); the
    survivors, the dropped records (each with its partner and score) and the report."""
    report: dict[str, Any] = {
        "rule": "near_duplicates",
        "enabled": settings.enabled,
        "input": len(records),
        "threshold": settings.threshold,
        "include_input": settings.include_input,
        "against_seed_tasks": settings.against_seed_tasks,
        "dropped": 0,
        "dropped_as_seed_duplicates": 0,
        "examples": [],
    }
    if not settings.enabled:
        return records, dropped_rows(records, [False] * len(records), ""), report
    keys = comparison_keys(
        records["instruction"], records["input"] if settings.include_input else None
    )
    seed_keys: list[str] = []
    seed_instructions: list[str] = []
    if settings.against_seed_tasks:
        seed_instructions, seed_inputs = seed_texts(seed_tasks, settings.include_input)
        seed_keys = comparison_keys(seed_instructions, seed_inputs)
    found = find_near_duplicates(
        keys,
        seed_keys,
        threshold=settings.threshold,
        minhash=matching.minhash,
        workers=matching.workers,
        progress="near-duplicate signatures",
        engine=engine,
    )
    report["candidate_pairs"] = found.candidates
    report["verified_pairs"] = found.verified
    dropped_positions = np.flatnonzero(~found.keep)
    report["dropped"] = len(dropped_positions)
    report["dropped_as_seed_duplicates"] = int(
        (found.duplicate_of >= len(records)).sum()
    )
    partners = partner_texts(
        records, found.duplicate_of[dropped_positions], seed_instructions
    )
    for position, matched in zip(
        dropped_positions[:examples], partners.iloc[:examples], strict=True
    ):
        match = int(found.duplicate_of[position])
        report["examples"].append(
            {
                "instruction": records["instruction"].iat[position],
                "duplicate_of": matched,
                "duplicate_of_seed_task": match >= len(records),
                "rouge_l": round(float(found.score[position]), 4),
            }
        )
    dropped = dropped_rows(
        records,
        ~found.keep,
        "near_duplicates",
        partners,
        found.score[~found.keep].round(4),
    )
    return select_rows(records, found.keep), dropped, report


def partner_texts(
    records: pd.DataFrame, matches: np.ndarray, references: Sequence[str]
) -> pd.Series:
    """The text each match points at: an earlier record's instruction (a match below
    the record count), ``references[match - count]`` (a seed task, an eval question),
    or ``""`` for -1. One Arrow take: no Python string per dropped record."""
    texts = pd.concat(
        [records["instruction"], pd.Series([*references, ""], dtype=STR_DTYPE)],
        ignore_index=True,
    )
    return texts.iloc[np.where(matches < 0, len(texts) - 1, matches)].reset_index(
        drop=True
    )


def decontamination_pass(
    records: pd.DataFrame,
    eval_set: pd.DataFrame,
    settings: DecontaminationSettings,
    matching: MatchingSettings,
    examples: int,
    *,
    engine: str,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Drop records whose instruction (+ input) has ROUGE-L F >= threshold against an
    eval-set question; the survivors, the dropped records (each with its eval question
    and score) and the report (drops per eval class, the eval set's digest)."""
    report: dict[str, Any] = {
        "rule": "decontamination",
        "enabled": settings.enabled,
        "input": len(records),
        "threshold": settings.threshold,
        "include_input": settings.include_input,
        "eval_questions": len(eval_set),
        "eval_set_digest": eval_set_digest(eval_set),
        "dropped": 0,
        "classes": {},
    }
    if not settings.enabled or records.empty or eval_set.empty:
        return records, dropped_rows(records, [False] * len(records), ""), report
    keys = comparison_keys(
        records["instruction"], records["input"] if settings.include_input else None
    )
    questions = eval_set["question"].tolist()
    found = find_reference_matches(
        keys,
        comparison_keys(questions),
        threshold=settings.threshold,
        minhash=matching.minhash,
        workers=matching.workers,
        progress="decontamination signatures",
        engine=engine,
    )
    classes = eval_set["class"].tolist()
    for position in np.flatnonzero(~found.keep).tolist():
        question = int(found.duplicate_of[position]) - len(records)
        entry = report["classes"].setdefault(
            classes[question], {"dropped": 0, "examples": []}
        )
        entry["dropped"] += 1
        if len(entry["examples"]) < examples:
            entry["examples"].append(
                {
                    "instruction": str(records["instruction"].iat[position])[
                        :EXAMPLE_CHARS
                    ],
                    "input": str(records["input"].iat[position])[:EXAMPLE_CHARS],
                    "eval_question": questions[question][:EXAMPLE_CHARS],
                    "rouge_l": round(float(found.score[position]), 4),
                }
            )
    report["dropped"] = int((~found.keep).sum())
    report["classes"] = dict(sorted(report["classes"].items()))
    dropped = dropped_rows(
        records,
        ~found.keep,
        "decontamination",
        partner_texts(records, found.duplicate_of[~found.keep], questions),
        found.score[~found.keep].round(4),
    )
    return select_rows(records, found.keep), dropped, report
