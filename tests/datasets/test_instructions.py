"""Instruction files: every accepted shape, provenance, and errors that name file/line/field."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from kedro.io.core import DatasetError

from belle_kedro.common.errors import FormatError
from belle_kedro.datasets.instructions import (
    InstructionFileDataset,
    load_instruction_file,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_json_array_keeps_provenance_and_names_source(tmp_path):
    path = write(
        tmp_path / "alpaca_like.json",
        json.dumps(
            [
                {
                    "instruction": "写一首诗",
                    "input": "",
                    "output": "春风",
                    "score": 5,
                    "meta": {"a": 1},
                },
                {"instruction": "翻译", "input": None, "output": "hi", "score": "high"},
            ],
            ensure_ascii=False,
            indent=2,
        ),
    )
    records = load_instruction_file(path)
    assert records[["instruction", "input", "output"]].values.tolist() == [
        ["写一首诗", "", "春风"],
        ["翻译", "", "hi"],
    ]
    assert records["source"].tolist() == ["alpaca_like", "alpaca_like"]
    # Mixed or nested provenance becomes JSON text, so Parquet can store it.
    assert records["score"].tolist() == ["5", "high"]
    assert records["meta"].iloc[0] == '{"a": 1}' and pd.isna(records["meta"].iloc[1])


def test_json_lines_hub_copy_and_seed_task_shapes(tmp_path):
    lines = [
        {"instruction": "介绍熊猫", "output": "熊猫是……", "category": "open qa"},
        {"input": "把下面的话改成敬语\n你来一下", "target": "请您过来一下"},
        {
            "id": "seed_task_0",
            "name": "x",
            "instruction": "列举水果",
            "instances": [
                {"input": "", "output": "苹果"},
                {"input": "红色", "output": "草莓"},
            ],
            "is_classification": False,
        },
    ]
    path = write(
        tmp_path / "mixed.jsonl",
        "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n\n",
    )
    records = load_instruction_file(path)
    assert records[["instruction", "input", "output"]].values.tolist() == [
        ["介绍熊猫", "", "熊猫是……"],
        ["把下面的话改成敬语\n你来一下", "", "请您过来一下"],
        ["列举水果", "", "苹果"],
        ["列举水果", "红色", "草莓"],
    ]
    assert records["category"].tolist()[0] == "open qa"


def test_bad_field_in_json_array_names_its_line(tmp_path):
    path = write(
        tmp_path / "bad.json",
        '[\n  {"instruction": "a", "input": "", "output": "b"},\n  {"instruction": 7, "input": "", "output": "b"}\n]\n',
    )
    with pytest.raises(FormatError) as caught:
        load_instruction_file(path)
    assert (caught.value.line, caught.value.field) == (3, "instruction")
    assert "bad.json, line 3" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n', 2, "output"),
        (
            '{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": \n',
            2,
            None,
        ),
        (
            '{"instruction": "a", "instances": [{"input": "", "output": 3}]}\n',
            1,
            "instances[0].output",
        ),
        (
            '[{"instruction": "a", "output": "b"},\n {"instruction": "a" "output": "b"}]',
            2,
            None,
        ),
        ('["just a string"]', 1, None),
    ],
)
def test_bad_records_raise_format_error(tmp_path, text, line, field):
    path = write(tmp_path / "bad.jsonl", text)
    with pytest.raises(FormatError) as caught:
        load_instruction_file(path)
    assert (caught.value.path, caught.value.line, caught.value.field) == (
        str(path),
        line,
        field,
    )


def test_missing_empty_and_non_utf8_files(tmp_path):
    with pytest.raises(FormatError, match="file not found"):
        load_instruction_file(tmp_path / "absent.json")
    with pytest.raises(FormatError, match="no instruction records"):
        load_instruction_file(write(tmp_path / "empty.json", "[]"))
    (tmp_path / "latin1.json").write_bytes(
        '[{"instruction": "caf\xe9"}]'.encode("latin-1")
    )
    with pytest.raises(FormatError, match="not UTF-8"):
        load_instruction_file(tmp_path / "latin1.json")


def test_dataset_concatenates_files_in_order_and_is_read_only(tmp_path):
    first = write(
        tmp_path / "one.json",
        json.dumps([{"instruction": "一", "output": "1"}], ensure_ascii=False),
    )
    second = write(
        tmp_path / "two.jsonl",
        json.dumps(
            {"instruction": "二", "output": "2", "turns": 1}, ensure_ascii=False
        ),
    )
    dataset = InstructionFileDataset(filepath=[str(first), str(second)])
    records = dataset.load()
    assert records["instruction"].tolist() == ["一", "二"]
    assert records["source"].tolist() == ["one", "two"]
    assert dataset.exists()
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save(records)
    assert not InstructionFileDataset(filepath=str(tmp_path / "nope.json")).exists()
