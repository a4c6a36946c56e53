"""BELLE's seed-task file: JSON Lines (despite the ``.json`` name), one task a line.

Each line is ``{"id", "name", "instruction", "instances": [{"input", "output"}],
"is_classification"}``; our own file adds ``category``. BELLE's published file has no
``category`` and loads unchanged (category is then ``None``); unknown keys are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from belle_kedro.formats.errors import FormatError
from belle_kedro.formats.reading import json_lines, read_text

SEED_TASK_COLUMNS = [
    "id",
    "name",
    "instruction",
    "instances",
    "is_classification",
    "category",
]
SEED_SOURCE = "seed"


def _require_string(
    value: Any, path: Path, line: int, field: str, *, allow_empty: bool
) -> str:
    if not isinstance(value, str):
        raise FormatError(
            path, line, field, f"must be a string, got {type(value).__name__}"
        )
    if not allow_empty and not value.strip():
        raise FormatError(path, line, field, "must not be empty")
    return value


def parse_instances(raw: Any, path: Path, line: int) -> list[dict[str, str]]:
    """A seed task's ``instances``: a non-empty list of ``{input, output}`` strings."""
    if not isinstance(raw, list) or not raw:
        raise FormatError(
            path,
            line,
            "instances",
            "must be a non-empty list of {input, output} objects",
        )
    instances = []
    for index, instance in enumerate(raw):
        field = f"instances[{index}]"
        if not isinstance(instance, dict):
            raise FormatError(
                path, line, field, f"must be an object, got {type(instance).__name__}"
            )
        parsed = {}
        for key in ("input", "output"):
            if key not in instance:
                raise FormatError(path, line, f"{field}.{key}", "is missing")
            # Empty strings are legal: an empty input is BELLE's "no input", and an
            # empty output is left for the clean pipeline to judge, not the loader.
            parsed[key] = _require_string(
                instance[key], path, line, f"{field}.{key}", allow_empty=True
            )
        instances.append(parsed)
    return instances


def _parse_record(record: Any, path: Path, line: int) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise FormatError(
            path, line, None, f"must be a JSON object, got {type(record).__name__}"
        )
    if "id" not in record:
        raise FormatError(path, line, "id", "is missing")
    task_id = record["id"]
    if (
        not isinstance(task_id, str | int)
        or isinstance(task_id, bool)
        or not str(task_id).strip()
    ):
        raise FormatError(path, line, "id", "must be a non-empty string or integer")
    if "instruction" not in record:
        raise FormatError(path, line, "instruction", "is missing")
    instruction = _require_string(
        record["instruction"], path, line, "instruction", allow_empty=False
    )
    name = record.get("name", "")
    if name is None:
        name = ""
    name = _require_string(name, path, line, "name", allow_empty=True)
    if "instances" not in record:
        raise FormatError(path, line, "instances", "is missing")
    instances = parse_instances(record["instances"], path, line)
    is_classification = record.get("is_classification", False)
    if not isinstance(is_classification, bool):
        raise FormatError(
            path,
            line,
            "is_classification",
            f"must be true or false, got {is_classification!r}",
        )
    category = record.get("category")
    if category is not None:
        category = _require_string(
            category, path, line, "category", allow_empty=False
        ).strip()
    return {
        "id": str(task_id),
        "name": name,
        "instruction": instruction,
        "instances": instances,
        "is_classification": is_classification,
        "category": category,
    }


def load_seed_tasks(path: str | Path) -> pd.DataFrame:
    """Read a seed-task JSON Lines file into one row per task.

    Columns: ``id, name, instruction, instances, is_classification, category``.
    Raises ``FormatError`` naming the file, the 1-based line and the field on bad input.
    """
    path = Path(path)
    text = read_text(path)

    rows: list[dict[str, Any]] = []
    first_line_of_id: dict[str, int] = {}
    for line_number, record in json_lines(text, path):
        row = _parse_record(record, path, line_number)
        if row["id"] in first_line_of_id:
            raise FormatError(
                path,
                line_number,
                "id",
                f"duplicate id {row['id']!r} (first seen on line {first_line_of_id[row['id']]})",
            )
        first_line_of_id[row["id"]] = line_number
        rows.append(row)

    if not rows:
        raise FormatError(path, None, None, "holds no seed tasks")
    return pd.DataFrame(rows, columns=SEED_TASK_COLUMNS)


def seed_tasks_as_instructions(seed_tasks: pd.DataFrame) -> pd.DataFrame:
    """Flatten seed tasks to instruction records, one row per instance.

    Columns: ``instruction, input, output, category, source`` (source is ``"seed"``).
    """
    records = [
        {
            "instruction": task.instruction,
            "input": instance["input"],
            "output": instance["output"],
            "category": task.category,
            "source": SEED_SOURCE,
        }
        for task in seed_tasks.itertuples(index=False)
        for instance in task.instances
    ]
    return pd.DataFrame(
        records, columns=["instruction", "input", "output", "category", "source"]
    )
