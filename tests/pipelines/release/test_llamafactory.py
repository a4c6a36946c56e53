"""LLaMA-Factory's own loader reads every dataset_info.json entry and yields our records.

It runs in LLaMA-Factory's venv (scripts/install_llamafactory.sh; its pins clash with
the project's), through scripts/llamafactory_read.py; the test skips when that venv is
absent. Set BELLE_LLAMAFACTORY_VENV to use one elsewhere (default ./.venv-llamafactory).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from belle_kedro.common.config import build
from belle_kedro.datasets.folder import FolderDataset
from belle_kedro.pipelines.release.dataset_folder import dataset_folder
from belle_kedro.pipelines.release.settings import DatasetReleaseSettings
from tests.pipelines.release.records import instruction_frame, run_records
from tests.support.project import REPO_ROOT, declared

pytestmark = pytest.mark.slow

SYSTEM = "你是助手。"


def _python() -> Path:
    venv = Path(
        os.environ.get("BELLE_LLAMAFACTORY_VENV", REPO_ROOT / ".venv-llamafactory")
    )
    python = venv / "bin" / "python"
    if not python.is_file():
        pytest.skip(
            f"no LLaMA-Factory venv at {venv} (scripts/install_llamafactory.sh)"
        )
    return python


def _expected(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(user turn, answer) per record: instruction, then the input on its own line."""
    return [
        ("\n".join(part for part in (record["instruction"], record["input"]) if part),
         str(record["output"]))
        for record in frame.to_dict("records")
    ]  # fmt: skip


def test_llamafactory_reads_every_entry_as_the_same_records(tmp_path: Path) -> None:
    python = _python()
    pool = instruction_frame(12, "训练")
    variants = {"small": pool.iloc[:5], "large": pool.iloc[:12]}
    holdout = instruction_frame(4, "留出")
    settings = build(
        DatasetReleaseSettings,
        declared("release", "dataset", system_prompt=SYSTEM),
        "release.dataset",
    )
    folder = tmp_path / "dataset"
    FolderDataset(filepath=str(folder)).save(
        dataset_folder(holdout, variants, run_records(variants, holdout), settings)
    )
    output = tmp_path / "read.json"
    done = subprocess.run(
        [
            str(python),
            str(REPO_ROOT / "scripts" / "llamafactory_read.py"),
            str(folder),
            str(tmp_path / "cache"),
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    read = json.loads(output.read_text(encoding="utf-8"))
    info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(read) == set(info)
    frames = {**variants, "holdout": holdout}
    for name, records in read.items():
        _, config, fmt = name.rsplit("_", 2)
        assert [
            (r["prompt"][0]["content"], r["response"][0]["content"]) for r in records
        ] == _expected(frames[config]), name
        assert all(len(r["prompt"]) == 1 and len(r["response"]) == 1 for r in records)
        # The chat formats carry the system turn; Alpaca and BELLE lines have none.
        system = SYSTEM if fmt in ("sharegpt", "messages") else ""
        assert {r["system"] for r in records} == {system}, name
