"""The review tests' shared material: the clean fixture's review sample and a reviewer plan.

The sample comes from ``tests/fixtures/clean_instructions_small.json`` (16 records: 7
kept by clean, 9 dropped by 8 rules) through the review's own domain functions, so the
fast tests and the slow Label Studio test review the same 16 tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from belle_kedro.datasets.eval_set import load_eval_set
from belle_kedro.datasets.instructions import InstructionFileDataset
from belle_kedro.datasets.seed_tasks import load_seed_tasks
from belle_kedro.pipelines.clean.nodes import (
    classify_tasks,
    decontaminate,
    filter_instructions,
    normalise_instructions,
    remove_near_duplicates,
)
from belle_kedro.pipelines.review.nodes import select_for_review
from tests.support.project import REPO_ROOT, base_parameters

CLEAN_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "clean_instructions_small.json"
EXPORT_FIXTURE = (
    REPO_ROOT / "tests" / "fixtures" / "review" / "label_studio_export.json"
)

# Two reviewers' decisions, by instruction (the sample's records are all distinct by
# instruction except the exact duplicate, which is looked up among dropped records).
# (stratum, instruction) -> [(reviewer, decision, reason or edited output)], in order.
PLAN: dict[tuple[str, str], list[tuple[int, str, str]]] = {
    ("kept", "给出三条保持健康作息的建议"): [(1, "accept", "")],
    # reviewer 1 first rejects, then edits the annotation to accept: the edit wins.
    ("kept", "写一首关于秋天的五言绝句"): [(1, "reject", "low_quality")],
    ("kept", "写一则关于<无输入>的笑话"): [(1, "reject", "low_quality")],
    ("kept", "计算 12 乘以 15 等于多少"): [(1, "edit", "12 乘以 15 等于 180。")],
    # the conflicting pair: reviewer 1 accepts, reviewer 2 rejects later and wins.
    ("kept", "解释什么是通货膨胀"): [(1, "accept", ""), (2, "reject", "wrong_answer")],
    ("kept", "把下面的句子改写得更礼貌"): [(2, "accept", "")],
    # 把这句话翻译成英文: nobody reviews it.
    ("dropped", "描述这张图片里的风景"): [(1, "reject", "low_quality")],
    ("dropped", "标准大气压下，纯水的沸点是多少摄氏度？"): [(1, "reject", "duplicate")],
    ("dropped", "把下面的句子改写得更礼貌"): [(1, "reject", "duplicate")],
    ("dropped", "介绍一下长江的地理概况"): [(2, "accept", "")],
    ("dropped", "写诗"): [(1, "reject", "low_quality")],
    ("dropped", "总结以下段落的要点。"): [(2, "reject", "refers_to_missing_content")],
    ("dropped", "比较GPT和BERT在结构上的不同"): [(2, "accept", "")],
    ("dropped", "请给出三条保持健康作息的小建议"): [(1, "accept", "")],
}
# The annotation of this record is later changed from reject to accept.
EDITED_LATER = ("kept", "写一首关于秋天的五言绝句")


def clean_fixture_run() -> dict[str, Any]:
    """The fixture through clean's nodes (task classes included), then select_for_review
    with base parameters."""
    generated = InstructionFileDataset(filepath=[str(CLEAN_FIXTURE)]).load()
    seed_tasks = load_seed_tasks(REPO_ROOT / "data" / "01_raw" / "zh_seed_tasks.json")
    eval_set = load_eval_set(REPO_ROOT / "data" / "01_raw" / "eval_set.json")
    clean = base_parameters("clean")
    records, rule_drops, _ = filter_instructions(
        normalise_instructions(generated), clean["rules"], 3
    )
    records, duplicate_drops, _ = remove_near_duplicates(
        records,
        seed_tasks,
        clean["near_duplicates"],
        clean["matching"],
        3,
        engine=clean["engine"],
    )
    records, contamination_drops, _ = decontaminate(
        records,
        eval_set,
        clean["decontamination"],
        clean["matching"],
        3,
        engine=clean["engine"],
    )
    classifier, classes, drops, class_counts = classify_tasks(
        records,
        rule_drops,
        duplicate_drops,
        contamination_drops,
        seed_tasks=seed_tasks,
        eval_set=eval_set,
        settings=clean["classifier"],
    )
    sample, selection = select_for_review(
        records,
        classes,
        drops,
        seed_tasks,
        task_classifier=classifier,
        clean_params=clean,
        params=base_parameters("review"),
    )
    return {
        "clean": records,
        "drops": drops,
        "sample": sample,
        "selection": selection,
        "class_counts": class_counts,
    }


def sample_row(sample: pd.DataFrame, stratum: str, instruction: str) -> pd.Series:
    """The one sampled record of ``stratum`` with ``instruction``."""
    rows = sample[
        (sample["stratum"] == stratum) & (sample["instruction"] == instruction)
    ]
    assert len(rows) == 1, (stratum, instruction, len(rows))
    return rows.iloc[0]


def _control(
    name: str, to_name: str, kind: str, value: dict[str, Any]
) -> dict[str, Any]:
    return {"from_name": name, "to_name": to_name, "type": kind, "value": value}


def annotation_result(decision: str, detail: str) -> list[dict[str, Any]]:
    """The form's result for one decision, as Label Studio stores it."""
    result = [_control("decision", "instruction", "choices", {"choices": [decision]})]
    if decision == "reject":
        result.append(
            _control("reason", "instruction", "choices", {"choices": [detail]})
        )
    if decision == "edit":
        result.append(_control("edit_output", "output", "textarea", {"text": [detail]}))
    return result


def read_the_clean_fixture(project: Path) -> None:
    """Point ``project``'s ``generated_instructions`` at the clean fixture (conf/local)."""
    (project / "conf" / "local" / "catalog_clean.yml").write_text(
        yaml.safe_dump(
            {
                "generated_instructions": {
                    "type": "belle_kedro.datasets.instructions.InstructionFileDataset",
                    "filepath": [str(CLEAN_FIXTURE)],
                }
            }
        ),
        encoding="utf-8",
    )
