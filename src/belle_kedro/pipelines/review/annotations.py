"""Reviewers' annotations, read back from a Label Studio export and resolved per record.

An export is Label Studio's JSON format: a list of tasks, each with ``data`` (ours,
carrying ``record_id``) and ``annotations`` (each with ``result``, the form's controls,
``completed_by`` and ``updated_at``). Per record the annotation updated last wins, so
a reviewer who edits an annotation later changes the outcome; cancelled (skipped)
annotations count as none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from belle_kedro.pipelines.review.tasks import DECISION, DECISIONS, EDIT_FIELDS, REASON

REQUIRED_FIELDS = ("instruction", "output")  # input may rightly be empty


class ExportError(ValueError):
    """An export or annotation the review cannot use; names the task and the field."""


@dataclass(frozen=True)
class Decision:
    """One reviewer's decision on one record."""

    record_id: str
    decision: str
    reason: str
    edits: Mapping[str, str] = field(default_factory=dict)
    annotator: str = ""
    updated_at: str = ""
    annotation_id: int = 0


def _controls(result: Any, where: str) -> dict[str, Any]:
    """``from_name -> value`` of one annotation's result list."""
    if not isinstance(result, list):
        raise ExportError(f"{where}.result must be a list, got {type(result).__name__}")
    controls = {}
    for position, item in enumerate(result):
        if not isinstance(item, Mapping) or not isinstance(item.get("value"), Mapping):
            raise ExportError(
                f"{where}.result[{position}] must be a mapping with from_name and value"
            )
        controls[str(item.get("from_name"))] = item["value"]
    return controls


def _first(value: Mapping[str, Any] | None, key: str) -> str | None:
    items = (value or {}).get(key)
    return str(items[0]) if isinstance(items, list) and items else None


def _annotator(annotation: Mapping[str, Any]) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        return str(who.get("email") or who.get("id") or "")
    return "" if who is None else str(who)


def _decision(
    record_id: str, annotation: Mapping[str, Any], reasons: Sequence[str], where: str
) -> Decision:
    controls = _controls(annotation.get("result"), where)
    decision = _first(controls.get(DECISION), "choices")
    if decision not in DECISIONS:
        raise ExportError(
            f"{where}: the {DECISION!r} choice must be one of {list(DECISIONS)}, "
            f"got {decision!r}"
        )
    reason = _first(controls.get(REASON), "choices") or ""
    if decision == "reject" and reason not in reasons:
        raise ExportError(
            f"{where}: a reject needs a reason from {list(reasons)}, got {reason!r}"
        )
    edits = {}
    if decision == "edit":
        for name, control in EDIT_FIELDS.items():
            text = (controls.get(control) or {}).get("text")
            if isinstance(text, list) and text:
                edits[name] = "\n".join(str(part) for part in text).strip()
        if not edits:
            raise ExportError(f"{where}: an edit must correct at least one field")
        for name in REQUIRED_FIELDS:
            if name in edits and not edits[name]:
                raise ExportError(
                    f"{where}: the edit empties the required field {name!r}"
                )
    return Decision(
        record_id=record_id,
        decision=decision,
        reason=reason if decision == "reject" else "",
        edits=edits,
        annotator=_annotator(annotation),
        updated_at=str(
            annotation.get("updated_at") or annotation.get("created_at") or ""
        ),
        annotation_id=int(annotation.get("id") or 0),
    )


def read_export(export: Any, reasons: Sequence[str], source: str) -> list[Decision]:
    """Every submitted decision in a Label Studio JSON export (``source`` names it)."""
    if not isinstance(export, list):
        raise ExportError(
            f"{source}: a Label Studio JSON export is a list of tasks, got "
            f"{type(export).__name__}"
        )
    decisions = []
    for position, task in enumerate(export):
        where = f"{source}: task [{position}]"
        if not isinstance(task, Mapping) or not isinstance(task.get("data"), Mapping):
            raise ExportError(
                f"{where} has no 'data' mapping (not a Label Studio task)"
            )
        record_id = task["data"].get("record_id")
        if not isinstance(record_id, str):
            raise ExportError(
                f"{where}: data.record_id is missing (not one of our tasks)"
            )
        where = f"{source}: task {task.get('id', position)} (record {record_id})"
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list):
            raise ExportError(f"{where}: annotations must be a list")
        for number, annotation in enumerate(annotations):
            if not isinstance(annotation, Mapping):
                raise ExportError(f"{where}: annotation [{number}] is not a mapping")
            if annotation.get("was_cancelled"):
                continue
            decisions.append(
                _decision(
                    record_id,
                    annotation,
                    reasons,
                    f"{where}, annotation {annotation.get('id', number)}",
                )
            )
    return decisions


@dataclass(frozen=True)
class Resolved:
    """Each record's final decision and the records whose reviewers disagreed."""

    final: dict[str, Decision]
    conflicts: dict[str, list[Decision]]


def resolve(decisions: Sequence[Decision], sample_ids: set[str]) -> Resolved:
    """The last-updated decision per record; an unknown record is an error."""
    unknown = sorted({d.record_id for d in decisions} - sample_ids)
    if unknown:
        raise ExportError(
            f"annotations for {len(unknown)} record(s) not in the review sample "
            f"(first: {unknown[0]}); was the sample re-drawn with other settings "
            "after the tasks were pushed?"
        )
    by_record: dict[str, list[Decision]] = {}
    for decision in decisions:
        by_record.setdefault(decision.record_id, []).append(decision)
    final, conflicts = {}, {}
    for record_id, group in sorted(by_record.items()):
        ordered = sorted(group, key=lambda d: (d.updated_at, d.annotation_id))
        final[record_id] = ordered[-1]
        if len({d.decision for d in group}) > 1:
            conflicts[record_id] = ordered
    return Resolved(final=final, conflicts=conflicts)
