"""Shared fixtures: a throw-away copy of the project with its own MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.project import SHARED_DATA, make_project

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


@pytest.fixture
def kedro_project(
    tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The whole project copied to a temp folder, with its own MLflow store."""
    return make_project(tmp_path, monkeypatch)


@pytest.fixture(autouse=True)
def _forget_the_last_sessions_variants():
    """Each test starts as a fresh process would: no session has named variants yet."""
    from belle_kedro.common import variants

    yield
    variants._session.clear()
