"""BELLE's seed-task file: JSON Lines (despite the ``.json`` name), one task a line.

Each line is ``{"id", "name", "instruction", "instances": [{"input", "output"}],
"is_classification"}``; our own file adds ``category``. BELLE's published file has no
``category`` and loads unchanged (category is then ``None``); unknown keys are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from belle_kedro.common.errors import FormatError
from belle_kedro.datasets.reading import ReadOnlyFileDataset, json_objects, text_field

SEED_TASK_COLUMNS = [
    "id",
    "name",
    "instruction",
    "instances",
    "is_classification",
    "category",
]


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
        # Empty strings are legal: an empty input is BELLE's "no input", and an
        # empty output is left for the clean pipeline to judge, not the loader.
        instances.append(
            {
                key: text_field(instance, key, path, line, label=f"{field}.{key}")
                for key in ("input", "output")
            }
        )
    return instances


def _parse_record(record: dict[str, Any], path: Path, line: int) -> dict[str, Any]:
    if "id" not in record:
        raise FormatError(path, line, "id", "is missing")
    task_id = record["id"]
    if (
        not isinstance(task_id, str | int)
        or isinstance(task_id, bool)
        or not str(task_id).strip()
    ):
        raise FormatError(path, line, "id", "must be a non-empty string or integer")
    instruction = text_field(record, "instruction", path, line, allow_blank=False)
    name = text_field(record, "name", path, line, required=False, null_is_absent=True)
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
    category = None
    if record.get("category") is not None:
        category = text_field(record, "category", path, line, allow_blank=False).strip()
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
    rows: list[dict[str, Any]] = []
    first_line_of_id: dict[str, int] = {}
    for line_number, record in json_objects(path):
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


class SeedTasksDataset(ReadOnlyFileDataset):
    """Seed tasks as a DataFrame (see :func:`load_seed_tasks`).

    Example catalog entry::

        seed_tasks:
          type: belle_kedro.datasets.seed_tasks.SeedTasksDataset
          filepath: data/01_raw/zh_seed_tasks.json
    """

    def load(self) -> pd.DataFrame:
        """Parse the file; a bad record raises ``FormatError`` naming file, line and field."""
        return load_seed_tasks(self._filepath)
