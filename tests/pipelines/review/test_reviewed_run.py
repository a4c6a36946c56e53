"""review.enabled: true with a reviewed export file: split and train read the reviewed data.

The export is the one captured from the real Label Studio server
(``tests/fixtures/review/label_studio_export.json``, see test_apply_review.py), applied to
the same 16-record clean fixture it was made for.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from tests.support.project import open_session
from tests.support.review import EXPORT_FIXTURE, read_the_clean_fixture

REJECTED = ("写一则关于<无输入>的笑话", "解释什么是通货膨胀")


@pytest.mark.slow
def test_a_reviewed_run_trains_on_the_reviewed_records(kedro_project: Path) -> None:
    local = kedro_project / "conf" / "local"
    read_the_clean_fixture(kedro_project)
    (local / "parameters_review.yml").write_text(
        "review:\n  enabled: true\n  restore_false_drops: true\n", encoding="utf-8"
    )
    # The pool is the reviewed records alone, and the largest variant takes all of it.
    (local / "parameters_split.yml").write_text(
        yaml.safe_dump(
            {
                "split": {
                    "holdout_size": 2,
                    "variant_sizes": {"small": 3, "medium": 4, "large": 5, "xlarge": 6},
                    "mix_in": {"mode": "pool", "size": 0},
                }
            }
        ),
        encoding="utf-8",
    )
    shutil.copy(
        EXPORT_FIXTURE, kedro_project / "data" / "01_raw" / "review_export.json"
    )
    with open_session(kedro_project) as session:
        session.run(pipeline_names=["clean"])
    with open_session(kedro_project) as session:
        session.run(pipeline_names=["review_tasks"])
    with open_session(kedro_project) as session:
        session.run(pipeline_names=["review", "split", "train"])
        catalog = session.load_context().catalog
        clean = catalog.load("clean_instructions")
        reviewed = catalog.load("reviewed_instructions")
        used = pd.concat(
            [catalog.load("holdout")]
            + [catalog.load(f"{v}.train_data") for v in ("small", "xlarge")]
        )
        versions = {v: catalog.load(f"{v}.model_version") for v in ("small", "xlarge")}

    # Reviewers rejected two kept records and restored three dropped ones.
    assert len(clean) == 7 and len(reviewed) == 8
    for instruction in REJECTED:
        assert instruction in set(clean["instruction"])
        assert instruction not in set(reviewed["instruction"])
    # The held-out set and the largest variant are exactly the reviewed records, edits
    # applied ("12 乘以 15 等于 180。" replaced the generated answer).
    pairs = set(zip(reviewed["instruction"], reviewed["output"], strict=True))
    assert set(zip(used["instruction"], used["output"], strict=True)) == pairs
    assert ("计算 12 乘以 15 等于多少", "12 乘以 15 等于 180。") in pairs
    # The parent run shows the review figures; its children trained the variants.
    runs = mlflow.search_runs(experiment_names=["belle_kedro"], output_format="list")
    parent = next(r for r in runs if "review.keep_precision.all" in r.data.metrics)
    assert parent.data.metrics["review.keep_precision.all"] == pytest.approx(0.6667)
    assert "mlflow.parentRunId" not in parent.data.tags
    children = [
        r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    ]
    trained = {r.info.run_id for r in children}
    assert {versions[v]["run_id"] for v in versions} <= trained
