"""ShareGPT and messages files read back as instruction records (or skipped with a reason)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from belle_kedro.common.config import build
from belle_kedro.common.errors import FormatError
from belle_kedro.common.template import build_prompt
from belle_kedro.datasets.instructions import load_instruction_file
from belle_kedro.pipelines.clean.rules import apply_rules
from belle_kedro.pipelines.clean.settings import RulesSettings
from belle_kedro.pipelines.release.exports import export_files
from tests.pipelines.release.records import instruction_frame
from tests.support.project import base_parameters


def _lines(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("fmt", ["sharegpt", "messages", "belle", "alpaca"])
def test_release_then_read_back_gives_the_same_records(
    tmp_path: Path, fmt: str
) -> None:
    records = instruction_frame(9, "往返")
    files = export_files(records, "small", system="你是一个乐于助人的助手。")
    name = next(path for path in files if path.startswith(f"exports/{fmt}/"))
    path = tmp_path / Path(name).name
    path.write_text(files[name], encoding="utf-8")
    back = load_instruction_file(path)
    prompts = [
        build_prompt(i, x)
        for i, x in zip(records["instruction"], records["input"], strict=True)
    ]
    assert [
        build_prompt(i, x)
        for i, x in zip(back["instruction"], back["input"], strict=True)
    ] == prompts
    assert back["output"].tolist() == records["output"].tolist()
    if fmt in ("belle", "alpaca"):  # the columns themselves survive too
        assert back[["instruction", "input"]].equals(records[["instruction", "input"]])
    else:
        assert set(back["system"]) == {"你是一个乐于助人的助手。"}


def test_multi_turn_conversations_are_counted_with_a_reason(tmp_path: Path) -> None:
    path = _lines(
        tmp_path / "chat.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "你好"},
                    {"role": "assistant", "content": "你好！"},
                ]
            },
            {
                "messages": [
                    {"role": "user", "content": "一"},
                    {"role": "assistant", "content": "二"},
                    {"role": "user", "content": "三"},
                    {"role": "assistant", "content": "四"},
                ]
            },
        ],
    )
    frame = load_instruction_file(path)
    assert frame["skip_reason"].tolist()[1] == "multi_turn"
    rules = build(RulesSettings, base_parameters("clean")["rules"], "clean.rules")
    kept, _, report = apply_rules(frame, rules, examples=1)
    assert report[0]["rule"] == "reader_skipped"
    assert report[0]["dropped"] == 1 and report[0]["reasons"] == {"multi_turn": 1}
    assert "skip_reason" not in kept.columns
    assert report[1]["input"] == 1


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"conversations": "hi"}, "conversations", "must be a list"),
        (
            {"conversations": [{"from": "human"}]},
            "conversations[0].value",
            "is missing",
        ),
        (
            {"conversations": [{"from": "bot", "value": "x"}]},
            "conversations[0].from",
            "unknown role 'bot'",
        ),
        (
            {"messages": [{"role": "user", "content": 3}]},
            "messages[0].content",
            "must be a string",
        ),
    ],
)
def test_a_malformed_conversation_names_file_line_and_field(
    tmp_path: Path, row: dict, field: str, message: str
) -> None:
    good = {
        "conversations": [
            {"from": "human", "value": "问"},
            {"from": "gpt", "value": "答"},
        ]
    }
    path = _lines(tmp_path / "bad.jsonl", [good, row])
    with pytest.raises(FormatError) as caught:
        load_instruction_file(path)
    text = str(caught.value)
    assert (
        "bad.jsonl" in text and "line 2" in text and field in text and message in text
    )


def test_a_non_utf8_sharegpt_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "gbk.json"
    good = json.dumps(
        [
            {
                "conversations": [
                    {"from": "human", "value": "问"},
                    {"from": "gpt", "value": "答"},
                ]
            }
        ],
        ensure_ascii=False,
    )
    path.write_bytes(good.encode() + b"\n" + "中文".encode("gbk"))
    with pytest.raises(FormatError, match=r"gbk.json.*line 2.*not UTF-8"):
        load_instruction_file(path)


def test_pool_leaves_skipped_rows_out() -> None:
    from belle_kedro.pipelines.split.sampling import _normalise_records

    frame = pd.DataFrame(
        {
            "instruction": ["a", ""],
            "input": ["", ""],
            "output": ["b", ""],
            "skip_reason": [None, "multi_turn"],
        }
    )
    assert _normalise_records(frame, "pool")["instruction"].tolist() == ["a"]
