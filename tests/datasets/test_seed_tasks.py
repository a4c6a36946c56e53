"""The seed-task loader: BELLE's own format loads unchanged; bad records are named."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from belle_kedro.common.errors import FormatError
from belle_kedro.datasets.instructions import load_instruction_file
from belle_kedro.datasets.seed_tasks import (
    SEED_TASK_COLUMNS,
    SeedTasksDataset,
    load_seed_tasks,
)

# Shaped like BELLE's published file (no `category`), written here in our own words.
BELLE_SHAPED_LINES = [
    {
        "id": "seed_task_0",
        "name": "packing_list",
        "instruction": "为三天的海边旅行列一份行李清单。",
        "instances": [{"input": "", "output": "泳衣、防晒霜、遮阳帽、拖鞋、充电宝。"}],
        "is_classification": False,
    },
    {
        "id": "seed_task_1",
        "name": "tone_of_sentence",
        "instruction": "判断这句话的语气是陈述、疑问还是感叹。",
        "instances": [
            {"input": "今天的晚霞真美啊！", "output": "感叹"},
            {"input": "你吃过饭了吗？", "output": "疑问"},
        ],
        "is_classification": True,
    },
]

VALID_TASK = {
    "id": "seed_task_0",
    "name": "ok",
    "instruction": "把这句话改得更礼貌。",
    "instances": [{"input": "把门关上。", "output": "麻烦您把门关上，谢谢。"}],
    "is_classification": False,
}


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _json_line(record: object) -> str:
    return json.dumps(record, ensure_ascii=False)


def test_belle_shaped_file_loads_unchanged(tmp_path: Path) -> None:
    lines = [_json_line(BELLE_SHAPED_LINES[0]), "", _json_line(BELLE_SHAPED_LINES[1])]
    path = _write_lines(tmp_path / "zh_seed_tasks.json", lines)

    tasks = load_seed_tasks(path)

    assert list(tasks.columns) == SEED_TASK_COLUMNS
    assert tasks["id"].tolist() == ["seed_task_0", "seed_task_1"]
    assert tasks["category"].isna().all()
    assert tasks["is_classification"].tolist() == [False, True]
    assert tasks.loc[1, "instances"] == BELLE_SHAPED_LINES[1]["instances"]
    instances = tasks.loc[0, "instances"]
    assert isinstance(instances, list) and instances[0]["input"] == ""


def test_extra_keys_are_ignored_and_category_is_kept(tmp_path: Path) -> None:
    record = {
        **VALID_TASK,
        "category": "rewrite",
        "annotator": "someone",
        "notes": [1, 2],
    }
    path = _write_lines(tmp_path / "seeds.json", [_json_line(record)])

    tasks = load_seed_tasks(path)

    assert list(tasks.columns) == SEED_TASK_COLUMNS
    assert tasks.loc[0, "category"] == "rewrite"


def test_seed_tasks_read_as_instructions_give_one_row_per_instance(
    tmp_path: Path,
) -> None:
    # The split's mix-in reads a seed file this way (catalog entry mix_in_instructions).
    path = _write_lines(
        tmp_path / "seeds.json", [_json_line(r) for r in BELLE_SHAPED_LINES]
    )

    records = load_instruction_file(path)

    assert list(records.columns)[:3] == ["instruction", "input", "output"]
    assert len(records) == 3
    assert (records["source"] == "seeds").all()
    assert records["input"].tolist() == ["", "今天的晚霞真美啊！", "你吃过饭了吗？"]
    assert records.loc[2, "instruction"] == BELLE_SHAPED_LINES[1]["instruction"]


def _with(**changes: object) -> str:
    return _json_line({**VALID_TASK, **changes})


def _without(key: str, **changes: object) -> str:
    return _json_line({k: v for k, v in {**VALID_TASK, **changes}.items() if k != key})


MALFORMED_LINES = {
    "invalid_json": ('{"id": "seed_task_1", "instruction": "缺了右括号"', None),
    "not_an_object": ('["seed_task_1", "指令"]', None),
    "missing_instruction": (_without("instruction", id="t1"), "instruction"),
    "empty_instruction": (_with(id="t1", instruction="   "), "instruction"),
    "non_string_instruction": (_with(id="t1", instruction=42), "instruction"),
    "missing_id": (_without("id"), "id"),
    "missing_instances": (_without("instances", id="t1"), "instances"),
    "instances_not_a_list": (
        _with(id="t1", instances={"input": "", "output": "x"}),
        "instances",
    ),
    "instances_empty": (_with(id="t1", instances=[]), "instances"),
    "instance_not_an_object": (
        _with(id="t1", instances=["只有一段文字"]),
        "instances[0]",
    ),
    "instance_missing_output": (
        _with(id="t1", instances=[{"input": "a", "output": "b"}, {"input": "c"}]),
        "instances[1].output",
    ),
    "instance_missing_input": (
        _with(id="t1", instances=[{"output": "b"}]),
        "instances[0].input",
    ),
    "instance_non_string_output": (
        _with(id="t1", instances=[{"input": "", "output": 3.5}]),
        "instances[0].output",
    ),
    "is_classification_not_bool": (
        _with(id="t1", is_classification="yes"),
        "is_classification",
    ),
    "duplicate_id": (_with(instruction="另一条不同的指令。"), "id"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_LINES))
def test_malformed_record_names_file_line_and_field(tmp_path: Path, case: str) -> None:
    bad_line, field = MALFORMED_LINES[case]
    # Line 1 valid, line 2 blank, line 3 bad: the blank line must still count.
    path = _write_lines(
        tmp_path / "bad_seeds.json", [_json_line(VALID_TASK), "", bad_line]
    )

    with pytest.raises(FormatError) as caught:
        load_seed_tasks(path)

    error = caught.value
    assert error.line == 3
    assert error.field == field
    message = str(error)
    assert str(path) in message
    assert "line 3" in message
    if field is not None:
        assert f"'{field}'" in message
    # A clear message, with no json/pandas traceback printed behind it.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_the_missing_instances_case_differs_from_a_valid_record_by_the_key_only(
    tmp_path: Path,
) -> None:
    # With the key the same record loads; without it the loader names the key.
    valid = _write_lines(tmp_path / "ok.json", [_with(id="t1")])
    assert len(load_seed_tasks(valid)) == 1
    bad = _write_lines(tmp_path / "bad.json", [MALFORMED_LINES["missing_instances"][0]])
    with pytest.raises(FormatError) as caught:
        load_seed_tasks(bad)
    assert caught.value.field == "instances"


@pytest.mark.parametrize(
    ("content", "problem"),
    [("", "holds no seed tasks"), ("\n  \n\n", "holds no seed tasks")],
)
def test_empty_file_is_rejected(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "empty.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(FormatError, match=problem) as caught:
        load_seed_tasks(path)

    assert str(path) in str(caught.value)


def test_non_utf8_file_is_rejected_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "gbk.json"
    path.write_bytes(_json_line(VALID_TASK).encode("gbk"))

    with pytest.raises(FormatError, match="not UTF-8") as caught:
        load_seed_tasks(path)

    assert str(path) in str(caught.value)


def test_non_utf8_bytes_are_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    good = _json_line(VALID_TASK).encode("utf-8")
    path.write_bytes(good + b"\n" + good.replace(b"{", b"{\xff", 1) + b"\n")

    with pytest.raises(FormatError, match="not UTF-8") as caught:
        load_seed_tasks(path)

    assert caught.value.line == 2
    assert f"{path}, line 2:" in str(caught.value)
    assert "column 2" in str(caught.value)


def test_dataset_loads_through_a_catalog_and_refuses_to_save(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "seeds.json", [_json_line(r) for r in BELLE_SHAPED_LINES]
    )
    catalog = DataCatalog.from_config(
        {
            "seed_tasks": {
                "type": "belle_kedro.datasets.seed_tasks.SeedTasksDataset",
                "filepath": str(path),
            }
        }
    )

    tasks = catalog.load("seed_tasks")

    assert tasks["id"].tolist() == ["seed_task_0", "seed_task_1"]
    assert catalog.exists("seed_tasks")
    with pytest.raises(DatasetError, match="read-only"):
        catalog.save("seed_tasks", pd.DataFrame({"id": ["x"]}))
    assert path.read_text(encoding="utf-8").count("\n") == 2


def test_dataset_load_error_keeps_file_line_and_field(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "seeds.json", [_with(instances=[])])
    dataset = SeedTasksDataset(filepath=str(path))

    with pytest.raises(DatasetError) as caught:
        dataset.load()

    assert f"{path}, line 1: field 'instances'" in str(caught.value)


def test_dataset_reports_missing_file(tmp_path: Path) -> None:
    dataset = SeedTasksDataset(filepath=str(tmp_path / "absent.json"))

    assert not dataset.exists()
    assert "absent.json" in str(dataset)
