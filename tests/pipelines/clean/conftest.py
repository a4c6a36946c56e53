"""A temp Kedro project for the clean pipeline's session test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture
def clean_project(
    tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """tests/conftest.py's ``kedro_project`` plus the ``src/`` folder bootstrap_project needs.

    TODO(lead): use ``kedro_project`` once it creates ``src/`` itself.
    """
    from kedro.framework.startup import bootstrap_project

    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
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
    monkeypatch.chdir(project)
    bootstrap_project(project)
    return project
