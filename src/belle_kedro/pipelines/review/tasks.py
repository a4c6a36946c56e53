"""Label Studio tasks and the labelling config reviewers see.

Each task's ``data`` holds the record (instruction, input, output), its id and the
automatic signals; its one ``prediction`` pre-fills the form with those signals: the
predicted class, the rules' verdict (accept for kept records, reject for dropped ones;
a reviewer who keeps a reject picks its reason) and a line naming rule, partner and
score.
"""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import quoteattr

import pandas as pd

# The form's control names: apply_review reads annotations back through them.
DECISION, REASON, TASK_CLASS, SIGNALS = "decision", "reason", "task_class", "signals"
EDIT_FIELDS = {
    "instruction": "edit_instruction",
    "input": "edit_input",
    "output": "edit_output",
}
DECISIONS = ("accept", "reject", "edit")
PREDICTION_VERSION = "belle-kedro-rules"


def label_config(reasons: tuple[str, ...], classes: tuple[str, ...]) -> str:
    """The labelling config: the record, the signals, accept / reject + reason / edit."""

    def choices(values: tuple[str, ...]) -> str:
        return "".join(f"<Choice value={quoteattr(value)}/>" for value in values)

    edits = "".join(
        f'<Header value="Corrected {field} (edit only)"/>'
        f'<TextArea name="{control}" toName="{field}" maxSubmissions="1" '
        'editable="true" visibleWhen="choice-selected" '
        f'whenTagName="{DECISION}" whenChoiceValue="edit"/>'
        for field, control in EDIT_FIELDS.items()
    )
    return (
        "<View>"
        '<Header value="Instruction"/><Text name="instruction" value="$instruction"/>'
        '<Header value="Input"/><Text name="input" value="$input"/>'
        '<Header value="Output"/><Text name="output" value="$output"/>'
        '<Header value="Automatic signals"/>'
        f'<TextArea name="{SIGNALS}" toName="instruction" editable="false" rows="2"/>'
        f'<Header value="Task class"/><Choices name="{TASK_CLASS}" '
        f'toName="instruction" choice="single">{choices(classes)}</Choices>'
        f'<Header value="Decision"/><Choices name="{DECISION}" toName="instruction" '
        f'choice="single" required="true">{choices(DECISIONS)}</Choices>'
        f'<Choices name="{REASON}" toName="instruction" choice="single" '
        f'visibleWhen="choice-selected" whenTagName="{DECISION}" '
        f'whenChoiceValue="reject">{choices(reasons)}</Choices>'
        f"{edits}"
        "</View>"
    )


def signals_line(row: pd.Series) -> str:
    """``stratum; rule; partner; score`` in words, for the reviewer."""
    parts = [f"stratum: {row['stratum']}"]
    if row["rule"]:
        parts.append(f"rule: {row['rule']}")
    if row["partner"]:
        parts.append(f"partner: {row['partner']}")
    if not math.isnan(float(row["score"])):
        parts.append(f"ROUGE-L: {float(row['score']):.3f}")
    parts.append(f"predicted class: {row['task_class']}")
    return "; ".join(parts)


def _choice(name: str, to_name: str, value: str) -> dict[str, Any]:
    return {
        "from_name": name,
        "to_name": to_name,
        "type": "choices",
        "value": {"choices": [value]},
    }


def review_tasks(sample: pd.DataFrame) -> list[dict[str, Any]]:
    """One Label Studio task per sampled record, pre-annotated with the signals."""
    tasks = []
    for _, row in sample.iterrows():
        rules_verdict = "reject" if row["stratum"] == "dropped" else "accept"
        result = [
            _choice(TASK_CLASS, "instruction", str(row["task_class"])),
            _choice(DECISION, "instruction", rules_verdict),
            {
                "from_name": SIGNALS,
                "to_name": "instruction",
                "type": "textarea",
                "value": {"text": [signals_line(row)]},
            },
        ]
        tasks.append(
            {
                "data": {
                    "record_id": row["record_id"],
                    "instruction": row["instruction"],
                    "input": row["input"],
                    "output": row["output"],
                    "stratum": row["stratum"],
                    "rule": row["rule"],
                    "partner": row["partner"],
                    "score": None
                    if math.isnan(float(row["score"]))
                    else float(row["score"]),
                    "task_class": row["task_class"],
                },
                "predictions": [
                    {"model_version": PREDICTION_VERSION, "result": result}
                ],
            }
        )
    return tasks
