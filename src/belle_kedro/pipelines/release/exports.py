"""The released records in the files trainers read, and LLaMA-Factory's dataset_info.json.

Per variant (and the held-out set): BELLE's JSON lines (``instruction``, ``input``,
``output``), Alpaca JSON (one array), ShareGPT JSON and OpenAI/TRL ``messages`` JSON
lines (conversions in :mod:`belle_kedro.datasets.chat_formats`). ``dataset_info.json``
names every file with the ``formatting``, ``columns`` and ``tags`` LLaMA-Factory's
``data/README.md`` documents, paths relative to the folder it sits in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from belle_kedro.common.records import RECORD_COLUMNS
from belle_kedro.datasets.chat_formats import MESSAGES, as_messages, as_sharegpt

FORMATS = ("belle", "alpaca", "sharegpt", "messages")
_SUFFIX = {"belle": "jsonl", "alpaca": "json", "sharegpt": "json", "messages": "jsonl"}


def export_path(fmt: str, name: str) -> str:
    """Where the ``fmt`` export of variant (or ``holdout``) ``name`` sits in the folder."""
    return f"exports/{fmt}/{name}.{_SUFFIX[fmt]}"


def _triples(records: pd.DataFrame) -> Iterator[tuple[str, str, str]]:
    yield from records.loc[:, list(RECORD_COLUMNS)].itertuples(index=False, name=None)


def _json_lines(rows: Iterator[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _json_array(rows: Iterator[dict[str, Any]]) -> str:
    return json.dumps(list(rows), ensure_ascii=False, indent=1) + "\n"


def export_files(
    records: pd.DataFrame, name: str, system: str | None
) -> dict[str, str]:
    """The four exports of one record set, keyed by their path in the folder."""

    def alpaca() -> Iterator[dict[str, Any]]:
        for instruction, input_text, output in _triples(records):
            yield {"instruction": instruction, "input": input_text, "output": output}

    return {
        export_path("belle", name): _json_lines(alpaca()),
        export_path("alpaca", name): _json_array(alpaca()),
        export_path("sharegpt", name): _json_array(
            as_sharegpt(*triple, system) for triple in _triples(records)
        ),
        export_path("messages", name): _json_lines(
            as_messages(*triple, system) for triple in _triples(records)
        ),
    }


def llama_factory_entry(fmt: str, name: str, with_system: bool) -> dict[str, Any]:
    """One ``dataset_info.json`` entry for the ``fmt`` export of ``name``."""
    entry: dict[str, Any] = {"file_name": export_path(fmt, name)}
    if fmt in ("belle", "alpaca"):
        entry["columns"] = {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
        }
    elif fmt == "sharegpt":
        entry["formatting"] = "sharegpt"
        entry["columns"] = {"messages": "conversations"}
        if with_system:
            entry["columns"]["system"] = "system"
    else:
        entry["formatting"] = "sharegpt"
        entry["columns"] = {"messages": "messages"}
        entry["tags"] = {
            "role_tag": MESSAGES["role"],
            "content_tag": MESSAGES["content"],
            "user_tag": MESSAGES["user"],
            "assistant_tag": MESSAGES["assistant"],
            "system_tag": MESSAGES["system"],
        }
    return entry


def dataset_info(
    names: Mapping[str, str], prefix: str, with_system: bool
) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json``: ``<prefix>_<name>_<format>`` per export.

    ``names`` maps each exported record set (variants, ``holdout``) to its split.
    """
    return {
        f"{prefix}_{name}_{fmt}": llama_factory_entry(fmt, name, with_system)
        for name in names
        for fmt in FORMATS
    }
