"""Our shipped eval set and judge prompts: coverage, answers, and BELLE's format."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from belle_kedro.datasets.eval_set import load_eval_set, normalize_class
from belle_kedro.datasets.judge_prompts import (
    SCORE_MARKER,
    load_judge_prompts,
    prompt_for_class,
)
from tests.support.project import REPO_ROOT

RAW = REPO_ROOT / "data" / "01_raw"
EVAL_SET = RAW / "eval_set.json"
EVAL_PROMPT = RAW / "eval_prompt.json"

BELLE_CLASSES = {
    "open qa",
    "brainstorming",
    "rewrite",
    "generation",
    "math",
    "classification",
    "closed qa",
    "summarization",
    "code",
    "extract",
}
OUR_CLASSES = BELLE_CLASSES | {"translation"}
OPEN_ENDED = {"generation", "brainstorming"}
ALWAYS_ANSWERED = OUR_CLASSES - OPEN_ENDED - {"rewrite"}
MIN_PER_CLASS = 20
MIN_QUESTIONS = 240

# Our math std_answer ends with the line "答案：<number>"; the judge-free metric reads
# the last number of a text, so that last number must be the final answer.
FINAL_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@pytest.fixture(scope="module")
def eval_set() -> pd.DataFrame:
    return load_eval_set(EVAL_SET)


@pytest.fixture(scope="module")
def prompts() -> dict[str, str]:
    return load_judge_prompts(EVAL_PROMPT)


def test_size_and_class_coverage(eval_set: pd.DataFrame):
    counts = eval_set["class"].value_counts()

    assert len(eval_set) >= MIN_QUESTIONS
    assert set(counts.index) == OUR_CLASSES
    assert counts.min() >= MIN_PER_CLASS, counts.to_dict()


def test_raw_file_uses_lower_case_and_ascii_spaces():
    # BELLE's own file mixes U+00A0 in; ours is already in normal form.
    for line in EVAL_SET.read_text(encoding="utf-8").splitlines():
        raw_class = json.loads(line)["class"]
        assert raw_class == normalize_class(raw_class)
        assert raw_class.isascii()


def test_questions_are_unique_and_chinese(eval_set: pd.DataFrame):
    assert eval_set["question"].is_unique
    for question in eval_set["question"]:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in question), question


def test_std_answers_where_the_class_has_one(eval_set: pd.DataFrame):
    has_answer = eval_set["std_answer"].str.strip() != ""
    by_class = has_answer.groupby(eval_set["class"]).agg(["sum", "size"])
    answered, asked = by_class["sum"], by_class["size"]

    for cls in ALWAYS_ANSWERED:
        assert answered[cls] == asked[cls], cls
    for cls in OPEN_ENDED:
        assert answered[cls] == 0, cls
    # Rewrites with a single right answer (typo fixes, script conversion) carry one.
    assert 0 < answered["rewrite"] < asked["rewrite"]


def test_math_answers_end_with_a_parsable_final_number(eval_set: pd.DataFrame):
    math = eval_set[eval_set["class"] == "math"]
    for std_answer in math["std_answer"]:
        final_line = std_answer.strip().splitlines()[-1]
        assert re.fullmatch(r"答案：-?\d+(?:\.\d+)?", final_line), final_line
        numbers = FINAL_NUMBER.findall(std_answer)
        assert numbers and float(numbers[-1]) == float(
            final_line.removeprefix("答案：")
        )


def test_every_class_has_a_prompt_that_asks_for_the_score(
    eval_set: pd.DataFrame, prompts: dict[str, str]
):
    assert set(prompts) == OUR_CLASSES
    for cls in eval_set["class"].unique():
        prompt = prompt_for_class(prompts, cls)
        assert f"{SCORE_MARKER}: x" in prompt, cls
        assert "0到1" in prompt, cls


def test_prompts_for_answered_classes_point_at_the_standard_answer(
    prompts: dict[str, str],
):
    for cls in ALWAYS_ANSWERED | {"rewrite"}:
        assert "标准答案" in prompts[cls], cls
    for cls in OPEN_ENDED:
        assert "没有唯一的标准答案" in prompts[cls], cls


@pytest.mark.shared
def test_no_question_is_copied_from_the_shared_instruction_data(
    eval_set: pd.DataFrame, shared_data: Path
):
    def key(text: str) -> str:
        return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()

    third_party: set[str] = set()
    for path in sorted(shared_data.glob("*.json")):
        for record in json.loads(path.read_text(encoding="utf-8")):
            third_party.add(key(record["instruction"]))
            third_party.add(key(record["instruction"] + record.get("input", "")))

    copied = [q for q in eval_set["question"] if key(q) in third_party]
    assert not copied
