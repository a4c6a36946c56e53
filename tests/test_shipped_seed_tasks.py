"""Our shipped seed tasks: schema, count, category spread, input share and diversity."""

from __future__ import annotations

import itertools
import json
import re

import pandas as pd
import pytest

from belle_kedro.common.text import rouge_l_f, similarity_key
from belle_kedro.datasets.seed_tasks import SEED_TASK_COLUMNS, load_seed_tasks
from tests.support.project import REPO_ROOT

SEED_FILE = REPO_ROOT / "data" / "01_raw" / "zh_seed_tasks.json"
CATEGORIES = {
    "brainstorming",
    "open qa",
    "closed qa",
    "rewrite",
    "extract",
    "generation",
    "classification",
    "chat",
    "summarization",
    "translation",
    "math",
    "code",
}
MAX_INSTRUCTION_ROUGE_L = 0.7


@pytest.fixture(scope="module")
def seed_tasks() -> pd.DataFrame:
    return load_seed_tasks(SEED_FILE)


def test_schema_and_count(seed_tasks: pd.DataFrame) -> None:
    assert list(seed_tasks.columns) == SEED_TASK_COLUMNS
    assert len(seed_tasks) == 175
    assert seed_tasks["id"].tolist() == [f"seed_task_{i}" for i in range(175)]
    assert seed_tasks["name"].is_unique
    assert (
        seed_tasks["name"]
        .map(lambda name: re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", name))
        .all()
    )
    for task in seed_tasks.itertuples(index=False):
        assert isinstance(task.instruction, str) and task.instruction.strip(), task.id
        assert isinstance(task.instances, list), task.id
        assert all(instance["output"].strip() for instance in task.instances), task.id


def test_file_is_belle_json_lines(seed_tasks: pd.DataFrame) -> None:
    raw = SEED_FILE.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.decode("utf-8").splitlines()
    assert len(lines) == len(seed_tasks)
    keys = {"id", "name", "instruction", "instances", "is_classification", "category"}
    assert all(set(json.loads(line)) == keys for line in lines)


def test_every_category_has_at_least_eight_tasks(seed_tasks: pd.DataFrame) -> None:
    counts = seed_tasks["category"].value_counts()
    assert set(counts.index) == CATEGORIES
    assert counts.min() >= 8, counts.to_dict()


def test_classification_flag_matches_category(seed_tasks: pd.DataFrame) -> None:
    flagged = seed_tasks.loc[seed_tasks["is_classification"], "category"]
    assert set(flagged) == {"classification"}
    assert flagged.size == (seed_tasks["category"] == "classification").sum()


def test_about_seventy_percent_have_an_input(seed_tasks: pd.DataFrame) -> None:
    has_input = seed_tasks["instances"].map(
        lambda instances: bool(instances[0]["input"].strip())
    )
    assert 0.65 <= has_input.mean() <= 0.75, has_input.mean()


def test_no_two_instructions_are_near_duplicates(seed_tasks: pd.DataFrame) -> None:
    keys = [similarity_key(text) for text in seed_tasks["instruction"]]
    too_close = [
        (seed_tasks["id"][i], seed_tasks["id"][j], round(score, 3))
        for (i, a), (j, b) in itertools.combinations(enumerate(keys), 2)
        if (score := rouge_l_f(a, b)) >= MAX_INSTRUCTION_ROUGE_L
    ]
    assert not too_close
