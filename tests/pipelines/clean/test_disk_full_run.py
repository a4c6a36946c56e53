"""A whole ``kedro run --pipeline clean`` whose data folder fills up mid-run.

The project's ``data/`` is a real tmpfs (tests/support/small_disk.py); a hook fills it
just before a node runs: ``decontaminate`` (its ``clean_instructions`` Parquet save meets
the full disk) or ``classify_tasks`` (``clean_instructions`` is saved, the pickled task
classifier is not). The run must fail naming the dataset and its file, leave no torn
file where the catalog reads, and a rerun after space is freed must write what an
undisturbed run writes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from kedro.io import DatasetError

from tests.support.project import open_session
from tests.support.review import read_the_clean_fixture
from tests.support.small_disk import FillBeforeNode, project_data_on_small_disk

TABLES = ("clean_instructions", "clean_task_classes", "clean_drops")
VERSION = re.compile(r"/\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\d\.\d{3}Z/")


def outputs(project: Path) -> dict[str, Any]:
    with open_session(project) as session:
        catalog = session.load_context().catalog
        return {name: catalog.load(name) for name in (*TABLES, "clean_report")}


def whole_files(data: Path) -> dict[str, bytes]:
    """Every file the run wrote under ``data/`` by its catalog path (version left out)."""
    return {
        VERSION.sub("/<version>/", str(path.relative_to(data))): path.read_bytes()
        for path in sorted(data.rglob("*"))
        if path.is_file() and path.name != ".ballast" and "01_raw" not in path.parts
    }


PRIMARY = "03_primary/clean_instructions.parquet"
FULL_BEFORE = {
    # node the disk fills before: (the dataset that fails, its folder, files left)
    "decontaminate": ("clean_instructions", PRIMARY, []),
    "classify_tasks": (
        "task_classifier",
        "06_models/task_classifier.pkl",
        [f"{PRIMARY}/<version>/clean_instructions.parquet"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("node", list(FULL_BEFORE))
def test_a_disk_that_fills_mid_run_stops_clean_clearly_and_the_rerun_matches(
    kedro_project: Path, caplog, node
):
    dataset, folder, written_before = FULL_BEFORE[node]
    read_the_clean_fixture(kedro_project)
    reference = kedro_project.parent / "reference"
    shutil.copytree(kedro_project, reference)
    with open_session(reference) as session:
        session.run(pipeline_names=["clean"])
    expected = outputs(reference)
    reference_files = whole_files(reference / "data")

    with project_data_on_small_disk(kedro_project, "8m") as disk:
        with open_session(kedro_project) as session:
            session._hook_manager.register(FillBeforeNode(disk, node))
            with pytest.raises(DatasetError) as raised:
                session.run(pipeline_names=["clean"])
        while mlflow.active_run() is not None:  # the failed session's run
            mlflow.end_run()
        # The dataset, its file and the cause; Kedro's log names the nodes left to run.
        assert str(raised.value).startswith(f"{dataset}: ")
        assert str(disk.folder / folder) in str(raised.value)
        assert "No space left on device" in str(raised.value)
        assert "resume the pipeline run" in caplog.text
        # Written before the disk filled and whole; nothing torn (or staged) after it.
        left = whole_files(disk.folder)
        assert list(left) == written_before
        assert all(content == reference_files[name] for name, content in left.items())
        assert not [
            path for path in (disk.folder / folder).rglob("*") if path.is_file()
        ]
        disk.free()
        with open_session(kedro_project) as session:
            session.run(pipeline_names=["clean"])
        again = outputs(kedro_project)
    for name in TABLES:
        pd.testing.assert_frame_equal(again[name], expected[name])
    assert again["clean_report"] == expected["clean_report"]
