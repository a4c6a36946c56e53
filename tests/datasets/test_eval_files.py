"""Loaders for BELLE's eval set and judge prompt files, on files shaped like BELLE's."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError

from belle_kedro.common.errors import FormatError
from belle_kedro.datasets.eval_set import EvalSetDataset, load_eval_set, normalize_class
from belle_kedro.datasets.judge_prompts import (
    JudgePromptsDataset,
    MissingClassPromptError,
    load_judge_prompts,
    prompt_for_class,
)

NBSP = "\u00a0"
SCORE_ASK = "最后一行写 得分: x，x 在 0 到 1 之间。"

# Written here, shaped like BELLE's published files: lower case classes in the eval
# set, "open QA"/"closed QA" in the prompts, U+00A0 inside "closed qa" in both, and an
# extra prompt class that no question uses.
BELLE_LIKE_EVAL_SET = [
    {
        "question": "月亮绕地球一圈约需几天？",
        "std_answer": "约27.3天。",
        "class": "open qa",
    },
    {
        "question": "为周末野餐列几样必带物品。",
        "std_answer": "",
        "class": "brainstorming",
    },
    {
        "question": "材料：小河村有三口井。问题：小河村有几口井？",
        "std_answer": "三口。",
        "class": f"closed{NBSP}qa",
    },
    {"question": "12 × 12 等于多少？", "std_answer": "144", "class": "math"},
]
BELLE_LIKE_PROMPTS = [
    {"class": "open QA", "prompt": f"评估知识问答。{SCORE_ASK}"},
    {"class": "brainstorming", "prompt": f"评估头脑风暴。{SCORE_ASK}"},
    {"class": f"closed{NBSP}QA", "prompt": f"评估阅读理解。{SCORE_ASK}"},
    {"class": "Math", "prompt": f"评估数学题。{SCORE_ASK}"},
    {"class": "translation", "prompt": f"评估翻译。{SCORE_ASK}"},
]


def write_jsonl(
    path: Path, lines: Sequence[str | dict], *, newline: str = "\n"
) -> Path:
    """Write one JSON object (or a raw text line) per line, non-ASCII kept as is."""
    text = newline.join(
        line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)
        for line in lines
    )
    path.write_text(text + newline, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("open QA", "open qa"),
        (f"closed{NBSP}QA", "closed qa"),
        (f"closed{NBSP}qa", "closed qa"),
        ("  Closed\u3000Qa\t", "closed qa"),
        ("closed \u200b qa", "closed qa"),
        ("ＯＰＥＮ　ＱＡ", "open qa"),  # full-width letters and ideographic space
        ("Open\n\nQA", "open qa"),
        ("translation", "translation"),
    ],
)
def test_normalize_class_folds_case_and_every_kind_of_space(raw: str, expected: str):
    assert normalize_class(raw) == expected


def test_belle_shaped_files_load_and_match_across_case_and_nbsp(tmp_path: Path):
    eval_path = write_jsonl(tmp_path / "eval_set.json", BELLE_LIKE_EVAL_SET)
    prompt_path = write_jsonl(tmp_path / "eval_prompt.json", BELLE_LIKE_PROMPTS)

    eval_set = load_eval_set(eval_path)
    prompts = load_judge_prompts(prompt_path)

    assert list(eval_set.columns) == ["question", "std_answer", "class"]
    assert eval_set["class"].tolist() == [
        "open qa",
        "brainstorming",
        "closed qa",
        "math",
    ]
    assert eval_set["std_answer"].tolist() == ["约27.3天。", "", "三口。", "144"]
    assert set(prompts) == {
        "open qa",
        "brainstorming",
        "closed qa",
        "math",
        "translation",
    }
    # Every question finds its prompt although the two files spell classes differently.
    matched = {cls: prompt_for_class(prompts, cls) for cls in eval_set["class"]}
    assert matched["closed qa"].startswith("评估阅读理解")
    assert matched["open qa"].startswith("评估知识问答")
    # A caller holding BELLE's raw spelling gets the same prompt.
    assert prompt_for_class(prompts, f"Closed{NBSP}QA") == matched["closed qa"]


def test_bom_crlf_and_blank_lines_are_tolerated(tmp_path: Path):
    path = tmp_path / "eval_set.json"
    body = "\r\n".join(
        ["", json.dumps(BELLE_LIKE_EVAL_SET[0], ensure_ascii=False), "  ", ""]
        + [json.dumps(BELLE_LIKE_EVAL_SET[3], ensure_ascii=False)]
    )
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))

    eval_set = load_eval_set(path)

    assert eval_set["class"].tolist() == ["open qa", "math"]


def test_missing_std_answer_reads_as_empty(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "e.json", [{"question": "写首诗。", "class": "generation"}]
    )

    assert load_eval_set(path)["std_answer"].tolist() == [""]


GOOD_QUESTION = {"question": "问题一", "std_answer": "答案", "class": "open qa"}


@pytest.mark.parametrize(
    ("bad_line", "field", "problem"),
    [
        ('{"question": "缺了右括号", "class": "math"', None, "not valid JSON"),
        ('["question", "class"]', None, "JSON object"),
        ({"std_answer": "孤零零的答案", "class": "math"}, "question", "missing"),
        ({"question": "  ", "std_answer": "", "class": "math"}, "question", "empty"),
        ({"question": 7, "std_answer": "", "class": "math"}, "question", "string"),
        ({"question": "几？", "std_answer": 42, "class": "math"}, "std_answer", "int"),
        (
            {"question": "几？", "std_answer": None, "class": "math"},
            "std_answer",
            "string",
        ),
        ({"question": "几？", "std_answer": "1"}, "class", "missing"),
        ({"question": "几？", "std_answer": "1", "class": ""}, "class", "empty"),
    ],
)
def test_bad_eval_line_names_file_line_and_field(
    tmp_path: Path, bad_line: str | dict, field: str | None, problem: str
):
    path = write_jsonl(
        tmp_path / "eval_set.json", [GOOD_QUESTION, GOOD_QUESTION, bad_line]
    )

    with pytest.raises(FormatError) as caught:
        load_eval_set(path)

    error = caught.value
    assert (error.path, error.line, error.field) == (str(path), 3, field)
    assert problem in error.problem
    assert f"{path}, line 3" in str(error)


GOOD_PROMPT = {"class": "open QA", "prompt": f"评估问答。{SCORE_ASK}"}


@pytest.mark.parametrize(
    ("bad_line", "field", "problem"),
    [
        ("not json at all", None, "not valid JSON"),
        ({"prompt": f"没有类别。{SCORE_ASK}"}, "class", "missing"),
        ({"class": "math"}, "prompt", "missing"),
        ({"class": "math", "prompt": ""}, "prompt", "empty"),
        ({"class": "math", "prompt": "请给出分数，满分十分。"}, "prompt", "得分"),
        # The same class as line 1 once case and the NO-BREAK SPACE are folded.
        (
            {"class": f"OPEN{NBSP}qa", "prompt": f"另一份。{SCORE_ASK}"},
            "class",
            "duplicate",
        ),
    ],
)
def test_bad_prompt_line_names_file_line_and_field(
    tmp_path: Path, bad_line: str | dict, field: str | None, problem: str
):
    other = {"class": "code", "prompt": f"评估代码。{SCORE_ASK}"}
    path = write_jsonl(tmp_path / "eval_prompt.json", [GOOD_PROMPT, other, bad_line])

    with pytest.raises(FormatError) as caught:
        load_judge_prompts(path)

    error = caught.value
    assert (error.path, error.line, error.field) == (str(path), 3, field)
    assert problem in error.problem


def test_duplicate_class_error_points_at_the_first_occurrence(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "p.json", [GOOD_PROMPT, {**GOOD_PROMPT, "class": "Open qa"}]
    )

    with pytest.raises(FormatError, match="first on line 1"):
        load_judge_prompts(path)


@pytest.mark.parametrize("loader", [load_eval_set, load_judge_prompts])
def test_empty_and_missing_files_are_format_errors(tmp_path: Path, loader):
    empty = tmp_path / "empty.json"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(FormatError, match="holds no"):
        loader(empty)
    with pytest.raises(FormatError, match="file not found"):
        loader(tmp_path / "absent.json")


def test_non_utf8_file_is_a_format_error(tmp_path: Path):
    path = tmp_path / "gbk.json"
    path.write_bytes(json.dumps(GOOD_QUESTION, ensure_ascii=False).encode("gbk"))

    with pytest.raises(FormatError, match="not UTF-8"):
        load_eval_set(path)


def test_class_without_prompt_names_the_class_the_file_and_the_known_classes(
    tmp_path: Path,
):
    path = write_jsonl(tmp_path / "eval_prompt.json", BELLE_LIKE_PROMPTS)
    prompts = load_judge_prompts(path)

    with pytest.raises(MissingClassPromptError) as caught:
        prompt_for_class(prompts, "Poetry ")

    error = caught.value
    assert isinstance(error, KeyError)
    assert isinstance(error, FormatError)
    message = str(error)
    assert "'poetry'" in message
    assert str(path) in message
    assert "closed qa, math, open qa, translation" in message
    assert not message.startswith('"')  # not KeyError's quoted repr


def test_prompt_for_class_accepts_a_plain_mapping():
    with pytest.raises(KeyError, match="known classes: math"):
        prompt_for_class({"math": "得分"}, "code")
    assert prompt_for_class({"closed qa": "p 得分"}, f"Closed{NBSP}QA") == "p 得分"


def test_datasets_load_from_catalog_config_and_refuse_to_save(tmp_path: Path):
    eval_path = write_jsonl(tmp_path / "eval_set.json", BELLE_LIKE_EVAL_SET)
    prompt_path = write_jsonl(tmp_path / "eval_prompt.json", BELLE_LIKE_PROMPTS)
    catalog = DataCatalog.from_config(
        {
            "eval_set": {
                "type": "belle_kedro.datasets.eval_set.EvalSetDataset",
                "filepath": str(eval_path),
            },
            "judge_prompts": {
                "type": "belle_kedro.datasets.judge_prompts.JudgePromptsDataset",
                "filepath": str(prompt_path),
            },
        }
    )

    eval_set = catalog.load("eval_set")
    prompts = catalog.load("judge_prompts")

    pd.testing.assert_frame_equal(eval_set, load_eval_set(eval_path))
    assert prompts == load_judge_prompts(prompt_path)
    assert catalog.exists("eval_set")
    with pytest.raises(DatasetError, match="read-only"):
        EvalSetDataset(filepath=str(eval_path)).save(eval_set)
    with pytest.raises(DatasetError, match="read-only"):
        JudgePromptsDataset(filepath=str(prompt_path)).save(prompts)


def test_dataset_surfaces_the_format_error_location(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "eval_set.json", [GOOD_QUESTION, {"question": "无类别"}]
    )

    with pytest.raises(DatasetError, match=r"eval_set\.json, line 2: field 'class'"):
        EvalSetDataset(filepath=str(path)).load()
