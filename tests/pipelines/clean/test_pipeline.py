"""A real Kedro session of the clean pipeline on a temporary copy of the project."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from belle_kedro.datasets.eval_set import eval_set_digest, load_eval_set
from tests.support.project import REPO_ROOT, open_session
from tests.support.review import read_the_clean_fixture


@pytest.mark.slow
def test_clean_pipeline_session_writes_data_report_and_mlflow(kedro_project: Path):
    # The input is chosen in the catalog: point generated_instructions at a user file.
    read_the_clean_fixture(kedro_project)
    with open_session(kedro_project) as session:
        session.run(pipeline_names=["clean"])

    with open_session(kedro_project) as session:
        catalog = session.load_context().catalog
        clean = catalog.load("clean_instructions")
        classes = catalog.load("clean_task_classes")
    assert clean["instruction"].tolist() == [
        "写一首关于秋天的五言绝句",
        "解释什么是通货膨胀",  # the phrase addressing the model was stripped
        "把下面的句子改写得更礼貌",
        "给出三条保持健康作息的建议",
        "计算 12 乘以 15 等于多少",
        "把这句话翻译成英文",
        "写一则关于<无输入>的笑话",
    ]
    assert clean["input"].iat[-1] == ""  # BELLE empties an input saying 无输入
    assert {"category", "source"} <= set(clean.columns)
    assert set(clean["source"]) == {"clean_instructions_small"}

    versions = list((kedro_project / "data/08_reporting/clean_report.json").iterdir())
    assert len(versions) == 1  # versioned: one folder per run
    report = json.loads((versions[0] / "clean_report.json").read_text(encoding="utf-8"))
    dropped = {step["rule"]: step["dropped"] for step in report["steps"]}
    assert dropped == {
        "no_input_marker": 0,  # rewrites, drops nothing
        "blacklist": 1,
        "model_address": 1,
        "length": 1,
        "language": 1,
        "missing_input": 1,
        "exact_duplicates": 1,
        "near_duplicates": 2,
        "decontamination": 1,
    }
    decontamination = report["steps"][-1]
    assert list(decontamination["classes"]) == ["open qa"]
    [example] = decontamination["classes"]["open qa"]["examples"]
    assert example["eval_question"] == "在一个标准大气压下，纯水的沸点是多少摄氏度？"
    digest = eval_set_digest(load_eval_set(REPO_ROOT / "data/01_raw/eval_set.json"))
    assert report["eval_set_digest"] == decontamination["eval_set_digest"] == digest
    near = report["steps"][-2]
    assert near["dropped_as_seed_duplicates"] == 1
    assert [example["duplicate_of_seed_task"] for example in near["examples"]] == [
        False,
        True,
    ]
    assert (report["input_records"], report["output_records"]) == (16, 7)
    # Per-class counts: the catalog's task classes, row for row with the kept records.
    per_class = report["task_classes"]["kept_per_class"]
    assert len(classes) == len(clean)
    assert per_class == classes["task_class"].value_counts().sort_index().to_dict()

    runs = mlflow.search_runs(experiment_names=["belle_kedro"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.metrics["clean.dropped.near_duplicates"] == 2
    assert run.data.metrics["clean.output_records"] == 7
    assert run.data.metrics["clean.decontamination.open qa"] == 1
    for name, count in per_class.items():
        assert run.data.metrics[f"clean.kept.class.{name}"] == count
    assert run.data.tags["clean.eval_set_digest"] == digest
    artifacts = [
        item.path
        for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, "clean")
    ]
    assert artifacts == ["clean/clean_report.json"]


@pytest.mark.slow
def test_zh_instructions_env_reads_shared_files_from_the_env_var(
    kedro_project: Path, tmp_path: Path, monkeypatch
):
    # Two independent "translations" of one source: the second file's near copies go.
    shared = tmp_path / "shared_copy"
    shared.mkdir()
    first = [
        {
            "instruction": "列出三种常见的热带水果",
            "input": "",
            "output": "香蕉、芒果、菠萝。",
        },
        {
            "instruction": "解释为什么天空是蓝色的",
            "input": "",
            "output": "空气分子散射蓝光更多。",
        },
    ]
    second = [
        {
            "instruction": "请列出三种常见的热带水果",
            "input": "",
            "output": "榴莲、椰子、木瓜。",
        },
        {
            "instruction": "描述一次难忘的旅行经历",
            "input": "",
            "output": "那年夏天我去了海边。",
        },
    ]
    for name, records in (
        ("alpaca_zh_openchinese_v3.json", first),
        ("alpaca_zh_carbonz0.json", second),
    ):
        (shared / name).write_text(
            json.dumps(records, ensure_ascii=False), encoding="utf-8"
        )
    monkeypatch.setenv("BELLE_SHARED_DATA", str(shared))

    with open_session(kedro_project, env="zh_instructions") as session:
        session.run(pipeline_names=["clean"])
    with open_session(kedro_project, env="zh_instructions") as session:
        clean = session.load_context().catalog.load("clean_instructions")
    assert clean[["instruction", "source"]].values.tolist() == [
        ["列出三种常见的热带水果", "alpaca_zh_openchinese_v3"],
        ["解释为什么天空是蓝色的", "alpaca_zh_openchinese_v3"],
        ["描述一次难忘的旅行经历", "alpaca_zh_carbonz0"],
    ]
