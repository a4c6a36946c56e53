"""Shared fixtures: a throw-away copy of the project with its own MLflow store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "zh_instructions"

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data/zh_instructions``; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite MLflow store (and artifact folder) for one test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("BELLE_MLFLOW_ARTIFACTS", str(tmp_path / "mlartifacts"))
    return uri


def make_project(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    catalogs: Iterable[str] | None = None,
) -> Path:
    """A copy of this project's conf and shipped raw data in ``tmp_path/project``.

    ``catalogs`` keeps only those ``catalog_*.yml`` files (kedro-mlflow builds every
    catalog entry when a session starts, so a focused test can leave the others out).
    Run sessions against it with ``KedroSession.create(project_path=..., env=...)``;
    nothing is written into the checkout. Tests may edit its ``conf/`` freely.
    """
    from kedro.framework.startup import bootstrap_project

    keep = set(catalogs) if catalogs is not None else None

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [
            name
            for name in names
            if name == "credentials.yml"
            or (keep is not None and name.startswith("catalog_") and name not in keep)
        ]

    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)  # bootstrap_project insists on it
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy2(REPO_ROOT / name, project / name)
    shutil.copytree(REPO_ROOT / "conf", project / "conf", ignore=ignore)
    for layer in sorted((REPO_ROOT / "data").iterdir()):
        (project / "data" / layer.name).mkdir(parents=True, exist_ok=True)
    for shipped in (REPO_ROOT / "data" / "01_raw").glob("*.json"):
        shutil.copy2(shipped, project / "data" / "01_raw" / shipped.name)
    monkeypatch.chdir(project)
    bootstrap_project(project)
    return project


@pytest.fixture
def kedro_project(
    tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The whole project copied to a temp folder, with its own MLflow store."""
    return make_project(tmp_path, monkeypatch)
