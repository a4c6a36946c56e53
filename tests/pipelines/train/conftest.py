"""A temp project for train sessions (tests/conftest.py's kedro_project plus a src/ folder).

``bootstrap_project`` insists that ``<project>/src`` exists; the package itself is
imported from the editable install, so an empty folder is enough.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture
def train_project(
    tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    from kedro.framework.startup import bootstrap_project

    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy2(REPO_ROOT / name, project / name)
    shutil.copytree(
        REPO_ROOT / "conf",
        project / "conf",
        ignore=shutil.ignore_patterns("credentials.yml"),
    )
    for layer in sorted((REPO_ROOT / "data").iterdir()):
        (project / "data" / layer.name).mkdir(parents=True, exist_ok=True)
    for shipped in (REPO_ROOT / "data" / "01_raw").glob("*.json"):
        shutil.copy2(shipped, project / "data" / "01_raw" / shipped.name)
    (project / "src").mkdir()
    monkeypatch.chdir(project)
    bootstrap_project(project)
    return project
