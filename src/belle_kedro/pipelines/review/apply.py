"""Reviewers' decisions applied to the clean records: ``reviewed_instructions``.

Applying is a pure function of ``clean_instructions``, the stored review sample and
the annotations, so running it again gives the same records (nothing is applied
twice), and an annotation edited in Label Studio since the last run simply wins.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from belle_kedro.pipelines.review.annotations import Resolved
from belle_kedro.pipelines.review.selection import record_ids

REVIEW_COLUMNS = ("review_decision", "review_reason", "reviewed_by")


def _with_decisions(frame: pd.DataFrame, resolved: Resolved) -> pd.DataFrame:
    """``frame`` (with ``record_id``) plus the review columns and the edits applied."""
    frame = frame.copy()
    decided = [resolved.final.get(rid) for rid in frame["record_id"]]
    frame["review_decision"] = [d.decision if d else "unreviewed" for d in decided]
    frame["review_reason"] = [d.reason if d else "" for d in decided]
    frame["reviewed_by"] = [d.annotator if d else "" for d in decided]
    for label, decision in zip(frame.index, decided, strict=True):
        for name, text in (decision.edits if decision else {}).items():
            frame.at[label, name] = text
    return frame


def apply_decisions(
    clean: pd.DataFrame,
    sample: pd.DataFrame,
    resolved: Resolved,
    unreviewed: str,
    restore_false_drops: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(reviewed_instructions, reviewed sample)``.

    Kept records: rejected ones go, edits apply, unreviewed ones follow ``unreviewed``.
    Dropped records that reviewers accepted come back when ``restore_false_drops``.
    """
    records = _with_decisions(clean.assign(record_id=record_ids(clean)), resolved)
    keep = records["review_decision"].isin(["accept", "edit"])
    if unreviewed == "keep":
        keep |= records["review_decision"] == "unreviewed"
    reviewed = _with_decisions(sample, resolved)
    parts = [records[keep]]
    if restore_false_drops:
        restored = reviewed[
            (reviewed["stratum"] == "dropped")
            & reviewed["review_decision"].isin(["accept", "edit"])
        ]
        parts.append(restored[list(records.columns.intersection(restored.columns))])
    result = pd.concat(parts, ignore_index=True).drop(columns=["record_id"])
    return result, reviewed[reviewed["review_decision"] != "unreviewed"]


def decision_counts(reviewed: pd.DataFrame) -> dict[str, Any]:
    """How many of each decision per stratum, for the report."""
    return {
        str(stratum): group["review_decision"].value_counts().sort_index().to_dict()
        for stratum, group in reviewed.groupby("stratum", sort=True)
    }
